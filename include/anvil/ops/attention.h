#pragma once
#include "anvil/context.h"

namespace anvil {
// Scaled dot-product self-attention with grouped-query heads.
// q (B, T, Hq, D), k/v (B, T, Hkv, D), Hq % Hkv == 0; out (B, T, Hq, D).
// lse (B, Hq, T) f32, when defined, receives the log-sum-exp of the scaled scores.
void attention(Ctx& ctx, Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionParams& params);
// Gradients dq, dk, dv (overwritten) from dout, the inputs, out and lse of the forward.
void attention_backward(Ctx& ctx, Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionParams& params);
}  // namespace anvil
