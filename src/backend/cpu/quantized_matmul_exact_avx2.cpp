// AVX2 kernels for Q8_0 and Q4_1 weights in ggml-cpu's summation order (the same lane-wise
// operations as quantized_matmul_exact_avx512.cpp, so the same bits; see
// quantized_matmul_kernels.h): one 32-element block per 256-bit vector and activation row.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "anvil/core/quant.h"
#include "cpu/quantized_matmul_kernels.h"

namespace anvil::cpu::qmm {
namespace {

float load_f16(const uint8_t* bytes) {
  uint16_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return _cvtsh_ss(value);
}

__m256i load_256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// ggml's hsum_float_8: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
float hsum_8(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

template <bool kQ4_1, int kRows>
void exact_rows(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  constexpr int64_t kBytes = kQ4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
  __m256 acc[kRows];
  float summs[kRows] = {};
  for (__m256& a : acc) a = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const uint8_t* block = weight_row + b * kBytes;
    const float d = load_f16(block);
    __m256i codes;
    if constexpr (kQ4_1) {
      const float m = load_f16(block + 2);
      for (int r = 0; r < kRows; ++r) summs[r] = std::fma(m, tile.block_sums[r][b], summs[r]);
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 4));
      codes = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes), _mm256_set1_epi8(0x0F));
    } else {
      codes = load_256(block + 2);
    }
    for (int r = 0; r < kRows; ++r) {
      __m256i xs = load_256(tile.codes[r] + b * kQuantBlock);
      __m256i magnitudes = codes;
      if constexpr (!kQ4_1) {  // |w| * (x * sign(w))
        xs = _mm256_sign_epi8(xs, codes);
        magnitudes = _mm256_sign_epi8(codes, codes);
      }
      const __m256 dots = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, xs), ones));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * tile.scales[r][b]), dots, acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = hsum_8(acc[r]) + summs[r];
}

template <bool kQ4_1>
void exact_avx2(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  switch (tile.rows) {
    case 1:
      return exact_rows<kQ4_1, 1>(weight_row, k, tile, out);
    case 2:
      return exact_rows<kQ4_1, 2>(weight_row, k, tile, out);
    case 3:
      return exact_rows<kQ4_1, 3>(weight_row, k, tile, out);
    default:
      return exact_rows<kQ4_1, 4>(weight_row, k, tile, out);
  }
}

}  // namespace

RowKernel avx2_ggml_order_kernel(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
      return exact_avx2<false>;
    case DType::Q4_1:
      return exact_avx2<true>;
    default:
      return nullptr;
  }
}

}  // namespace anvil::cpu::qmm
