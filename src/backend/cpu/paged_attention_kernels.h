#pragma once
// The inner step of the CPU paged attention (cpu/paged_attention.cpp): one query row's
// online-softmax update over a run of cached keys/values. Scalar in paged_attention.cpp,
// AVX-512 in paged_attention_avx512.cpp.
#include <cstdint>

namespace anvil::cpu {

// For query row q (D, pre-scaled) and `count` key/value rows (D floats each, `key_stride` /
// `value_stride` apart): scores[j] = q . k_j; new max m' = max(max, scores);
// acc = acc * exp(max - m') + sum_j exp(scores[j] - m') v_j; sum likewise; max = m'.
// `scores` has room for count floats.
using AttendRows = void (*)(const float* q, const float* keys, int64_t key_stride, const float* values,
                            int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                            float* sum);

void attend_rows_avx512(const float* q, const float* keys, int64_t key_stride, const float* values,
                        int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                        float* sum);

}  // namespace anvil::cpu
