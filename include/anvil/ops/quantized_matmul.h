#pragma once
#include <optional>

#include "anvil/context.h"

namespace anvil {
// out (..., N) f32 = x (..., K) f32 @ weight^T, weight (N, K) stored as GGUF stores linear
// layers ((out_features, in_features) rows) in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or
// Q6_K, used block by block without dequantising it; F32, F16 and BF16 weights are accepted
// too (plain f32 path), so one op serves every weight type. K is a whole number of blocks.
//
// Numerics (as llama.cpp): each row of x is first quantised to 8 bits, in blocks of 32
// elements for Q8_0..Q5_1 and 256 for the K-quants: d = amax / 127 (f32), code =
// round-half-even(clamp(x * (127 / amax), -127, 127)). Then integer dot products per block
// are scaled by the block scales in f32. The result is exact for the quantised x up to f32
// rounding; against the unquantised x the error per output is at most
// sum_k |w_k| * d(block of k) / 2. Results do not depend on the thread count.
//
// x may instead be given already quantised (Q8Act for Q8_0..Q5_1 weights, Q8KAct for the
// K-quants; activation_dtype_for): made once by quantize_activations, or by the op that
// produced x (rms_norm, add_rms_norm, swiglu with such an `out`), and read as it is. The
// result is then the same bits as quantized_matmul of the f32 x on that backend.
void quantized_matmul(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight);

// The activation dtype quantized_matmul quantises x to for `weight_dtype`: Q8Act for
// Q8_0..Q5_1, Q8KAct for Q4_K..Q6_K, nullopt for plain (f32/f16/bf16) weights.
std::optional<DType> activation_dtype_for(DType weight_dtype);

// out (..., K) Q8Act / Q8KAct = x (..., K) f32 quantised per block as quantized_matmul does
// (scales, codes, code sums: the same bits on every backend). out is used whole (no slices).
void quantize_activations(Ctx& ctx, Tensor& out, const Tensor& x);
}  // namespace anvil
