#pragma once
#include "anvil/context.h"

namespace anvil {
// losses (N) f32 = -log softmax(logits (N, V))[target]; targets (N) i32, negative = ignored
// (loss 0); a target >= V is an error.
void cross_entropy(Ctx& ctx, Tensor& losses, const Tensor& logits, const Tensor& targets);
// dlogits (N, V) = (softmax(logits) - onehot(target)) * dlosses[row]; ignored rows get 0.
void cross_entropy_backward(Ctx& ctx, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                            const Tensor& targets);
}  // namespace anvil
