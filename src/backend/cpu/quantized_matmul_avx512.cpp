// AVX-512 kernels for quantized_matmul, with and without VNNI.
// Legacy formats (32-element blocks; Q8_0 and Q4_1 use quantized_matmul_exact_avx512.cpp's
// kernels, in llama.cpp's summation order) go 16 blocks at a time: two blocks per 512-bit vector
// give 16 int32 lanes of partial dots (VNNI: _mm512_dpbusd_epi32; else maddubs + madd);
// a transpose-and-add tree turns the 8 vectors into one vector of 16 block dots, and the
// 16 block scales (picked out of the blocks with permutes, once per weight row) are
// applied with vector f32 multiplies instead of per-block scalar work.
// K-quants go one 256-element super-block at a time; sub-block scales are applied in
// int32 (VNNI: _mm512_dpwssd_epi32), and d * dx once per super-block.
// Codes are unsigned and offsets/mins use the activation code sums, as in the AVX2 kernels.
// GCC 12's _mm512_inserti64x4 / _mm512_broadcast_i64x4 pass an intentionally undefined
// vector as the unused merge source, which -Wuninitialized reports from inside the header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "anvil/core/quant.h"
#include "cpu/quantized_matmul_kernels.h"

namespace anvil::cpu::qmm {
namespace {

constexpr int kGroupBlocks = 16;  // legacy blocks per step

uint16_t load_u16(const uint8_t* bytes) {
  uint16_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

uint32_t load_u32(const uint8_t* bytes) {
  uint32_t value;
  std::memcpy(&value, bytes, sizeof(value));
  return value;
}

float load_f16(const uint8_t* bytes) { return _cvtsh_ss(load_u16(bytes)); }

__m512i load_512(const void* p) { return _mm512_loadu_si512(p); }
__m256i load_256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
__m128i load_128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// u8 x s8 products summed in fours: 16 int32 lanes.
template <bool kVnni>
__m512i dot_u8_s8(__m512i unsigned_codes, __m512i signed_codes) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), unsigned_codes, signed_codes);
  } else {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(unsigned_codes, signed_codes), _mm512_set1_epi16(1));
  }
}

// acc + pairs (int16) * scales (int16), pairs summed: 16 int32 lanes.
template <bool kVnni>
__m512i add_scaled_pairs(__m512i acc, __m512i pairs, __m512i scales) {
  if constexpr (kVnni) {
    return _mm512_dpwssd_epi32(acc, pairs, scales);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, scales));
  }
}

