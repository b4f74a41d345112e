#pragma once
// Device decoders of GGUF weight blocks (anvil/core/quant.h) into packed 8-bit codes:
// shared by the dp4a and the tensor-core quantized_matmul kernels.
#include <cuda_fp16.h>

#include <cstdint>

#include "anvil/core/quant.h"

namespace anvil::cuda::qdecode {

// ---------------------------------------------------------------------------------------
// Byte access. Every block size and field offset is even and rows start at even offsets,
// so 16-bit loads are always aligned; wider words are assembled from them.

__device__ __forceinline__ uint32_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }
__device__ __forceinline__ uint32_t load_u32(const uint8_t* p) { return load_u16(p) | (load_u16(p + 2) << 16); }
__device__ __forceinline__ float load_f16(const uint8_t* p) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(load_u16(p))));
}

// kCount little-endian 32-bit words from `p` (2-byte aligned) with kCount + 1 aligned 4-byte
// loads (the last only when p is not 4-aligned, so nothing past p + 4 kCount is read) and a
// funnel shift: half the load instructions of 16-bit loads, the same bytes.
template <int kCount>
__device__ __forceinline__ void load_words(const uint8_t* p, uint32_t (&out)[kCount]) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  const auto* base = reinterpret_cast<const uint32_t*>(address & ~uintptr_t{3});
  const unsigned shift = static_cast<unsigned>(address & 3U) * 8U;
  uint32_t words[kCount + 1];
#pragma unroll
  for (int i = 0; i < kCount; ++i) words[i] = base[i];
  words[kCount] = shift != 0 ? base[kCount] : 0U;
#pragma unroll
  for (int i = 0; i < kCount; ++i) out[i] = __funnelshift_r(words[i], words[i + 1], shift);
}

// Bit t of `bits` (t < 4) moved to bit 4 of byte t.
__device__ __forceinline__ uint32_t spread_to_bit4(uint32_t bits) {
  return ((bits & 1U) << 4) | ((bits & 2U) << 11) | ((bits & 4U) << 18) | ((bits & 8U) << 25);
}

// ---------------------------------------------------------------------------------------
// Legacy blocks (32 elements): w = d * code + m. decode() fills the packed codes.

struct LegacyBlock {
  float d = 0.0F;
  float m = 0.0F;
  int w[8] = {};
};

// Nibble codes of `qs` (16 bytes): element l < 16 low nibble of qs[l], l >= 16 high nibble.
__device__ __forceinline__ void unpack_nibbles(const uint8_t* qs, int (&w)[8]) {
  uint32_t words[4];
  load_words(qs, words);
  for (int i = 0; i < 4; ++i) {
    w[i] = static_cast<int>(words[i] & 0x0F0F0F0FU);
    w[i + 4] = static_cast<int>((words[i] >> 4) & 0x0F0F0F0FU);
  }
}

// Adds bit l of the little-endian qh word as bit 4 of element l.
__device__ __forceinline__ void add_high_bits(uint32_t qh, int (&w)[8]) {
  for (int i = 0; i < 8; ++i)
    w[i] = static_cast<int>(static_cast<uint32_t>(w[i]) | spread_to_bit4((qh >> (4 * i)) & 0xFU));
}

__device__ __forceinline__ void subtract_each_byte(uint32_t value, int (&w)[8]) {
  for (int i = 0; i < 8; ++i) w[i] = static_cast<int>(__vsub4(static_cast<uint32_t>(w[i]), value));
}

struct Q8_0Format {
  static constexpr int kBytes = sizeof(BlockQ8_0);
  static constexpr bool kHasMin = false;
  __device__ static LegacyBlock decode(const uint8_t* block) {
    LegacyBlock out;
    out.d = load_f16(block);
    uint32_t words[8];
    load_words(block + 2, words);
    for (int i = 0; i < 8; ++i) out.w[i] = static_cast<int>(words[i]);
    return out;
  }
};

struct Q4_0Format {
  static constexpr int kBytes = sizeof(BlockQ4_0);
  static constexpr bool kHasMin = false;
  __device__ static LegacyBlock decode(const uint8_t* block) {
    LegacyBlock out;
    out.d = load_f16(block);
    unpack_nibbles(block + 2, out.w);
    subtract_each_byte(0x08080808U, out.w);
    return out;
  }
};

struct Q4_1Format {
  static constexpr int kBytes = sizeof(BlockQ4_1);
  static constexpr bool kHasMin = true;
  __device__ static LegacyBlock decode(const uint8_t* block) {
    LegacyBlock out;
    out.d = load_f16(block);
    out.m = load_f16(block + 2);
    unpack_nibbles(block + 4, out.w);
    return out;
  }
};

