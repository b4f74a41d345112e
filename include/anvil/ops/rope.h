#pragma once
#include "anvil/context.h"

namespace anvil {
// Rotary position embedding on x (N, H, D) at positions (N) i32; out may alias x.
void rope(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params);
// Gradient: rotation by the opposite angle. dx may alias dout.
void rope_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params);
// The inverse frequency of rotary pair `pair` (0 <= pair < rot_dim/2) after scaling.
double rope_inv_frequency(const RopeParams& params, int64_t head_dim, int64_t pair);
}  // namespace anvil
