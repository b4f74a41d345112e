// Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1: 32-element blocks with one f16 scale (and f16 min).
// Both directions follow ggml's reference code operation for operation, in f32 with
// each product and sum rounded separately (no FMA: the files build without -mfma and
// with ISO C++'s fp-contract=off), so the bytes and floats match ggml / gguf exactly.
#include <cmath>
#include <cstring>

#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"

namespace anvil::quant {
namespace {

constexpr int kHalf = kQuantBlock / 2;

template <typename Block>
Block load_block(const void* bytes) {
  Block block;
  std::memcpy(&block, bytes, sizeof(Block));
  return block;
}

template <typename Block>
void store_block(const Block& block, void* bytes) {
  std::memcpy(bytes, &block, sizeof(Block));
}

// trunc(value) clamped to [0, max_code]; NaN gives 0 (instead of an undefined cast).
uint8_t truncate_to_code(float value, int max_code) {
  if (!(value >= 0.0F)) return 0;
  if (value >= static_cast<float>(max_code)) return static_cast<uint8_t>(max_code);
  return static_cast<uint8_t>(value);
}

float inverse_or_zero(float scale) { return scale == 0.0F ? 0.0F : 1.0F / scale; }

// The element of largest magnitude, with its sign (the first one on ties, as argmax).
float signed_absmax(const float* values) {
  float max_value = values[0];
  float max_abs = std::fabs(values[0]);
  for (int j = 1; j < kQuantBlock; ++j) {
    if (std::fabs(values[j]) > max_abs) {
      max_abs = std::fabs(values[j]);
      max_value = values[j];
    }
  }
  return max_value;
}

void min_max(const float* values, float& min_value, float& max_value) {
  min_value = max_value = values[0];
  for (int j = 1; j < kQuantBlock; ++j) {
    min_value = std::fmin(min_value, values[j]);
    max_value = std::fmax(max_value, values[j]);
  }
}

uint32_t load_u32_le(const uint8_t* bytes) {
  return static_cast<uint32_t>(bytes[0]) | (static_cast<uint32_t>(bytes[1]) << 8) |
         (static_cast<uint32_t>(bytes[2]) << 16) | (static_cast<uint32_t>(bytes[3]) << 24);
}

void store_u32_le(uint32_t value, uint8_t* bytes) {
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
}

// 32 codes of 4 bits (low nibble: elements 0..15, high nibble: 16..31).
void pack_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < kHalf; ++j) qs[j] = static_cast<uint8_t>((codes[j] & 0x0FU) | ((codes[j + kHalf] & 0x0FU) << 4));
}

// Bit 4 of each of 32 codes, element j at bit j.
uint32_t pack_high_bits(const uint8_t* codes) {
  uint32_t bits = 0;
  for (int j = 0; j < kQuantBlock; ++j) bits |= static_cast<uint32_t>((codes[j] >> 4) & 1U) << j;
  return bits;
}

// The 5-bit codes of a Q5 block.
void unpack_5bit(const uint8_t* qs, uint32_t high_bits, int* codes) {
  for (int j = 0; j < kHalf; ++j) {
    codes[j] = static_cast<int>((qs[j] & 0x0FU) | (((high_bits >> j) & 1U) << 4));
    codes[j + kHalf] = static_cast<int>((qs[j] >> 4) | (((high_bits >> (j + kHalf)) & 1U) << 4));
  }
}

// ggml's symmetric codes: the extreme element maps to code 0 (-half), codes[j] =
// trunc(x / d + half + 0.5) within [0, 2 half - 1]. Returns d.
float symmetric_codes(const float* values, int half, uint8_t* codes) {
  const float d = signed_absmax(values) / -static_cast<float>(half);
  const float inverse = inverse_or_zero(d);
  for (int j = 0; j < kQuantBlock; ++j) {
    codes[j] = truncate_to_code(values[j] * inverse + (static_cast<float>(half) + 0.5F), 2 * half - 1);
  }
  return d;
}

// ggml's affine codes: d = (max - min) / max_code, codes[j] = trunc((x - min) / d + 0.5)
// within [0, max_code]. Returns d; min_value receives the block's minimum.
float affine_codes(const float* values, int max_code, uint8_t* codes, float& min_value) {
  float max_value = 0.0F;
  min_max(values, min_value, max_value);
  const float d = (max_value - min_value) / static_cast<float>(max_code);
  const float inverse = inverse_or_zero(d);
  for (int j = 0; j < kQuantBlock; ++j) codes[j] = truncate_to_code((values[j] - min_value) * inverse + 0.5F, max_code);
  return d;
}

}  // namespace

