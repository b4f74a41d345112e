// llama.cpp's attention for f16 caches to the bit with AVX2 + FMA + F16C: the arithmetic of
// paged_attention_ggml_avx512.cpp (ggml-cpu's AVX-512 build, see paged_attention_kernels.h),
// each 16-lane vector held as two 8-lane halves and every lane doing the same operations.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "cpu/ggml_expf_avx2.h"
#include "cpu/paged_attention_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kLanes = 16;  // of the AVX-512 build's vectors
constexpr int64_t kHalf = 8;

__m256 load_half(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

__m256 round_to_half(__m256 v) { return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }

// _mm512_reduce_add_ps of the 16 lanes (low, high), GCC's tree.
float reduce_16(__m256 low, __m256 high) {
  const __m256 eights = _mm256_add_ps(high, low);
  const __m128 fours = _mm_add_ps(_mm256_extractf128_ps(eights, 1), _mm256_castps256_ps128(eights));
  const __m128 twos = _mm_add_ps(fours, _mm_shuffle_ps(fours, fours, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(_mm_add_ss(twos, _mm_movehdup_ps(twos)));
}

// reduce_16 across 16 vectors, lane by lane (see the AVX-512 file).
__m256 reduce_across(const __m256* a) {
  __m256 half[8];
  for (int i = 0; i < 8; ++i) half[i] = _mm256_add_ps(a[i + 8], a[i]);
  __m256 quarter[4];
  for (int i = 0; i < 4; ++i) quarter[i] = _mm256_add_ps(half[i + 4], half[i]);
  return _mm256_add_ps(_mm256_add_ps(quarter[0], quarter[2]), _mm256_add_ps(quarter[1], quarter[3]));
}

float half_dot(const uint16_t* a, const float* b, int64_t n, bool batched) {
  const auto fma_at = [&](int64_t c, __m256 acc) {
    return _mm256_fmadd_ps(load_half(a + c), _mm256_loadu_ps(b + c), acc);
  };
  if (batched) {
    __m256 low = _mm256_setzero_ps();
    __m256 high = _mm256_setzero_ps();
    for (int64_t c = 0; c < n; c += kLanes) {
      low = fma_at(c, low);
      high = fma_at(c + kHalf, high);
    }
    return reduce_16(low, high);
  }
  __m256 acc[8];  // accumulator j of the AVX-512 build: acc[2j] (low lanes), acc[2j + 1] (high)
  for (__m256& v : acc) v = _mm256_setzero_ps();
  for (int64_t c = 0; c < n; c += 4 * kLanes) {
    for (int j = 0; j < 8; ++j) acc[j] = fma_at(c + j * kHalf, acc[j]);
  }
  const __m256 low = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
  const __m256 high = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
  return reduce_16(low, high);
}

void weighted_values(const float* probs, const uint16_t* values, int64_t count, int64_t d, bool batched, float* acc,
                     float* out) {
  const int64_t lanes = batched ? kLanes : 4 * kLanes;
  std::memset(acc, 0, static_cast<size_t>(lanes * d) * sizeof(float));
  for (int64_t p = 0; p < count; ++p) {
    const __m256 weight = _mm256_set1_ps(probs[p]);
    float* lane = acc + (p % lanes) * d;
    for (int64_t c = 0; c < d; c += kHalf) {
      _mm256_storeu_ps(lane + c, _mm256_fmadd_ps(load_half(values + p * d + c), weight, _mm256_loadu_ps(lane + c)));
    }
  }
  for (int64_t c = 0; c < d; c += kHalf) {
    __m256 columns[kLanes];
    for (int64_t i = 0; i < kLanes; ++i) {
      const auto at = [&](int64_t l) { return _mm256_loadu_ps(acc + l * d + c); };
      columns[i] = batched ? at(i)
                           : _mm256_add_ps(_mm256_add_ps(at(i), at(i + 2 * kLanes)),
                                           _mm256_add_ps(at(i + kLanes), at(i + 3 * kLanes)));
    }
    _mm256_storeu_ps(out + c, reduce_across(columns));
  }
}

}  // namespace

void attend_ggml_order_avx2(const float* q, const uint16_t* keys, const uint16_t* values, int64_t count, int64_t d,
                            float scale, bool batched, float* scratch, float* out) {
  const int64_t padded = (count + 4 * kLanes - 1) / (4 * kLanes) * (4 * kLanes);
  float* scores = scratch;             // (padded)
  float* q_rounded = scores + padded;  // (D)
  float* acc = q_rounded + d;          // (64, D)
  for (int64_t c = 0; c < d; c += kHalf) _mm256_storeu_ps(q_rounded + c, round_to_half(_mm256_loadu_ps(q + c)));
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < count; ++p) {
    scores[p] = half_dot(keys + p * d, q_rounded, d, batched) * scale;
    max = std::max(max, scores[p]);
  }
  for (int64_t p = count; p < padded; ++p) scores[p] = -std::numeric_limits<float>::infinity();
  double sum = 0.0;
  const int64_t chunks = (count + kLanes - 1) / kLanes;
  const __m256 max_vector = _mm256_set1_ps(max);
  for (int64_t c = 0; c < chunks; ++c) {
    float* chunk = scores + c * kLanes;
    const __m256 low = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(chunk), max_vector));
    const __m256 high = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(chunk + kHalf), max_vector));
    _mm256_storeu_ps(chunk, low);
    _mm256_storeu_ps(chunk + kHalf, high);
    sum += static_cast<double>(reduce_16(low, high));
  }
  const __m256 inverse = _mm256_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t i = 0; i < chunks * kLanes; i += kHalf) {
    _mm256_storeu_ps(scores + i, round_to_half(_mm256_mul_ps(_mm256_loadu_ps(scores + i), inverse)));
  }
  weighted_values(scores, values, count, d, batched, acc, out);
}

}  // namespace anvil::cpu
