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
// layer_norm_backward with dx added to a residual gradient: dres (N, C) f32 += dx, then
// dres_low (N, C) bf16 (may be undefined) = dres rounded, for the GEMMs that read it next,
// and dres_sums (C) f32 (may be undefined) += the column sums of the updated dres: the bias
// gradient of the linear that added into the residual stream at x (no pass of its own).
// x, dout, weight f32. CUDA: one pass (no dx buffer, no separate add, cast or column sums).
void layer_norm_backward_residual(Ctx& ctx, Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias,
                                  Tensor& dres_sums, const Tensor& dout, const Tensor& x, const Tensor& weight,
                                  const Tensor& mean, const Tensor& rstd);
}  // namespace anvil
