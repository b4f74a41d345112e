#pragma once
#include "anvil/context.h"

namespace anvil {
// out (..., M, N) = alpha * op(a) @ op(b) + beta * out, op = transpose when asked.
// a, b: f32, bf16 or f16 (same dtype, f32 accumulation); out: f32 or a's dtype.
// b may be 2-D (a weight shared by every batch entry).
void matmul(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
            float alpha = 1.0F, float beta = 0.0F);
// out (N, O) = x (N, I) @ weight (O, I)^T [+ bias (O)] [+ residual (N, O)], f32 accumulation;
// bias / residual may be undefined. x and weight share a float dtype; out is f32 or x's dtype;
// bias is f32 or x's dtype; residual has out's dtype and may alias out. The CUDA backend adds
// bias and residual in the GEMM's epilogue (no extra pass over out).
void linear(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
            const Tensor& residual = Tensor());
// Gradients of out = op(a) @ op(b): grad_a/grad_b (either may be undefined) are
// overwritten, or accumulated into when `accumulate`. A 2-D b shared over batches
// gets the sum over batches.
void matmul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b,
                     bool trans_a = false, bool trans_b = false, bool accumulate = false);
}  // namespace anvil
