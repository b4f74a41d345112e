#pragma once
#include "anvil/context.h"

namespace anvil {
// out (N, C) = (x - mean) * rstd * weight + bias over the last dim. bias may be undefined.
// mean/rstd (N) f32 are written when defined (training saves them for backward).
void layer_norm(Ctx& ctx, Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                const Tensor& bias, float eps);
// dx is overwritten; dweight/dbias (either may be undefined) are accumulated into.
void layer_norm_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                         const Tensor& weight, const Tensor& mean, const Tensor& rstd);
}  // namespace anvil