// out[r] = sum of the 16 lanes of acc[r], r < kRows. One transposing tree for four rows;
// each row's sum is the same tree ((lanes i + i+8) + (i+4 + i+12), then within 128 bits)
// whatever kRows, so an output does not depend on the other rows of its tile.
template <int kRows>
void store_lane_sums(const __m512* acc, float* out) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 a0 = acc[0];
  const __m512 a1 = kRows > 1 ? acc[1] : zero;
  const __m512 a2 = kRows > 2 ? acc[2] : zero;
  const __m512 a3 = kRows > 3 ? acc[3] : zero;
  // 128-bit lanes: row 0 (L0 + L2), row 0 (L1 + L3), row 1 ..., row 1 ...
  const __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  // 128-bit lane r: four partial sums of row r.
  const __m512 rows = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)),
                                    _mm512_shuffle_f32x4(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 halves = _mm512_add_ps(rows, _mm512_permute_ps(rows, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512 sums = _mm512_add_ps(halves, _mm512_permute_ps(halves, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m128 packed = _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), sums));
  _mm_mask_storeu_ps(out, static_cast<__mmask8>((1U << kRows) - 1U), packed);
}

// Calls the kernel instance for the tile's row count (a compile-time count keeps the
// per-row accumulators in registers).
template <RowKernel kOne, RowKernel kTwo, RowKernel kThree, RowKernel kFour>
void dispatch_rows(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  switch (tile.rows) {
    case 1:
      return kOne(weight_row, k, tile, out);
    case 2:
      return kTwo(weight_row, k, tile, out);
    case 3:
      return kThree(weight_row, k, tile, out);
    default:
      return kFour(weight_row, k, tile, out);
  }
}

// ---------------------------------------------------------------------------------------
// Legacy formats.

// Nibbles of one or two blocks -> 64 codes: block 0 low nibbles, high nibbles, block 1 the same.
__m512i unpack_nibbles(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i first = _mm256_broadcastsi128_si256(load_128(qs0));
  const __m512i both =
      qs1 == nullptr ? _mm512_zextsi256_si512(first)
                     : _mm512_inserti64x4(_mm512_castsi256_si512(first), _mm256_broadcastsi128_si256(load_128(qs1)), 1);
  const __m512i shifted = _mm512_mask_srli_epi16(both, 0xFF00FF00U, both, 4);  // 128-bit lanes 1 and 3
  return _mm512_and_si512(shifted, _mm512_set1_epi8(0x0F));
}

// Adds 16 to the codes whose bit is set in the two blocks' 32-bit qh words.
__m512i add_high_bits(__m512i codes, const uint8_t* qh0, const uint8_t* qh1) {
  const uint64_t bits = load_u32(qh0) | (qh1 == nullptr ? uint64_t{0} : uint64_t{load_u32(qh1)} << 32);
  return _mm512_mask_add_epi8(codes, _cvtu64_mask64(bits), codes, _mm512_set1_epi8(16));
}

// Each format: unsigned codes of blocks b0 and b1 (b1 may be nullptr: zero codes);
// w = d * (code + kOffset), or d * code + m when kHasMin (m is the f16 after d). (Q8_0 and
// Q4_1 have their own kernels: quantized_matmul_exact_avx512.cpp.)
struct Q4_0Format {
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = -8;
  static __m512i codes(const uint8_t* b0, const uint8_t* b1) {
    return unpack_nibbles(b0 + 2, b1 == nullptr ? nullptr : b1 + 2);
  }
};
struct Q5_0Format {
  static constexpr size_t kBytes = sizeof(BlockQ5_0);
  static constexpr bool kHasMin = false;
  static constexpr int kOffset = -16;
  static __m512i codes(const uint8_t* b0, const uint8_t* b1) {
    const __m512i low = unpack_nibbles(b0 + 6, b1 == nullptr ? nullptr : b1 + 6);
    return add_high_bits(low, b0 + 2, b1 == nullptr ? nullptr : b1 + 2);
  }
};
struct Q5_1Format {
  static constexpr size_t kBytes = sizeof(BlockQ5_1);
  static constexpr bool kHasMin = true;
  static constexpr int kOffset = 0;
  static __m512i codes(const uint8_t* b0, const uint8_t* b1) {
    const __m512i low = unpack_nibbles(b0 + 8, b1 == nullptr ? nullptr : b1 + 8);
    return add_high_bits(low, b0 + 4, b1 == nullptr ? nullptr : b1 + 4);
  }
};

// dots[p] holds blocks 2p (lanes 0-7) and 2p+1 (lanes 8-15); returns the 16 block sums in
// block order. Three unpack/shuffle-and-add levels leave the blocks in the order
// 0 2 4 6 1 3 5 7 8 10 12 14 9 11 13 15; one permute puts them back.
__m512i reduce_block_dots(const __m512i* dots) {
  __m512i quads[4];
  for (int q = 0; q < 4; ++q) {
    quads[q] = _mm512_add_epi32(_mm512_unpacklo_epi32(dots[2 * q], dots[2 * q + 1]),
                                _mm512_unpackhi_epi32(dots[2 * q], dots[2 * q + 1]));
  }
  const __m512i low =
      _mm512_add_epi32(_mm512_unpacklo_epi64(quads[0], quads[1]), _mm512_unpackhi_epi64(quads[0], quads[1]));
  const __m512i high =
      _mm512_add_epi32(_mm512_unpacklo_epi64(quads[2], quads[3]), _mm512_unpackhi_epi64(quads[2], quads[3]));
  const __m512i sums = _mm512_add_epi32(_mm512_shuffle_i32x4(low, high, 0x88), _mm512_shuffle_i32x4(low, high, 0xDD));
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), sums);
}

