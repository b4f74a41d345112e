#pragma once
// LayerNorm and RMSNorm over the last dim C of x (rows, C), forward and backward, f32 math
// over f32 / bf16 / f16 storage. Saved statistics (mean, rstd) and parameter gradients are f32.
// Backward writes dx and accumulates dweight / dbias through per-block partials that
// launch_add_column_sums adds in a fixed order (deterministic, no float atomics).
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"
#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// Partials per parameter gradient that the backward kernels need for `rows` rows: the
// scratch for one gradient is that times C floats.
int64_t norm_backward_num_partials(int64_t rows);

// out = (x - mean) * rstd * weight [+ bias]; bias.data, mean, rstd may be null.
void launch_layer_norm(FloatBuffer out, float* mean, float* rstd, ConstFloatBuffer x, ConstFloatBuffer weight,
                       ConstFloatBuffer bias, int64_t rows, int64_t channels, float eps, cudaStream_t stream);

// dx from dout and the saved mean / rstd; dweight / dbias (either may be null) += their
// row sums. `partials` is scratch of 2 * norm_backward_num_partials(rows) * C floats (null
// when both parameter gradients are). dx may alias dout.
void launch_layer_norm_backward(FloatBuffer dx, float* dweight, float* dbias, ConstFloatBuffer dout, ConstFloatBuffer x,
                                ConstFloatBuffer weight, const float* mean, const float* rstd, int64_t rows,
                                int64_t channels, float* partials, cudaStream_t stream);

// The same backward for f32 dout / x / weight with dx added to dres (N, C) f32 instead of
// stored; dres_low (bf16, may be null) receives dres rounded and dres_sums (C, may be null)
// the column sums of the updated dres, added. `partials` is scratch of 3 *
// norm_backward_num_partials(rows) * C floats (null when dweight, dbias and dres_sums are).
// Returns false, launching nothing, when the rows do not suit the vector kernel (C not a
// whole number of 4-float vectors within its register budget, or misaligned buffers):
// compose it then.
bool launch_layer_norm_backward_residual(float* dres, void* dres_low, float* dweight, float* dbias, float* dres_sums,
                                         const float* dout, const float* x, const float* weight, const float* mean,
                                         const float* rstd, int64_t rows, int64_t channels, float* partials,
                                         cudaStream_t stream);

// out = x * rstd * weight, rstd = (mean(x^2) + eps)^-1/2; rstd may be null.
void launch_rms_norm(FloatBuffer out, float* rstd, ConstFloatBuffer x, ConstFloatBuffer weight, int64_t rows,
                     int64_t channels, float eps, cudaStream_t stream);

// x += delta (rounded to x's dtype), then out = x * rstd * weight (inference: no rstd).
void launch_add_rms_norm(FloatBuffer out, FloatBuffer x, ConstFloatBuffer delta, ConstFloatBuffer weight, int64_t rows,
                         int64_t channels, float eps, cudaStream_t stream);
// The same with the normed rows written as quantized_matmul's activations (`codes`, blocks of
// codes.block) in the same kernel. False, launching nothing, when the rows do not suit it
// (f32 x and delta, 16-byte aligned, C a multiple of the block, at most 16384).
bool launch_add_rms_norm_codes(const QuantizedActivations& codes, FloatBuffer x, ConstFloatBuffer delta,
                               ConstFloatBuffer weight, int64_t rows, int64_t channels, float eps, cudaStream_t stream);

// dx from dout and the saved rstd; dweight (may be null) += its row sums. `partials` is
// scratch of norm_backward_num_partials(rows) * C floats (null when dweight is). dx may
// alias dout.
void launch_rms_norm_backward(FloatBuffer dx, float* dweight, ConstFloatBuffer dout, ConstFloatBuffer x,
                              ConstFloatBuffer weight, const float* rstd, int64_t rows, int64_t channels,
                              float* partials, cudaStream_t stream);

}  // namespace anvil::cuda
