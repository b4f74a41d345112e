#pragma once
// Sampling primitives on device logits (N, V) f32, one thread block per row. Semantics are
// the CPU's (cpu/sampling.cpp, ops/sampling.cpp): NaN ranks below everything, filters write
// -inf in place, equal logits rank by lower index, softmax weights in float64.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace anvil::cuda {

// ids (N) i32 = index of each row's largest logit (first of equals; 0 for an all-NaN row).
void launch_argmax(const float* logits, int32_t* ids, int64_t rows, int64_t vocab, cudaStream_t stream);

// Keeps each row's logits >= its k-th largest (1 <= k < vocab), NaN dropped.
void launch_top_k_filter(float* logits, int64_t rows, int64_t vocab, int64_t k, cudaStream_t stream);

// Keeps each row's shortest rank-order prefix whose probability reaches top_p (< 1).
// `weights` is scratch of rows * vocab doubles.
void launch_top_p_filter(float* logits, double* weights, int64_t rows, int64_t vocab, float top_p, cudaStream_t stream);

// Keeps logits whose probability is >= min_p times the row's largest (0 < min_p <= 1).
void launch_min_p_filter(float* logits, int64_t rows, int64_t vocab, float min_p, cudaStream_t stream);

// ids (N) i32 drawn by inverse CDF (index order) of softmax(logits / temperature) at
// u = Philox(seed, row).uniform(offset); -1 for a row without candidates.
void launch_sample_multinomial(const float* logits, int32_t* ids, int64_t rows, int64_t vocab, float temperature,
                               uint64_t seed, uint64_t offset, cudaStream_t stream);

}  // namespace anvil::cuda