// Where the heads (first 2 or 4 bytes: d, or d and m) of a full group of 16 blocks sit,
// for permutes over 128-byte windows of the group: window p of the group feeds lane i
// (u32 lanes; the low u16 when heads are 2 bytes) from its index[p][i] where mask[p] says.
struct HeadTable {
  static constexpr int kMaxWindows = 5;
  bool dword = false;  // heads read as u32 (d and m) when blocks are 4-byte multiples
  int windows = 0;
  uint32_t index[kMaxWindows][kGroupBlocks] = {};
  uint32_t mask[kMaxWindows] = {};
};

constexpr HeadTable make_head_table(size_t block_bytes) {
  HeadTable table;
  table.dword = block_bytes % 4 == 0;
  table.windows = static_cast<int>((kGroupBlocks - 1) * block_bytes / 128) + 1;
  for (int i = 0; i < kGroupBlocks; ++i) {
    const size_t offset = i * block_bytes;
    const size_t window = offset / 128;
    const auto local = static_cast<uint32_t>(offset - 128 * window);
    table.index[window][i] = table.dword ? local / 4 : local / 2;  // u16 case: lane 2i = low half of word i
    table.mask[window] |= table.dword ? (1U << i) : (1U << (2 * i));
  }
  return table;
}

// 64 bytes at `bytes`, of which only the first `valid` may be read (zeros after).
__m512i load_window(const uint8_t* bytes, int64_t valid) {
  if (valid >= 64) return load_512(bytes);
  if (valid <= 0) return _mm512_setzero_si512();
  return _mm512_maskz_loadu_epi8((uint64_t{1} << valid) - 1U, bytes);
}

// The heads of 16 consecutive blocks as 16 u32 (low 16 bits: d; high: m for Q4_1 / Q5_1),
// picked out of the group's bytes with permutes (a gather costs more).
template <typename Format>
__m512i block_heads(const uint8_t* blocks) {
  static constexpr HeadTable kTable = make_head_table(Format::kBytes);
  constexpr int64_t kRegionBytes = kGroupBlocks * static_cast<int64_t>(Format::kBytes);
  __m512i heads = _mm512_setzero_si512();
#pragma GCC unroll 5
  for (int w = 0; w < kTable.windows; ++w) {
    const __m512i low = load_window(blocks + 128 * w, kRegionBytes - 128 * w);
    const __m512i high = load_window(blocks + 128 * w + 64, kRegionBytes - 128 * w - 64);
    const __m512i index = load_512(kTable.index[w]);
    if constexpr (kTable.dword) {
      heads = _mm512_mask_mov_epi32(heads, static_cast<__mmask16>(kTable.mask[w]),
                                    _mm512_permutex2var_epi32(low, index, high));
    } else {
      heads = _mm512_mask_mov_epi16(heads, kTable.mask[w], _mm512_permutex2var_epi16(low, index, high));
    }
  }
  return heads;
}

// The same for the first `count` blocks only (zeros after), with a gather.
template <typename Format>
__m512i gather_block_heads(const uint8_t* blocks, __mmask16 mask) {
  const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int>(Format::kBytes)));
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, offsets, blocks, 1);
}

