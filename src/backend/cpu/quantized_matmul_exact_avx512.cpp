// AVX-512 kernels for Q8_0 and Q4_1 weights in ggml-cpu's summation order (see
// quantized_matmul_kernels.h, "ggml order"): per output, 8 f32 lanes, lane j accumulating
// fma(d_w * d_x, dot of elements 4j..4j+3 of the block, lane) block after block, then
// ggml's hsum_float_8 tree; Q4_1 adds the min terms, fma(m_w, s_x, summs) block after block,
// at the end. Every step is a lane-wise IEEE operation, so the AVX2 and scalar versions give
// the same bits. With several activation rows, two weight rows share each 512-bit vector
// (8 lanes each); a single row (decode) uses 256-bit vectors.
// GCC 12's _mm512_broadcast_i64x4 passes an intentionally undefined vector as the unused
// merge source, which -Wuninitialized reports from inside the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

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

template <bool kVnni>
__m256i dot4_256(__m256i unsigned_codes, __m256i signed_codes) {
  if constexpr (kVnni) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned_codes, signed_codes);
  } else {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned_codes, signed_codes), _mm256_set1_epi16(1));
  }
}

template <bool kVnni>
__m512i dot4_512(__m512i unsigned_codes, __m512i signed_codes) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), unsigned_codes, signed_codes);
  } else {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(unsigned_codes, signed_codes), _mm512_set1_epi16(1));
  }
}

// The 32 weight codes of a block in element order: Q4_1 nibbles (low ones are elements
// 0..15), or Q8_0's signed bytes.
template <bool kQ4_1>
__m256i weight_codes(const uint8_t* block) {
  if constexpr (kQ4_1) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 4));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes), _mm256_set1_epi8(0x0F));
  } else {
    return load_256(block + 2);
  }
}

// kRows activation rows, one 256-bit accumulator each (what Zen 4, which splits 512-bit
// operations in two, runs fastest when one row is all there is: decode).
template <bool kQ4_1, bool kVnni, int kRows>
void exact_rows_256(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  constexpr int64_t kBytes = kQ4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
  __m256 acc[kRows];
  float summs[kRows] = {};
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const uint8_t* block = weight_row + b * kBytes;
    const float d = load_f16(block);
    __m256i codes = weight_codes<kQ4_1>(block);
    __m256i magnitudes = codes;
    if constexpr (!kQ4_1) magnitudes = _mm256_sign_epi8(codes, codes);
    float m = 0.0F;
    if constexpr (kQ4_1) m = load_f16(block + 2);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      if constexpr (kQ4_1) summs[r] = std::fma(m, tile.block_sums[r][b], summs[r]);
      __m256i xs = load_256(tile.codes[r] + b * kQuantBlock);
      if constexpr (!kQ4_1) xs = _mm256_sign_epi8(xs, codes);  // |w| * (x * sign(w))
      const __m256 scale = _mm256_set1_ps(d * tile.scales[r][b]);
      acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot4_256<kVnni>(magnitudes, xs)), acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) out[r] = hsum_8(acc[r]) + summs[r];
}

template <bool kQ4_1, bool kVnni>
void exact_avx512(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  switch (tile.rows) {
    case 1:
      return exact_rows_256<kQ4_1, kVnni, 1>(weight_row, k, tile, out);
    case 2:
      return exact_rows_256<kQ4_1, kVnni, 2>(weight_row, k, tile, out);
    case 3:
      return exact_rows_256<kQ4_1, kVnni, 3>(weight_row, k, tile, out);
    default:
      return exact_rows_256<kQ4_1, kVnni, 4>(weight_row, k, tile, out);
  }
}

// Two weight rows at once, w0 in the low and w1 in the high 8 lanes of each activation row's
// accumulator: the weight codes and scales are unpacked once for every activation row, and
// each activation block is one broadcast load (the layout prefill and decode both spend
// most of their time in).
template <bool kQ4_1>
__m512i pair_codes(const uint8_t* block0, const uint8_t* block1) {
  if constexpr (kQ4_1) {
    const __m512i quads =
        _mm512_castsi256_si512(_mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block1 + 4)),
                                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(block0 + 4))));
    const __m512i spread = _mm512_shuffle_i64x2(quads, quads, _MM_SHUFFLE(1, 1, 0, 0));  // q0 q0 q1 q1
    const __m512i shifted = _mm512_mask_srli_epi16(spread, 0xFF00FF00U, spread, 4);      // 128-bit lanes 1 and 3
    return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F));
  } else {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load_256(block0 + 2)), load_256(block1 + 2), 1);
  }
}