struct Q5_0Format {
  static constexpr int kBytes = sizeof(BlockQ5_0);
  static constexpr bool kHasMin = false;
  __device__ static LegacyBlock decode(const uint8_t* block) {
    LegacyBlock out;
    out.d = load_f16(block);
    unpack_nibbles(block + 6, out.w);
    add_high_bits(load_u32(block + 2), out.w);
    subtract_each_byte(0x10101010U, out.w);
    return out;
  }
};

struct Q5_1Format {
  static constexpr int kBytes = sizeof(BlockQ5_1);
  static constexpr bool kHasMin = true;
  __device__ static LegacyBlock decode(const uint8_t* block) {
    LegacyBlock out;
    out.d = load_f16(block);
    out.m = load_f16(block + 2);
    unpack_nibbles(block + 8, out.w);
    add_high_bits(load_u32(block + 4), out.w);
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// K-quant sub-blocks: element range [32 j, 32 j + 32) of a 256-element super-block.

struct KSubBlock {
  float d = 0.0F;
  float dmin = 0.0F;
  int scale_low = 0;   // scale of elements [0, 16) of the 32 (Q6_K), or of all 32
  int scale_high = 0;  // scale of elements [16, 32) (Q6_K; equal to scale_low otherwise)
  int min = 0;
  int w[8] = {};
};

// ggml's get_scale_min_k4 for sub-block j of the 12 packed bytes.
__device__ __forceinline__ void k4_scale_min(const uint8_t* packed, int j, int& scale, int& min) {
  if (j < 4) {
    scale = packed[j] & 63;
    min = packed[j + 4] & 63;
  } else {
    scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// Q4_K / Q5_K sub-block j: nibble j % 2 of qs[32 (j / 2) + l]; Q5_K adds bit j of qh[l].
template <bool kFifthBit>
__device__ inline KSubBlock decode_k4(const uint8_t* block, int j) {
  constexpr int kQsOffset = kFifthBit ? 48 : 16;
  KSubBlock out;
  out.d = load_f16(block);
  out.dmin = load_f16(block + 2);
  k4_scale_min(block + 4, j, out.scale_low, out.min);
  out.scale_high = out.scale_low;
  const uint8_t* qs = block + kQsOffset + 32 * (j / 2);
  uint32_t low[8];
  load_words(qs, low);
  uint32_t high[8] = {};
  if (kFifthBit) load_words(block + 16, high);
  for (int i = 0; i < 8; ++i) {
    uint32_t code = (low[i] >> (4 * (j % 2))) & 0x0F0F0F0FU;
    if (kFifthBit) code |= ((high[i] >> j) & 0x01010101U) << 4;
    out.w[i] = static_cast<int>(code);
  }
  return out;
}

// Q6_K elements [32 j, 32 j + 32): h = j / 4 selects the 128-element half; low 4 bits in
// ql[64 h + 32 (j % 2) + l] (nibble (j % 4) / 2), high 2 in qh[32 h + l] (bits 2 (j % 4)).
__device__ inline KSubBlock decode_q6_k(const uint8_t* block, int j) {
  const int half = j / 4;
  const int quarter = j % 4;
  KSubBlock out;
  out.d = load_f16(block + 208);
  const auto* scales = reinterpret_cast<const int8_t*>(block + 192);
  out.scale_low = scales[2 * j];
  out.scale_high = scales[2 * j + 1];
  const uint8_t* ql = block + 64 * half + 32 * (quarter % 2);
  const uint8_t* qh = block + 128 + 32 * half;
  uint32_t low_words[8];
  uint32_t high_words[8];
  load_words(ql, low_words);
  load_words(qh, high_words);
  for (int i = 0; i < 8; ++i) {
    const uint32_t low = (low_words[i] >> (4 * (quarter / 2))) & 0x0F0F0F0FU;
    const uint32_t high = (high_words[i] >> (2 * quarter)) & 0x03030303U;
    out.w[i] = static_cast<int>(__vsub4(low | (high << 4), 0x20202020U));
  }
  return out;
}

struct Q4_KFormat {
  static constexpr int kBytes = sizeof(BlockQ4_K);
  static constexpr bool kHasMin = true;
  __device__ static KSubBlock decode(const uint8_t* block, int j) { return decode_k4<false>(block, j); }
};
struct Q5_KFormat {
  static constexpr int kBytes = sizeof(BlockQ5_K);
  static constexpr bool kHasMin = true;
  __device__ static KSubBlock decode(const uint8_t* block, int j) { return decode_k4<true>(block, j); }
};
struct Q6_KFormat {
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr bool kHasMin = false;
  __device__ static KSubBlock decode(const uint8_t* block, int j) { return decode_q6_k(block, j); }
};

}  // namespace anvil::cuda::qdecode
