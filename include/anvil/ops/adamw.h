#pragma once
#include "anvil/context.h"

namespace anvil {
// One AdamW step (decoupled weight decay, bias-corrected moments), in place.
// param, m, v f32 of one shape; grad f32 or bf16 of that shape.
void adamw(Ctx& ctx, Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params);
}  // namespace anvil