// Adds `count` (<= 16) blocks starting at block `first` of the row to acc[r], per row:
// sum_b (d_b * dx_b) * dot_b + (d_b * kOffset * dx_b) * sum_b, or + m_b * s_b with min formats
// (s_b the block's rounded dx * code sum, see ActTile).
template <typename Format, bool kVnni, int kRows, bool kFull>
void legacy_group(const uint8_t* blocks, int64_t first, int count, const ActTile& tile, __m512* acc) {
  constexpr int kPairs = kGroupBlocks / 2;
  const int pairs = kFull ? kPairs : (count + 1) / 2;
  __m512i codes[kPairs];
#pragma GCC unroll 8
  for (int p = 0; p < pairs; ++p) {
    const uint8_t* b0 = blocks + 2 * p * Format::kBytes;
    codes[p] = Format::codes(b0, (kFull || 2 * p + 1 < count) ? b0 + Format::kBytes : nullptr);
  }
  const __mmask16 mask = kFull ? __mmask16{0xFFFF} : static_cast<__mmask16>((1U << count) - 1U);
  const __m512i heads = kFull ? block_heads<Format>(blocks) : gather_block_heads<Format>(blocks, mask);
  const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(heads));
  constexpr bool kCorrect = Format::kHasMin || Format::kOffset != 0;
  __m512 c = _mm512_setzero_ps();
  if constexpr (Format::kHasMin) c = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(heads, 16)));
  if constexpr (!Format::kHasMin && Format::kOffset != 0) {
    c = _mm512_mul_ps(d, _mm512_set1_ps(static_cast<float>(Format::kOffset)));
  }
  for (int r = 0; r < kRows; ++r) {
    const int8_t* x = tile.codes[r] + first * kQuantBlock;
    __m512i dots[kPairs];
#pragma GCC unroll 8
    for (int p = 0; p < kPairs; ++p) {
      if (!kFull && p >= pairs) {
        dots[p] = _mm512_setzero_si512();
        continue;
      }
      const __m512i xs =
          (kFull || 2 * p + 1 < count) ? load_512(x + 64 * p) : _mm512_maskz_loadu_epi8(0xFFFFFFFFULL, x + 64 * p);
      dots[p] = dot_u8_s8<kVnni>(codes[p], xs);
    }
    const __m512 dx = _mm512_maskz_loadu_ps(mask, tile.scales[r] + first);
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(reduce_block_dots(dots)), _mm512_mul_ps(d, dx), acc[r]);
    if constexpr (Format::kHasMin) {
      acc[r] = _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(mask, tile.block_sums[r] + first), acc[r]);
    } else if constexpr (kCorrect) {
      const __m512 sums =
          _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(mask, tile.sums[r] + first)));
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(c, dx), sums, acc[r]);
    }
  }
}

// Adds `count` blocks from block `first` on, a pair per vector with its two scales spread
// over the lanes: cheaper than a group for the few blocks left after the last full group.
template <typename Format, bool kVnni, int kRows>
void legacy_pairs(const uint8_t* blocks, int64_t first, int count, const ActTile& tile, __m512* acc) {
  for (int p = 0; 2 * p < count; ++p) {
    const bool two = 2 * p + 1 < count;
    const uint8_t* b0 = blocks + 2 * p * Format::kBytes;
    const uint8_t* b1 = two ? b0 + Format::kBytes : nullptr;
    const __m512i codes = Format::codes(b0, b1);
    const float d0 = load_f16(b0);
    const float d1 = two ? load_f16(b1) : 0.0F;
    const float c0 = Format::kHasMin ? load_f16(b0 + 2) : d0 * static_cast<float>(Format::kOffset);
    const float c1 = !two ? 0.0F : Format::kHasMin ? load_f16(b1 + 2) : d1 * static_cast<float>(Format::kOffset);
    for (int r = 0; r < kRows; ++r) {
      const int64_t b = first + 2 * p;
      const int8_t* x = tile.codes[r] + b * kQuantBlock;
      const __m512i xs = two ? load_512(x) : _mm512_maskz_loadu_epi8(0xFFFFFFFFULL, x);
      const float dx0 = tile.scales[r][b];
      const float dx1 = two ? tile.scales[r][b + 1] : 0.0F;
      const __m512 scale = _mm512_insertf32x8(_mm512_set1_ps(d0 * dx0), _mm256_set1_ps(d1 * dx1), 1);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_u8_s8<kVnni>(codes, xs)), scale, acc[r]);
      if constexpr (Format::kHasMin) {
        float correction = c0 * tile.block_sums[r][b];
        if (two) correction += c1 * tile.block_sums[r][b + 1];
        acc[r] = _mm512_mask_add_ps(acc[r], 1, acc[r], _mm512_set1_ps(correction));
      } else if constexpr (Format::kOffset != 0) {
        float correction = (c0 * dx0) * static_cast<float>(tile.sums[r][b]);
        if (two) correction += (c1 * dx1) * static_cast<float>(tile.sums[r][b + 1]);
        acc[r] = _mm512_mask_add_ps(acc[r], 1, acc[r], _mm512_set1_ps(correction));
      }
    }
  }
}

