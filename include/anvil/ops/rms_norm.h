#pragma once
#include "anvil/context.h"

namespace anvil {
// out (N, C) = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps) over the last dim.
// rstd (N) f32 is written when defined. out may be Q8Act / Q8KAct (quantized_matmul's input
// for the projection after the norm): the normed row quantised as quantize_activations does.
void rms_norm(Ctx& ctx, Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps);
// Inference: x (N, C) += delta (N, C), then out (N, C) = rms_norm(x) * weight, in one pass
// over the row (Backend::add_rms_norm). The CPU gives exactly add(x, x, delta) then rms_norm.
// out may be Q8Act / Q8KAct, as for rms_norm (a GPU writes the codes in the same kernel).
void add_rms_norm(Ctx& ctx, Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps);
// dx is overwritten; dweight (may be undefined) is accumulated into.
void rms_norm_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                       const Tensor& rstd);
}  // namespace anvil
