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
// pre (N, O) = x @ weight^T [+ bias], out (N, O) = gelu(pre) (tanh approximation): the first
// MLP GEMM of GPT-2 with its activation. out and pre share a dtype (f32 or x's); bias f32 or
// out's dtype. CUDA: one GEMM with the GELU_AUX_BIAS epilogue for bf16 / f16 out with a bias
// of out's dtype (its GELU is good to ~1e-4 relative); f32 composes.
void linear_gelu(Ctx& ctx, Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight,
                 const Tensor& bias = Tensor());
// dpre (N, F) = (dout (N, O) @ weight (O, F)) * gelu'(pre): the input gradient of
// linear(gelu(pre), weight) back through the GELU; dbias (F) f32 (may be undefined) += the
// column sums of dpre (the bias gradient of the linear that made pre). dout and weight share
// a dtype; dpre and pre have dout's dtype (or f32). CUDA: one GEMM with the DGELU epilogue for bf16 / f16
// (its GELU derivative is good to ~3e-3 relative, under a bf16 rounding); f32 composes.
void linear_gelu_input_grad(Ctx& ctx, Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                            const Tensor& pre);
// The parameter gradients of out = x @ weight^T + bias, accumulated: dweight (O, I) f32 +=
// dout (N, O)^T @ x (N, I); dbias (O) f32 (may be undefined) += column sums of dout. dout and
// x share a dtype. CUDA: one GEMM, the column sums from its BGRADB epilogue.
void linear_weight_grad(Ctx& ctx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x);
// Gradients of out = op(a) @ op(b): grad_a/grad_b (either may be undefined) are
// overwritten, or accumulated into when `accumulate`. A 2-D b shared over batches
// gets the sum over batches.
void matmul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b,
                     bool trans_a = false, bool trans_b = false, bool accumulate = false);
}  // namespace anvil
