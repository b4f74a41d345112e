#pragma once
// Softmax over the last dim of (rows, C), forward and backward from the saved output y.
// f32 math over f32 / bf16 / f16 storage; outputs may alias inputs exactly.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

// out = exp(x - max) / sum(exp(x - max)) per row; -inf entries give 0.
void launch_softmax(FloatBuffer out, ConstFloatBuffer x, int64_t rows, int64_t channels, cudaStream_t stream);

// dx = y * (dout - sum(dout * y)) per row.
void launch_softmax_backward(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer y, int64_t rows, int64_t channels,
                             cudaStream_t stream);

}  // namespace anvil::cuda
