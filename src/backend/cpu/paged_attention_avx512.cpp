// AVX-512 inner step of the CPU paged attention (see paged_attention_kernels.h): dot
// products and value updates 16 lanes at a time, exponentials through the Blocked
// attention's vector exp.
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attention_kernels.h"
#include "cpu/paged_attention_kernels.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kLanes = 16;

__mmask16 first_lanes(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1U << n) - 1U);
}

float dot(const float* a, const float* b, int64_t d) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < d; i += kLanes) {
    const __mmask16 lanes = first_lanes(d - i);
    sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(lanes, a + i), _mm512_maskz_loadu_ps(lanes, b + i), sum);
  }
  return _mm512_reduce_add_ps(sum);
}

}  // namespace

void attend_rows_avx512(const float* q, const float* keys, int64_t key_stride, const float* values,
                        int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                        float* sum) {
  float block_max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    scores[j] = dot(q, keys + j * key_stride, d);
    block_max = std::max(block_max, scores[j]);
  }
  const float new_max = std::max(*max, block_max);
  const float correction = std::exp(*max - new_max);  // 0 on the first block (max = -inf)
  *max = new_max;
  const float block_sum = attention_tile_kernels_avx512().exp_row(scores, count, count, 1.0F, new_max);
  *sum = *sum * correction + block_sum;
  const __m512 scale = _mm512_set1_ps(correction);
  for (int64_t c = 0; c < d; c += kLanes) {
    const __mmask16 lanes = first_lanes(d - c);
    __m512 out = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, acc + c), scale);
    for (int64_t j = 0; j < count; ++j) {
      out =
          _mm512_fmadd_ps(_mm512_set1_ps(scores[j]), _mm512_maskz_loadu_ps(lanes, values + j * value_stride + c), out);
    }
    _mm512_mask_storeu_ps(acc + c, lanes, out);
  }
}

}  // namespace anvil::cpu