template <typename Format, bool kVnni, int kRows>
void legacy_rows(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  __m512 acc[kTileRows];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  const int64_t num_blocks = k / kQuantBlock;
  int64_t b = 0;
  for (; b + kGroupBlocks <= num_blocks; b += kGroupBlocks) {
    legacy_group<Format, kVnni, kRows, true>(weight_row + b * static_cast<int64_t>(Format::kBytes), b, kGroupBlocks,
                                             tile, acc);
  }
  const int left = static_cast<int>(num_blocks - b);
  const uint8_t* rest = weight_row + b * static_cast<int64_t>(Format::kBytes);
  if (left > 2) {  // measured: a masked group beats two or more separate pairs
    legacy_group<Format, kVnni, kRows, false>(rest, b, left, tile, acc);
  } else if (left > 0) {
    legacy_pairs<Format, kVnni, kRows>(rest, b, left, tile, acc);
  }
  store_lane_sums<kRows>(acc, out);
}

template <typename Format, bool kVnni>
void legacy_avx512(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  dispatch_rows<legacy_rows<Format, kVnni, 1>, legacy_rows<Format, kVnni, 2>, legacy_rows<Format, kVnni, 3>,
                legacy_rows<Format, kVnni, 4>>(weight_row, k, tile, out);
}

// ---------------------------------------------------------------------------------------
// K-quants.

// The 12-byte packing of eight 6-bit scales and mins (ggml's get_scale_min_k4) unpacked
// in four 32-bit words, bytewise: bytes 0-7 of the result are the scales, 8-15 the mins.
__m128i unpack_k_scales(const uint8_t* packed) {
  uint32_t words[3];
  std::memcpy(words, packed, sizeof(words));
  constexpr uint32_t kLow6 = 0x3F3F3F3FU;
  constexpr uint32_t kLow4 = 0x0F0F0F0FU;
  constexpr uint32_t kLow2 = 0x03030303U;
  const uint32_t scales_low = words[0] & kLow6;
  const uint32_t scales_high = (words[2] & kLow4) | (((words[0] >> 6) & kLow2) << 4);
  const uint32_t mins_low = words[1] & kLow6;
  const uint32_t mins_high = ((words[2] >> 4) & kLow4) | (((words[1] >> 6) & kLow2) << 4);
  return _mm_setr_epi32(static_cast<int>(scales_low), static_cast<int>(scales_high), static_cast<int>(mins_low),
                        static_cast<int>(mins_high));
}

// 16-bit lane i of the result = lane (2c + i / 16) of an 8 x int16 vector: sub-block 2c's
// scale under the low 256 bits, 2c+1's under the high ones.
__m512i q45_scale_index(int c) {
  return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(2 * c)),
                            _mm256_set1_epi16(static_cast<int16_t>(2 * c + 1)), 1);
}

// Q4_K / Q5_K: per super-block and row, (d * dx) * sum_j scale_j * dot_j - (dmin * dx) * sum_j min_j * xsum_j.
template <bool kFiveBit, bool kVnni, int kRows>
void q45_k_rows(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  __m512 acc[kTileRows];
  __m256 min_acc[kTileRows];
  for (int r = 0; r < kTileRows; ++r) {
    acc[r] = _mm512_setzero_ps();
    min_acc[r] = _mm256_setzero_ps();
  }
  __m512i scale_index[4];
  for (int c = 0; c < 4; ++c) scale_index[c] = q45_scale_index(c);
  const __m128i duplicate_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const uint8_t* block = weight_row + b * static_cast<int64_t>(sizeof(Block));
    const __m128i scales_mins = unpack_k_scales(block + offsetof(Block, scales));
    const __m512i scales16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(scales_mins));  // lanes 0-7
    // (16 x int16) min of sub-block g / 2, against the activation sums per 16.
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scales_mins, duplicate_mins));
    __m512i codes[4];
    __m512i sub_scales[4];
    const uint8_t* qs = block + offsetof(Block, qs);
    for (int c = 0; c < 4; ++c) {
      const __m512i bytes = _mm512_broadcast_i64x4(load_256(qs + 32 * c));
      codes[c] = _mm512_and_si512(_mm512_mask_srli_epi16(bytes, 0xFFFF0000U, bytes, 4), _mm512_set1_epi8(0x0F));
      if constexpr (kFiveBit) {  // bit 2c of qh[l] for sub-block 2c, bit 2c+1 for 2c+1
        const __m512i high_bits = _mm512_broadcast_i64x4(load_256(block + offsetof(Block, qh)));
        const __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(1 << (2 * c))),
                                               _mm256_set1_epi8(static_cast<char>(1 << (2 * c + 1))), 1);
        codes[c] =
            _mm512_mask_add_epi8(codes[c], _mm512_test_epi8_mask(high_bits, bit), codes[c], _mm512_set1_epi8(16));
      }
      sub_scales[c] = _mm512_permutexvar_epi16(scale_index[c], scales16);
    }
    const float d = load_f16(block + offsetof(Block, d));
    const float dmin = load_f16(block + offsetof(Block, dmin));
    for (int r = 0; r < kRows; ++r) {
      const int8_t* x = tile.codes[r] + b * kQuantSuperBlock;
      __m512i sums = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {
        sums = add_scaled_pairs<kVnni>(sums, _mm512_maddubs_epi16(codes[c], load_512(x + 64 * c)), sub_scales[c]);
      }
      const float dx = tile.scales[r][b];
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(d * dx), acc[r]);
      const __m256i min_dots =
          _mm256_madd_epi16(load_256(tile.sums[r] + b * (kQuantSuperBlock / kSuperSumGroup)), mins16);
      min_acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_dots), _mm256_set1_ps(dmin * dx), min_acc[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_sub_ps(acc[r], _mm512_zextps256_ps512(min_acc[r]));
  store_lane_sums<kRows>(acc, out);
}

