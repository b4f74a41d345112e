#pragma once
#include "anvil/context.h"

namespace anvil {
// out (..., M, N) = alpha * op(a) @ op(b) + beta * out, op = transpose when asked.
// a, b: f32, bf16 or f16 (same dtype, f32 accumulation); out: f32 or a's dtype.
// b may be 2-D (a weight shared by every batch entry).
void matmul(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
            float alpha = 1.0F, float beta = 0.0F);
// Gradients of out = op(a) @ op(b): grad_a/grad_b (either may be undefined) are
// overwritten, or accumulated into when `accumulate`. A 2-D b shared over batches
// gets the sum over batches.
void matmul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b,
                     bool trans_a = false, bool trans_b = false, bool accumulate = false);
}  // namespace anvil
