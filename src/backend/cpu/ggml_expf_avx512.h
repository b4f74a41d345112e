#pragma once
// ggml-cpu's AVX-512 expf, for the kernels that reproduce llama.cpp's arithmetic (include
// only from *_avx512.cpp files: it needs their ISA flags).
#include <immintrin.h>

#include <limits>

namespace anvil::cpu {

// ggml's AVX-512 expf (ggml_v_expf): exp(x) = 2^n * j(b), n = round(x / ln 2), b the
// remainder, j a degree-5 polynomial; |n| > 192 gives 0 or inf.
inline __m512 ggml_expf(__m512 x) {
  const __m512 shift = _mm512_set1_ps(0x1.8p23F);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0F), shift);
  const __m512 n = _mm512_sub_ps(z, shift);
  const __m512 b =
      _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20F), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1F), x));
  const __mmask16 out_of_range = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7F), b, _mm512_set1_ps(0x1.573e2ep-5F)), u,
                      _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3F), b, _mm512_set1_ps(0x1.fffdb6p-2F))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1F), b, _mm512_set1_ps(1.0F)));
  const __m512 result = _mm512_scalef_ps(j, n);
  if (out_of_range == 0) return result;
  const __m512 saturated =
      _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                           _mm512_set1_ps(std::numeric_limits<float>::infinity()), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(out_of_range, result, saturated);
}

// ggml's vector SiLU: x / (1 + expf(0 - x)), expf as above.
inline __m512 ggml_silu(__m512 x) {
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0F), ggml_expf(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

}  // namespace anvil::cpu