template <bool kFiveBit, bool kVnni>
void q45_k_avx512(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  dispatch_rows<q45_k_rows<kFiveBit, kVnni, 1>, q45_k_rows<kFiveBit, kVnni, 2>, q45_k_rows<kFiveBit, kVnni, 3>,
                q45_k_rows<kFiveBit, kVnni, 4>>(weight_row, k, tile, out);
}

// 16-bit lane i of the result = lane (first + i / 8) of a 16 x int16 vector: the scales of
// four sub-blocks of 16, one per 128-bit lane.
__m512i q6_scale_index(int first) {
  const __m128i lane0 = _mm_set1_epi16(static_cast<int16_t>(first));
  const __m128i lane1 = _mm_set1_epi16(static_cast<int16_t>(first + 1));
  const __m128i lane2 = _mm_set1_epi16(static_cast<int16_t>(first + 2));
  const __m128i lane3 = _mm_set1_epi16(static_cast<int16_t>(first + 3));
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(lane1, lane0)), _mm256_set_m128i(lane3, lane2), 1);
}

// Q6_K: half h of a super-block: elements 0..63 are ql[64h..64h+63] low nibbles with qh[32h + l]
// bits 0-1 (first 32) and 2-3 (next 32); elements 64..127 the high nibbles with bits 4-5, 6-7.
// Codes (0..63) - 32 times the int8 scale of each 16; the -32 comes from the activation sums.
template <bool kVnni, int kRows>
void q6_k_rows(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  __m512 acc[kTileRows];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  __m512i scale_index[4];
  for (int i = 0; i < 4; ++i) scale_index[i] = q6_scale_index(4 * i);
  const __m512i low_mask = _mm512_set1_epi8(0x0F);
  const __m512i high_mask = _mm512_set1_epi8(0x30);
  // Per 16-bit lane: low 256 bits shift by the first count, high 256 bits by the second.
  const __m512i shift_4_2 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shift_0_2 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  for (int64_t b = 0; b < k / kQuantSuperBlock; ++b) {
    const uint8_t* block = weight_row + b * static_cast<int64_t>(sizeof(BlockQ6_K));
    const __m256i scales16 = _mm256_cvtepi8_epi16(load_128(block + offsetof(BlockQ6_K, scales)));
    __m512i codes[4];  // elements 0..63, 64..127, 128..191, 192..255
    for (int h = 0; h < 2; ++h) {
      const __m512i low = load_512(block + offsetof(BlockQ6_K, ql) + 64 * h);
      const __m512i high = _mm512_broadcast_i64x4(load_256(block + offsetof(BlockQ6_K, qh) + 32 * h));
      codes[2 * h] = _mm512_or_si512(_mm512_and_si512(low, low_mask),
                                     _mm512_and_si512(_mm512_sllv_epi16(high, shift_4_2), high_mask));
      codes[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(low, 4), low_mask),
                                         _mm512_and_si512(_mm512_srlv_epi16(high, shift_0_2), high_mask));
    }
    __m512i sub_scales[4];
    for (int i = 0; i < 4; ++i) {
      sub_scales[i] = _mm512_permutexvar_epi16(scale_index[i], _mm512_castsi256_si512(scales16));
    }
    const float d = load_f16(block + offsetof(BlockQ6_K, d));
    for (int r = 0; r < kRows; ++r) {
      const int8_t* x = tile.codes[r] + b * kQuantSuperBlock;
      const __m256i offset_dots =
          _mm256_madd_epi16(scales16, load_256(tile.sums[r] + b * (kQuantSuperBlock / kSuperSumGroup)));
      __m512i sums =
          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(_mm256_slli_epi32(offset_dots, 5)));
      for (int i = 0; i < 4; ++i) {
        sums = add_scaled_pairs<kVnni>(sums, _mm512_maddubs_epi16(codes[i], load_512(x + 64 * i)), sub_scales[i]);
      }
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(d * tile.scales[r][b]), acc[r]);
    }
  }
  store_lane_sums<kRows>(acc, out);
}