void dequantize_q8_0(const void* bytes, float* out) {
  const auto block = load_block<BlockQ8_0>(bytes);
  const float d = f16_to_f32(block.d);
  for (int j = 0; j < kQuantBlock; ++j) out[j] = static_cast<float>(block.qs[j]) * d;
}

void dequantize_q4_0(const void* bytes, float* out) {
  const auto block = load_block<BlockQ4_0>(bytes);
  const float d = f16_to_f32(block.d);
  for (int j = 0; j < kHalf; ++j) {
    out[j] = d * static_cast<float>(static_cast<int>(block.qs[j] & 0x0FU) - 8);
    out[j + kHalf] = d * static_cast<float>(static_cast<int>(block.qs[j] >> 4) - 8);
  }
}

void dequantize_q4_1(const void* bytes, float* out) {
  const auto block = load_block<BlockQ4_1>(bytes);
  const float d = f16_to_f32(block.d);
  const float m = f16_to_f32(block.m);
  for (int j = 0; j < kHalf; ++j) {
    const float low = d * static_cast<float>(block.qs[j] & 0x0FU);
    const float high = d * static_cast<float>(block.qs[j] >> 4);
    out[j] = low + m;
    out[j + kHalf] = high + m;
  }
}

void dequantize_q5_0(const void* bytes, float* out) {
  const auto block = load_block<BlockQ5_0>(bytes);
  const float d = f16_to_f32(block.d);
  int codes[kQuantBlock];
  unpack_5bit(block.qs, load_u32_le(block.qh), codes);
  for (int j = 0; j < kQuantBlock; ++j) out[j] = d * static_cast<float>(codes[j] - 16);
}

void dequantize_q5_1(const void* bytes, float* out) {
  const auto block = load_block<BlockQ5_1>(bytes);
  const float d = f16_to_f32(block.d);
  const float m = f16_to_f32(block.m);
  int codes[kQuantBlock];
  unpack_5bit(block.qs, load_u32_le(block.qh), codes);
  for (int j = 0; j < kQuantBlock; ++j) {
    const float scaled = d * static_cast<float>(codes[j]);
    out[j] = scaled + m;
  }
}

void quantize_q8_0(const float* values, void* bytes) {
  float max_abs = 0.0F;
  for (int j = 0; j < kQuantBlock; ++j) max_abs = std::fmax(max_abs, std::fabs(values[j]));
  const float d = max_abs / 127.0F;
  const float inverse = inverse_or_zero(d);
  BlockQ8_0 block{};
  block.d = f32_to_f16(d);
  for (int j = 0; j < kQuantBlock; ++j) {
    const float rounded = std::round(values[j] * inverse);  // half away from zero, as ggml's roundf
    block.qs[j] = std::isnan(rounded) ? int8_t{0} : static_cast<int8_t>(std::fmax(-128.0F, std::fmin(127.0F, rounded)));
  }
  store_block(block, bytes);
}

void quantize_q4_0(const float* values, void* bytes) {
  uint8_t codes[kQuantBlock];
  BlockQ4_0 block{};
  block.d = f32_to_f16(symmetric_codes(values, 8, codes));
  pack_nibbles(codes, block.qs);
  store_block(block, bytes);
}

void quantize_q4_1(const float* values, void* bytes) {
  uint8_t codes[kQuantBlock];
  float min_value = 0.0F;
  BlockQ4_1 block{};
  block.d = f32_to_f16(affine_codes(values, 15, codes, min_value));
  block.m = f32_to_f16(min_value);
  pack_nibbles(codes, block.qs);
  store_block(block, bytes);
}

void quantize_q5_0(const float* values, void* bytes) {
  uint8_t codes[kQuantBlock];
  BlockQ5_0 block{};
  block.d = f32_to_f16(symmetric_codes(values, 16, codes));
  store_u32_le(pack_high_bits(codes), block.qh);
  pack_nibbles(codes, block.qs);
  store_block(block, bytes);
}

void quantize_q5_1(const float* values, void* bytes) {
  uint8_t codes[kQuantBlock];
  float min_value = 0.0F;
  BlockQ5_1 block{};
  block.d = f32_to_f16(affine_codes(values, 31, codes, min_value));
  block.m = f32_to_f16(min_value);
  store_u32_le(pack_high_bits(codes), block.qh);
  pack_nibbles(codes, block.qs);
  store_block(block, bytes);
}

}  // namespace anvil::quant
