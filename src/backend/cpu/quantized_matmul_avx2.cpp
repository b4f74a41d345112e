// AVX2 kernels for quantized_matmul: one 32-element block per 256-bit vector. Codes are
// unsigned (nibbles, 5-bit and 6-bit values) so that
// _mm256_maddubs_epi16 multiplies them with the signed activation codes; offsets (-8, -16,
// -32) and mins are applied once per block from the activation code sums.
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "anvil/core/quant.h"
#include "cpu/quantized_matmul_kernels.h"

namespace anvil::cpu::qmm {
namespace {

uint16_t load_u16(const uint8_t* bytes) {
  uint16_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

float load_f16(const uint8_t* bytes) { return _cvtsh_ss(load_u16(bytes)); }

float hsum(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

// u8 x s8 products summed in fours: 8 int32 lanes.
__m256i dot_u8_s8(__m256i unsigned_codes, __m256i signed_codes) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned_codes, signed_codes), _mm256_set1_epi16(1));
}

// 16 bytes of nibbles -> 32 codes: low nibbles (elements 0..15), then high ones.
__m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Bit j of the little-endian u32 at qh -> 0x10 in byte j.
__m256i unpack_high_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit_of_byte = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_of_byte), bit_of_byte);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// Legacy formats: unsigned codes, w = d * (code + kOffset) or d * code + m. (Q8_0 and Q4_1
// have their own kernels: quantized_matmul_exact_avx2.cpp.)
struct Q4_0Format {
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = -8;
  static __m256i codes(const uint8_t* block) { return unpack_nibbles(block + 2); }
};
struct Q5_0Format {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = -16;
  static __m256i codes(const uint8_t* block) {
    return _mm256_or_si256(unpack_nibbles(block + 6), unpack_high_bits(block + 2));
  }
};
struct Q5_1Format {
  static constexpr size_t kBytes = sizeof(BlockQ5_1);
  static constexpr bool kHasMin = true;
  static constexpr int kOffset = 0;
  static __m256i codes(const uint8_t* block) {
    return _mm256_or_si256(unpack_nibbles(block + 8), unpack_high_bits(block + 4));
  }
};

// Per block and row: (d * dx) * dot(codes, x) + a correction for the code offset or min:
// (d * kOffset * dx) * sum(x codes), or m * s with s the block's rounded dx * sum(x codes).
template <typename Format>
void legacy_avx2(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  __m256 acc[kTileRows];
  float correction[kTileRows] = {};
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / kQuantBlock; ++b) {
    const uint8_t* block = weight_row + b * static_cast<int64_t>(Format::kBytes);
    const __m256i codes = Format::codes(block);
    const float d = load_f16(block);
    const float c = Format::kHasMin ? load_f16(block + 2) : d * static_cast<float>(Format::kOffset);
    for (int r = 0; r < tile.rows; ++r) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile.codes[r] + b * kQuantBlock));
      const __m256i dot = dot_u8_s8(codes, x);
      const float dx = tile.scales[r][b];
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(d * dx), acc[r]);
      if (Format::kHasMin) correction[r] += c * tile.block_sums[r][b];
      if (Format::kOffset != 0) correction[r] += (c * dx) * static_cast<float>(tile.sums[r][b]);
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = hsum(acc[r]) + correction[r];
}

// ggml's get_scale_min_k4 for the eight sub-blocks of a Q4_K / Q5_K super-block.
void unpack_k_scales(const uint8_t* packed, uint8_t* scales, uint8_t* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = packed[j] & 63U;
    mins[j] = packed[j + 4] & 63U;
    scales[j + 4] = static_cast<uint8_t>((packed[j + 8] & 0x0FU) | ((packed[j] >> 6) << 4));
    mins[j + 4] = static_cast<uint8_t>((packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4));
  }
}

// sum_j mins[j] * (code sum of sub-block j), sub-block j = sum groups 2j and 2j+1.
int min_dot(const uint8_t* mins, const int16_t* sums) {
  int total = 0;
  for (int j = 0; j < 8; ++j) total += mins[j] * (sums[2 * j] + sums[2 * j + 1]);
  return total;
}