template <bool kVnni>
void q6_k_avx512(const uint8_t* weight_row, int64_t k, const ActTile& tile, float* out) {
  dispatch_rows<q6_k_rows<kVnni, 1>, q6_k_rows<kVnni, 2>, q6_k_rows<kVnni, 3>, q6_k_rows<kVnni, 4>>(weight_row, k, tile,
                                                                                                    out);
}

// 16 codes of x * inverse, as the scalar round_to_code: max/min return their second operand
// for NaN, so NaN gives -127; rounding is to nearest, ties to even.
__m128i codes_16(const float* x, __m512 inverse) {
  __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x), inverse);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0F)), _mm512_set1_ps(127.0F));
  return _mm512_cvtsepi32_epi8(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <bool kVnni>
RowKernel kernel_for(DType dtype) {
  switch (dtype) {
    case DType::Q8_0:
      return avx512_ggml_order_kernel(dtype, kVnni);
    case DType::Q4_0:
      return legacy_avx512<Q4_0Format, kVnni>;
    case DType::Q4_1:
      return avx512_ggml_order_kernel(dtype, kVnni);
    case DType::Q5_0:
      return legacy_avx512<Q5_0Format, kVnni>;
    case DType::Q5_1:
      return legacy_avx512<Q5_1Format, kVnni>;
    case DType::Q4_K:
      return q45_k_avx512<false, kVnni>;
    case DType::Q5_K:
      return q45_k_avx512<true, kVnni>;
    case DType::Q6_K:
      return q6_k_avx512<kVnni>;
    default:
      return nullptr;
  }
}

}  // namespace

void quantize_row_avx512(const float* x, int64_t k, int block, int sum_group, int8_t* codes, float* scales,
                         int16_t* sums) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  for (int64_t start = 0; start < k; start += block) {
    __m512 amax16 = _mm512_setzero_ps();
    for (int64_t i = start; i < start + block; i += 16) {
      amax16 = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + i), abs_mask), amax16);  // NaN is skipped
    }
    const float amax = _mm512_reduce_max_ps(amax16);
    scales[start / block] = amax / 127.0F;
    const __m512 inverse = _mm512_set1_ps(amax > 0.0F ? 127.0F / amax : 0.0F);
    for (int64_t i = start; i < start + block; i += 16) {
      const __m128i codes16 = codes_16(x + i, inverse);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), codes16);
      const int sum = _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(codes16));
      if (sum_group == 16 || (i / 16) % 2 == 0) {
        sums[i / sum_group] = static_cast<int16_t>(sum);
      } else {
        sums[i / sum_group] = static_cast<int16_t>(sums[i / sum_group] + sum);
      }
    }
  }
}

RowKernel avx512_row_kernel(DType dtype, bool vnni) {
  return vnni ? kernel_for<true>(dtype) : kernel_for<false>(dtype);
}

}  // namespace anvil::cpu::qmm
