#pragma once
#include "anvil/context.h"

namespace anvil {
// out (N, C) = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps) over the last dim.
// rstd (N) f32 is written when defined.
void rms_norm(Ctx& ctx, Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps);
// Inference: x (N, C) += delta (N, C), then out (N, C) = rms_norm(x) * weight, in one pass
// over the row (Backend::add_rms_norm). The CPU gives exactly add(x, x, delta) then rms_norm.
void add_rms_norm(Ctx& ctx, Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps);
// dx is overwritten; dweight (may be undefined) is accumulated into.
void rms_norm_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                       const Tensor& rstd);
}  // namespace anvil