// Q4_K / Q5_K: per super-block and row, (d * dx) * sum_j scale_j * dot_j - (dmin * dx) * min_dot.
template <bool kFiveBit>
void q45_k_avx2(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  __m256 acc[kTileRows];
  float correction[kTileRows] = {};
  for (__m256& a : acc) a = _mm256_setzero_ps();
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const uint8_t* block = weight_row + b * static_cast<int64_t>(sizeof(Block));
    const uint8_t* qs = block + offsetof(Block, qs);
    uint8_t scales[8];
    uint8_t mins[8];
    unpack_k_scales(block + offsetof(Block, scales), scales, mins);
    __m256i sums[kTileRows];
    for (__m256i& s : sums) s = _mm256_setzero_si256();
    __m256i high_bits = _mm256_setzero_si256();
    if constexpr (kFiveBit)
      high_bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + offsetof(Block, qh)));
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      __m256i low = _mm256_and_si256(bytes, low_mask);
      __m256i high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low_mask);
      if (kFiveBit) {  // bit 2c of qh[l] -> sub-block 2c, bit 2c+1 -> 2c+1 (high_bits shifted by 2c)
        low = _mm256_or_si256(low, _mm256_and_si256(_mm256_slli_epi16(high_bits, 4), _mm256_set1_epi8(0x10)));
        high = _mm256_or_si256(high, _mm256_and_si256(_mm256_slli_epi16(high_bits, 3), _mm256_set1_epi8(0x10)));
        high_bits = _mm256_srli_epi16(high_bits, 2);
      }
      const __m256i scale_low = _mm256_set1_epi16(scales[2 * c]);
      const __m256i scale_high = _mm256_set1_epi16(scales[2 * c + 1]);
      for (int r = 0; r < tile.rows; ++r) {
        const int8_t* x = tile.codes[r] + b * kQuantSuperBlock + 64 * c;
        const __m256i x_low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
        const __m256i x_high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
        const __m256i p_low = _mm256_madd_epi16(_mm256_maddubs_epi16(low, x_low), scale_low);
        const __m256i p_high = _mm256_madd_epi16(_mm256_maddubs_epi16(high, x_high), scale_high);
        sums[r] = _mm256_add_epi32(sums[r], _mm256_add_epi32(p_low, p_high));
      }
    }
    const float d = load_f16(block + offsetof(Block, d));
    const float dmin = load_f16(block + offsetof(Block, dmin));
    for (int r = 0; r < tile.rows; ++r) {
      const float dx = tile.scales[r][b];
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[r]), _mm256_set1_ps(d * dx), acc[r]);
      const int16_t* group_sums = tile.sums[r] + b * (kQuantSuperBlock / kSuperSumGroup);
      correction[r] -= (dmin * dx) * static_cast<float>(min_dot(mins, group_sums));
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = hsum(acc[r]) + correction[r];
}

