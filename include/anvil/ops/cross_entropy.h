#pragma once
#include "anvil/context.h"

namespace anvil {
// losses (N) f32 = -log softmax(logits (N, V))[target]; targets (N) i32, negative = ignored
// (loss 0); a target >= V is an error.
void cross_entropy(Ctx& ctx, Tensor& losses, const Tensor& logits, const Tensor& targets);
// dlogits (N, V) = (softmax(logits) - onehot(target)) * dlosses[row]; ignored rows get 0.
void cross_entropy_backward(Ctx& ctx, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                            const Tensor& targets);
// cross_entropy and cross_entropy_backward in one pass over the logits (the training loss
// and its gradient together): losses (N) f32, dlogits (N, V) of logits' dtype or f32. dlogits
// may alias logits (then overwritten by the gradient).
void cross_entropy_fused(Ctx& ctx, Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                         const Tensor& targets);
}  // namespace anvil
