// widen_half_row with AVX2 + F16C: eight elements per instruction.
#include <immintrin.h>

#include "anvil/core/convert.h"
#include "cpu/half_convert.h"

namespace anvil::cpu {

void widen_half_row_avx2(DType dtype, const void* src, float* dst, int64_t n) {
  const auto* halves = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == DType::F16) {
    for (; i + 8 <= n; i += 8) {
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(halves + i));
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(packed));
    }
  } else {
    for (; i + 8 <= n; i += 8) {  // bf16 is the high half of an f32
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(halves + i));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(packed), 16)));
    }
  }
  if (i < n) convert_host(dtype, halves + i, DType::F32, dst + i, n - i);
}

}  // namespace anvil::cpu