template <bool kQ4_1, bool kVnni, int kRows>
void exact_pair_rows(const uint8_t* row0, const uint8_t* row1, int64_t k, const ActTile& tile, float* out0,
                     float* out1) {
  constexpr int64_t kBytes = kQ4_1 ? sizeof(BlockQ4_1) : sizeof(BlockQ8_0);
  __m512 acc[kRows];
  __m128 summs[kRows];  // lanes 0 and 1: the two weight rows
  for (int r = 0; r < kRows; ++r) {
    acc[r] = _mm512_setzero_ps();
    summs[r] = _mm_setzero_ps();
  }
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const uint8_t* block0 = row0 + b * kBytes;
    const uint8_t* block1 = row1 + b * kBytes;
    const __m512 d = _mm512_insertf32x8(_mm512_set1_ps(load_f16(block0)), _mm256_set1_ps(load_f16(block1)), 1);
    __m128 m = _mm_setzero_ps();
    if constexpr (kQ4_1) m = _mm_setr_ps(load_f16(block0 + 2), load_f16(block1 + 2), 0.0F, 0.0F);
    const __m512i codes = pair_codes<kQ4_1>(block0, block1);
    __m512i magnitudes = codes;
    __mmask64 negative = 0;
    if constexpr (!kQ4_1) {
      negative = _mm512_movepi8_mask(codes);
      magnitudes = _mm512_abs_epi8(codes);
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      __m512i xs = _mm512_broadcast_i64x4(load_256(tile.codes[r] + b * kQuantBlock));
      if constexpr (!kQ4_1) xs = _mm512_mask_sub_epi8(xs, negative, _mm512_setzero_si512(), xs);
      const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(tile.scales[r][b]));
      acc[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot4_512<kVnni>(magnitudes, xs)), acc[r]);
      if constexpr (kQ4_1) summs[r] = _mm_fmadd_ps(m, _mm_set1_ps(tile.block_sums[r][b]), summs[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    out0[r] = hsum_8(_mm512_castps512_ps256(acc[r])) + _mm_cvtss_f32(summs[r]);
    out1[r] = hsum_8(_mm512_extractf32x8_ps(acc[r], 1)) + _mm_cvtss_f32(_mm_movehdup_ps(summs[r]));
  }
}

template <bool kQ4_1, bool kVnni>
void exact_pair_avx512(const uint8_t* row0, const uint8_t* row1, int64_t k, const ActTile& tile, float* out0,
                       float* out1) {
  switch (tile.rows) {
    case 1:
      return exact_pair_rows<kQ4_1, kVnni, 1>(row0, row1, k, tile, out0, out1);
    case 2:
      return exact_pair_rows<kQ4_1, kVnni, 2>(row0, row1, k, tile, out0, out1);
    case 3:
      return exact_pair_rows<kQ4_1, kVnni, 3>(row0, row1, k, tile, out0, out1);
    default:
      return exact_pair_rows<kQ4_1, kVnni, 4>(row0, row1, k, tile, out0, out1);
  }
}

}  // namespace

PairKernel avx512_ggml_order_pair_kernel(DType dtype, bool vnni) {
  switch (dtype) {
    case DType::Q8_0:
      return vnni ? exact_pair_avx512<false, true> : exact_pair_avx512<false, false>;
    case DType::Q4_1:
      return vnni ? exact_pair_avx512<true, true> : exact_pair_avx512<true, false>;
    default:
      return nullptr;
  }
}

RowKernel avx512_ggml_order_kernel(DType dtype, bool vnni) {
  switch (dtype) {
    case DType::Q8_0:
      return vnni ? exact_avx512<false, true> : exact_avx512<false, false>;
    case DType::Q4_1:
      return vnni ? exact_avx512<true, true> : exact_avx512<true, false>;
    default:
      return nullptr;
  }
}

}  // namespace anvil::cpu::qmm
