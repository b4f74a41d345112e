#pragma once
// ggml-cpu's AVX-512 expf computed 8 lanes at a time with AVX2 + FMA, lane for lane the same
// operations and so the same bits (include only from *_avx2.cpp files: it needs their ISA
// flags). Only _mm512_scalef_ps has no AVX2 twin: j * 2^n is done as (j * 2^(n - n/2)) *
// 2^(n/2), the first product exact, the second rounded once, as scalef rounds it.
#include <immintrin.h>

#include <limits>

namespace anvil::cpu {

// 2^k for integer k in [-126, 127], as f32.
inline __m256 power_of_two(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

inline __m256 ggml_expf_8(__m256 x) {
  const __m256 shift = _mm256_set1_ps(0x1.8p23F);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0F), shift);
  const __m256 n = _mm256_sub_ps(z, shift);
  const __m256 b =
      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20F), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1F), x));
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0F), n);
  const __m256 out_of_range = _mm256_cmp_ps(magnitude, _mm256_set1_ps(192), _CMP_GT_OQ);
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7F), b, _mm256_set1_ps(0x1.573e2ep-5F)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3F), b, _mm256_set1_ps(0x1.fffdb6p-2F))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1F), b, _mm256_set1_ps(1.0F)));
  // In range, |n| <= 192: both halves of n are within [-96, 96].
  const __m256i whole = _mm256_cvtps_epi32(_mm256_andnot_ps(out_of_range, n));
  const __m256i half = _mm256_srai_epi32(whole, 1);
  const __m256 result =
      _mm256_mul_ps(_mm256_mul_ps(j, power_of_two(_mm256_sub_epi32(whole, half))), power_of_two(half));
  if (_mm256_movemask_ps(out_of_range) == 0) return result;
  const __m256 saturated = _mm256_blendv_ps(_mm256_set1_ps(std::numeric_limits<float>::infinity()), _mm256_setzero_ps(),
                                            _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
  return _mm256_blendv_ps(result, saturated, out_of_range);
}

// ggml's vector SiLU: x / (1 + expf(0 - x)).
inline __m256 ggml_silu_8(__m256 x) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0F), ggml_expf_8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

}  // namespace anvil::cpu
