#pragma once
// Embedding lookup out (N, C) = table[ids] and its backward grad_table[ids[i]] += grad_out[i]
// (grad_table f32). Ids must be checked in [0, V) first.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

void launch_embedding(FloatBuffer out, ConstFloatBuffer table, const int32_t* ids, int64_t count, int64_t channels,
                      cudaStream_t stream);

// Bytes of device scratch launch_embedding_backward needs.
size_t embedding_backward_scratch_bytes(int64_t count, int64_t vocab, int64_t channels);

// Deterministic, no float atomics: the ids are sorted stably and each grad_table element
// gets one addition, of its rows' gradients summed in ascending i (in chunks of 32 sorted
// entries, then the chunks in order). `scratch` holds embedding_backward_scratch_bytes.
void launch_embedding_backward(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids, int64_t count,
                               int64_t vocab, int64_t channels, void* scratch, cudaStream_t stream);

}  // namespace anvil::cuda
