#pragma once
// Embedding lookup out (N, C) = table[ids] and its backward grad_table[ids[i]] += grad_out[i]
// (grad_table f32). Ids must be checked in [0, V) first.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

void launch_embedding(FloatBuffer out, ConstFloatBuffer table, const int32_t* ids, int64_t count, int64_t channels,
                      cudaStream_t stream);

// Deterministic, no atomics: each grad_table element adds its rows' gradients in ascending
// i (consecutive ones on the same id summed first), a grouping fixed by the ids and shape.
void launch_embedding_backward(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids, int64_t count,
                               int64_t vocab, int64_t channels, cudaStream_t stream);

}  // namespace anvil::cuda