// Q6_K: code = low nibble (ql) | 2 high bits (qh) << 4 in [0, 63], w = (d * scale_s) * (code - 32).
// Half h of a super-block: group g of 32 takes ql[64h + 32 (g % 2) + l] nibble g / 2 and
// qh[32h + l] bits 2g; sub-blocks of 16 take one int8 scale each.
void q6_k_avx2(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  __m256 acc[kTileRows];
  float correction[kTileRows] = {};
  for (__m256& a : acc) a = _mm256_setzero_ps();
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  const __m256i two_bits = _mm256_set1_epi8(0x03);
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const uint8_t* block = weight_row + b * static_cast<int64_t>(sizeof(BlockQ6_K));
    const uint8_t* ql = block + offsetof(BlockQ6_K, ql);
    const auto* scales = reinterpret_cast<const int8_t*>(block + offsetof(BlockQ6_K, scales));
    __m256i sums[kTileRows];
    for (__m256i& s : sums) s = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      __m256i high_bits =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + offsetof(BlockQ6_K, qh) + 32 * h));
      for (int g = 0; g < 4; ++g) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32 * (g % 2)));
        const __m256i low = _mm256_and_si256(g < 2 ? bytes : _mm256_srli_epi16(bytes, 4), low_mask);
        const __m256i high = _mm256_slli_epi16(_mm256_and_si256(high_bits, two_bits), 4);
        high_bits = _mm256_srli_epi16(high_bits, 2);
        const __m256i codes = _mm256_or_si256(low, high);
        const int s = 8 * h + 2 * g;  // sub-blocks s (elements 0..15 of the group) and s + 1
        const __m256i scale = _mm256_set_m128i(_mm_set1_epi16(scales[s + 1]), _mm_set1_epi16(scales[s]));
        for (int r = 0; r < tile.rows; ++r) {
          const int8_t* x = tile.codes[r] + b * kQuantSuperBlock + 128 * h + 32 * g;
          const __m256i product = _mm256_maddubs_epi16(codes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
          sums[r] = _mm256_add_epi32(sums[r], _mm256_madd_epi16(product, scale));
        }
      }
    }
    const float d = load_f16(block + offsetof(BlockQ6_K, d));
    for (int r = 0; r < tile.rows; ++r) {
      const int16_t* group_sums = tile.sums[r] + b * (kQuantSuperBlock / kSuperSumGroup);
      int offset_dot = 0;  // sum_s scale_s * sum(x codes of s): the -32 of every code
      for (int s = 0; s < 16; ++s) offset_dot += scales[s] * group_sums[s];
      const float dx = tile.scales[r][b];
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[r]), _mm256_set1_ps(d * dx), acc[r]);
      correction[r] -= (d * dx) * static_cast<float>(32 * offset_dot);
    }
  }
  for (int r = 0; r < tile.rows; ++r) out[r] = hsum(acc[r]) + correction[r];
}

// 8 codes of x * inverse as int32, as the scalar round_to_code: max/min return their second
// operand for NaN, so NaN gives -127; rounding is to nearest, ties to even.
__m256i codes_8(const float* x, __m256 inverse) {
  __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inverse);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0F)), _mm256_set1_ps(127.0F));
  return _mm256_cvttps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

int hsum_epi32(__m256i v) {
  const __m128i quad = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i pair = _mm_add_epi32(quad, _mm_unpackhi_epi64(quad, quad));
  return _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32(pair, 1)));
}

}  // namespace

void quantize_row_avx2(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                       int16_t* sums) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t start = 0; start < k; start += block) {
    __m256 amax8 = _mm256_setzero_ps();
    for (int64_t i = start; i < start + block; i += 8) {
      amax8 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), amax8);  // NaN is skipped
    }
    __m128 amax4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
    amax4 = _mm_max_ps(amax4, _mm_movehl_ps(amax4, amax4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(amax4, _mm_movehdup_ps(amax4)));
    scales[start / block] = amax / 127.0F;
    const __m256 inverse = _mm256_set1_ps(amax > 0.0F ? 127.0F / amax : 0.0F);
    for (int64_t i = start; i < start + block; i += 32) {
      const __m256i a = codes_8(x + i, inverse);
      const __m256i b = codes_8(x + i + 8, inverse);
      const __m256i c = codes_8(x + i + 16, inverse);
      const __m256i d = codes_8(x + i + 24, inverse);
      // packs interleave 128-bit lanes: bytes come out as a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 ...
      const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
      const __m256i ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), ordered);
      const int first = hsum_epi32(_mm256_add_epi32(a, b));
      const int second = hsum_epi32(_mm256_add_epi32(c, d));
      if (sum_group == 16) {
        sums[i / 16] = static_cast<int16_t>(first);
        sums[i / 16 + 1] = static_cast<int16_t>(second);
      } else {
        sums[i / 32] = static_cast<int16_t>(first + second);
      }
    }
  }
}

RowKernel avx2_row_kernel(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
      return avx2_ggml_order_kernel(dtype);
    case DType::Q4_0:
      return legacy_avx2<Q4_0Format>;
    case DType::Q4_1:
      return avx2_ggml_order_kernel(dtype);
    case DType::Q5_0:
      return legacy_avx2<Q5_0Format>;
    case DType::Q5_1:
      return legacy_avx2<Q5_1Format>;
    case DType::Q4_K:
      return q45_k_avx2<false>;
    case DType::Q5_K:
      return q45_k_avx2<true>;
    case DType::Q6_K:
      return q6_k_avx2;
    default:
      return nullptr;
  }
}

}  // namespace anvil::cpu::qmm
