// llama.cpp's attention for f16 caches to the bit (see paged_attention_kernels.h): ggml-cpu
// with flash attention off computes K.Q as an f16 matmul (Q rounded to f16), an f32 softmax,
// and P.V as an f16 matmul (P rounded to f16). Which f16 dot runs depends on the batch:
// llamafile's tinyBLAS (two or more tokens: 16 lanes, lane i accumulating elements i, i+16,
// ... with fma, then _mm512_reduce_add_ps) or ggml_vec_dot_f16 (one token: 4 x 16 lanes
// over steps of 64 elements, summed (a0 + a2) + (a1 + a3), then _mm512_reduce_add_ps). The
// softmax uses ggml's AVX-512 expf, sums the chunks of 16 positions in double and scales by
// float(1 / sum). Every lane here holds one of those accumulators, so the roundings match.
// GCC 12's AVX-512 conversion/extract intrinsics pass an intentionally undefined vector as
// the unused merge source, which -Wmaybe-uninitialized reports from inside the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/ggml_expf_avx512.h"
#include "cpu/paged_attention_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kLanes = 16;

__m512 load_half(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// f32 -> f16 (round to nearest even) -> f32.
__m512 round_to_half(__m512 v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }

// _mm512_reduce_add_ps as GCC (which built the reference) implements it, written out so
// that another compiler's intrinsic cannot change the order.
float reduce_16(__m512 v) {
  const __m256 eights = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
  const __m128 fours = _mm_add_ps(_mm256_extractf128_ps(eights, 1), _mm256_castps256_ps128(eights));
  const __m128 twos = _mm_add_ps(fours, _mm_shuffle_ps(fours, fours, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(_mm_add_ss(twos, _mm_movehdup_ps(twos)));
}

// Lane c of the result: reduce_16 over (a[0][c], ..., a[15][c]), GCC's tree:
// ((l0 + l8) + (l4 + l12)) + ((l2 + l10) + (l6 + l14)), plus the same for odd lanes.
__m512 reduce_across(const __m512* a) {
  __m512 half[8];
  for (int i = 0; i < 8; ++i) half[i] = _mm512_add_ps(a[i + 8], a[i]);
  __m512 quarter[4];
  for (int i = 0; i < 4; ++i) quarter[i] = _mm512_add_ps(half[i + 4], half[i]);
  return _mm512_add_ps(_mm512_add_ps(quarter[0], quarter[2]), _mm512_add_ps(quarter[1], quarter[3]));
}

// a . b over n (a multiple of 64) elements: tinyBLAS's order when batched, else
// ggml_vec_dot_f16's; b is f32 holding f16 values.
float half_dot(const uint16_t* a, const float* b, int64_t n, bool batched) {
  if (batched) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t c = 0; c < n; c += kLanes) acc = _mm512_fmadd_ps(load_half(a + c), _mm512_loadu_ps(b + c), acc);
    return reduce_16(acc);
  }
  __m512 acc[4];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  for (int64_t c = 0; c < n; c += 4 * kLanes) {
    for (int j = 0; j < 4; ++j) {
      acc[j] = _mm512_fmadd_ps(load_half(a + c + j * kLanes), _mm512_loadu_ps(b + c + j * kLanes), acc[j]);
    }
  }
  return reduce_16(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
}

// probs (count, f16 values in f32) . values (count, D) into out (D): the lane of position p
// is p % 16 (batched, tinyBLAS) or p % 64 (ggml_vec_dot_f16); acc has room for 64 * D.
void weighted_values(const float* probs, const uint16_t* values, int64_t count, int64_t d, bool batched, float* acc,
                     float* out) {
  const int64_t lanes = batched ? kLanes : 4 * kLanes;
  std::memset(acc, 0, static_cast<size_t>(lanes * d) * sizeof(float));
  for (int64_t p = 0; p < count; ++p) {
    const __m512 weight = _mm512_set1_ps(probs[p]);
    float* lane = acc + (p % lanes) * d;
    for (int64_t c = 0; c < d; c += kLanes) {
      _mm512_storeu_ps(lane + c, _mm512_fmadd_ps(load_half(values + p * d + c), weight, _mm512_loadu_ps(lane + c)));
    }
  }
  for (int64_t c = 0; c < d; c += kLanes) {
    __m512 columns[kLanes];
    for (int64_t i = 0; i < kLanes; ++i) {
      const auto at = [&](int64_t l) { return _mm512_loadu_ps(acc + l * d + c); };
      columns[i] = batched ? at(i)
                           : _mm512_add_ps(_mm512_add_ps(at(i), at(i + 2 * kLanes)),
                                           _mm512_add_ps(at(i + kLanes), at(i + 3 * kLanes)));
    }
    _mm512_storeu_ps(out + c, reduce_across(columns));
  }
}

}  // namespace

void attend_ggml_order_avx512(const float* q, const uint16_t* keys, const uint16_t* values, int64_t count, int64_t d,
                              float scale, bool batched, float* scratch, float* out) {
  const int64_t padded = (count + 4 * kLanes - 1) / (4 * kLanes) * (4 * kLanes);
  float* scores = scratch;             // (padded)
  float* q_rounded = scores + padded;  // (D)
  float* acc = q_rounded + d;          // (64, D)
  for (int64_t c = 0; c < d; c += kLanes) _mm512_storeu_ps(q_rounded + c, round_to_half(_mm512_loadu_ps(q + c)));
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < count; ++p) {
    scores[p] = half_dot(keys + p * d, q_rounded, d, batched) * scale;
    max = std::max(max, scores[p]);
  }
  for (int64_t p = count; p < padded; ++p) scores[p] = -std::numeric_limits<float>::infinity();
  double sum = 0.0;
  const int64_t chunks = (count + kLanes - 1) / kLanes;
  for (int64_t c = 0; c < chunks; ++c) {
    const __m512 e = ggml_expf(_mm512_sub_ps(_mm512_loadu_ps(scores + c * kLanes), _mm512_set1_ps(max)));
    _mm512_storeu_ps(scores + c * kLanes, e);
    sum += static_cast<double>(reduce_16(e));
  }
  const auto inverse = _mm512_set1_ps(static_cast<float>(1.0 / sum));
  for (int64_t c = 0; c < chunks; ++c) {
    _mm512_storeu_ps(scores + c * kLanes, round_to_half(_mm512_mul_ps(_mm512_loadu_ps(scores + c * kLanes), inverse)));
  }
  weighted_values(scores, values, count, d, batched, acc, out);
}

}  // namespace anvil::cpu

#pragma GCC diagnostic pop
