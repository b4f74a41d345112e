#pragma once
// Fused softmax + cross-entropy over logits (N, V) with targets (N) i32 (negative =
// ignored). f32 math over f32 / bf16 / f16 logits. Target values must be checked < V first.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

// losses (N) f32 = logsumexp(logits[r]) - logits[r, target[r]]; 0 for ignored rows.
void launch_cross_entropy(float* losses, ConstFloatBuffer logits, const int32_t* targets, int64_t rows, int64_t vocab,
                          cudaStream_t stream);

// dlogits = (softmax(logits) - onehot(target)) * dlosses[r]; 0 for ignored rows. dlogits may
// alias logits exactly.
void launch_cross_entropy_backward(FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                                   const int32_t* targets, int64_t rows, int64_t vocab, cudaStream_t stream);

// Both at once: losses as launch_cross_entropy, dlogits as launch_cross_entropy_backward,
// from one read of each row's statistics (dlogits may alias logits exactly).
void launch_cross_entropy_fused(float* losses, FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                                const int32_t* targets, int64_t rows, int64_t vocab, cudaStream_t stream);

}  // namespace anvil::cuda
