// K-quants: Q4_K, Q5_K (8 sub-blocks of 32 with 6-bit scales and mins under f16 super-scales)
// and Q6_K (16 sub-blocks of 16 with int8 scales under an f16 super-scale).
// Dequantisation follows ggml operation for operation (bit-identical). Quantisation is a
// plain round-to-nearest: sub-block ranges -> 6/8-bit scales (rounded up, so the range
// stays covered) -> nearest code. ggml's iterative scale search is not reproduced.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "anvil/core/float_convert.h"
#include "anvil/core/quant.h"

namespace anvil::quant {
namespace {

constexpr int kSubBlocks = 8;         // Q4_K / Q5_K
constexpr int kSubBlockElems = 32;    // Q4_K / Q5_K
constexpr int kQ6SubBlocks = 16;      // Q6_K
constexpr int kQ6SubBlockElems = 16;  // Q6_K
constexpr int kMaxScaleCode = 63;     // 6-bit Q4_K / Q5_K scales and mins
constexpr int kQ6MaxScaleCode = 127;  // int8 Q6_K scales (kept positive)

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

// nearest integer to `value` clamped to [low, high]; NaN gives `low`.
int round_clamped(float value, int low, int high) {
  if (!(value >= static_cast<float>(low))) return low;
  if (value >= static_cast<float>(high)) return high;
  return static_cast<int>(std::nearbyint(value));
}

// ceil(value) clamped to [0, high]; NaN gives 0.
int ceil_clamped(float value, int high) {
  if (!(value > 0.0F)) return 0;
  if (value >= static_cast<float>(high)) return high;
  return static_cast<int>(std::ceil(value));
}

// f16 bits of `value`, saturating at the largest finite f16 instead of overflowing to Inf.
uint16_t f32_to_f16_saturating(float value) {
  const uint16_t bits = f32_to_f16(value);
  return (bits & 0x7FFFU) == 0x7C00U ? static_cast<uint16_t>((bits & 0x8000U) | 0x7BFFU) : bits;
}

// The 12-byte packing of eight 6-bit scales and eight 6-bit mins (ggml's get_scale_min_k4):
// bytes 0-3: sc[0..3] | top bits of sc[4..7]; 4-7: m[0..3] | top bits of m[4..7];
// 8-11: low nibbles of sc[4..7] and m[4..7].
void unpack_k_scales(const uint8_t* packed, uint8_t* scales, uint8_t* mins) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = packed[j] & 63U;
    mins[j] = packed[j + 4] & 63U;
    scales[j + 4] = static_cast<uint8_t>((packed[j + 8] & 0x0FU) | ((packed[j] >> 6) << 4));
    mins[j + 4] = static_cast<uint8_t>((packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4));
  }
}

void pack_k_scales(const uint8_t* scales, const uint8_t* mins, uint8_t* packed) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((scales[j] & 63U) | ((scales[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>((mins[j] & 63U) | ((mins[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((scales[j + 4] & 0x0FU) | ((mins[j + 4] & 0x0FU) << 4));
  }
}

// Scales of one Q4_K / Q5_K super-block: x ~ step[j] * q - offset[j], q in [0, max_code].
struct AsymmetricScales {
  uint16_t d = 0;
  uint16_t dmin = 0;
  uint8_t scales[kSubBlocks] = {};
  uint8_t mins[kSubBlocks] = {};
  float step[kSubBlocks] = {};    // d * scales[j], as dequantisation computes it
  float offset[kSubBlocks] = {};  // dmin * mins[j]
};

AsymmetricScales choose_asymmetric_scales(const float* values, int max_code) {
  float top[kSubBlocks];         // largest element
  float neg_bottom[kSubBlocks];  // -min(0, smallest element) >= 0
  float max_step = 0.0F;
  float max_neg_bottom = 0.0F;
  for (int j = 0; j < kSubBlocks; ++j) {
    const float* sub = values + j * kSubBlockElems;
    const auto [low, high] = std::minmax_element(sub, sub + kSubBlockElems);
    top[j] = *high;
    neg_bottom[j] = -std::fmin(0.0F, *low);
    max_step = std::fmax(max_step, (top[j] + neg_bottom[j]) / static_cast<float>(max_code));
    max_neg_bottom = std::fmax(max_neg_bottom, neg_bottom[j]);
  }
  AsymmetricScales result;
  result.d = f32_to_f16_saturating(max_step / kMaxScaleCode);
  result.dmin = f32_to_f16_saturating(max_neg_bottom / kMaxScaleCode);
  const float d = f16_to_f32(result.d);
  const float dmin = f16_to_f32(result.dmin);
  for (int j = 0; j < kSubBlocks; ++j) {
    const int min_code = dmin > 0.0F ? round_clamped(neg_bottom[j] / dmin, 0, kMaxScaleCode) : 0;
    result.mins[j] = static_cast<uint8_t>(min_code);
    result.offset[j] = dmin * static_cast<float>(min_code);
    // Round the scale up so that step * max_code still reaches the top element.
    const float needed = (top[j] + result.offset[j]) / static_cast<float>(max_code);
    const int scale_code = d > 0.0F ? ceil_clamped(needed / d, kMaxScaleCode) : 0;
    result.scales[j] = static_cast<uint8_t>(scale_code);
    result.step[j] = d * static_cast<float>(scale_code);
  }
  return result;
}

// Codes in [0, max_code] for 256 values under `scales`.
void asymmetric_codes(const float* values, const AsymmetricScales& scales, int max_code, uint8_t* codes) {
  for (int j = 0; j < kSubBlocks; ++j) {
    const float step = scales.step[j];
    for (int l = 0; l < kSubBlockElems; ++l) {
      const int e = j * kSubBlockElems + l;
      codes[e] = step > 0.0F ? static_cast<uint8_t>(round_clamped((values[e] + scales.offset[j]) / step, 0, max_code))
                             : uint8_t{0};
    }
  }
}

// Low nibbles of 256 codes: sub-blocks 2c and 2c+1 share bytes 32c..32c+31 (low, high).
void pack_k_nibbles(const uint8_t* codes, uint8_t* qs) {
  for (int c = 0; c < kSubBlocks / 2; ++c) {
    for (int l = 0; l < kSubBlockElems; ++l) {
      const int low = codes[(2 * c) * kSubBlockElems + l] & 0x0F;
      const int high = codes[(2 * c + 1) * kSubBlockElems + l] & 0x0F;
      qs[c * kSubBlockElems + l] = static_cast<uint8_t>(low | (high << 4));
    }
  }
}

int k_nibble(const uint8_t* qs, int sub_block, int l) {
  const uint8_t byte = qs[(sub_block / 2) * kSubBlockElems + l];
  return (sub_block % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
}

// Q6_K element e: low 4 bits in ql[64h + r % 64] (nibble r / 64), high 2 bits in
// qh[32h + r % 32] (bits 2 * (r / 32)), where h = e / 128 and r = e % 128.
struct Q6Position {
  int ql_index;
  int ql_shift;
  int qh_index;
  int qh_shift;
};

Q6Position q6_position(int e) {
  const int h = e / 128;
  const int r = e % 128;
  return {h * 64 + r % 64, 4 * (r / 64), h * 32 + r % 32, 2 * (r / 32)};
}

}  // namespace

void dequantize_q4_k(const void* bytes, float* out) {
  const auto block = load_block<BlockQ4_K>(bytes);
  const float d = f16_to_f32(block.d);
  const float dmin = f16_to_f32(block.dmin);
  uint8_t scales[kSubBlocks];
  uint8_t mins[kSubBlocks];
  unpack_k_scales(block.scales, scales, mins);
  for (int j = 0; j < kSubBlocks; ++j) {
    const float step = d * static_cast<float>(scales[j]);
    const float offset = dmin * static_cast<float>(mins[j]);
    for (int l = 0; l < kSubBlockElems; ++l) {
      const float scaled = step * static_cast<float>(k_nibble(block.qs, j, l));
      out[j * kSubBlockElems + l] = scaled - offset;
    }
  }
}

void dequantize_q5_k(const void* bytes, float* out) {
  const auto block = load_block<BlockQ5_K>(bytes);
  const float d = f16_to_f32(block.d);
  const float dmin = f16_to_f32(block.dmin);
  uint8_t scales[kSubBlocks];
  uint8_t mins[kSubBlocks];
  unpack_k_scales(block.scales, scales, mins);
  for (int j = 0; j < kSubBlocks; ++j) {
    const float step = d * static_cast<float>(scales[j]);
    const float offset = dmin * static_cast<float>(mins[j]);
    for (int l = 0; l < kSubBlockElems; ++l) {
      const int code = k_nibble(block.qs, j, l) | (((block.qh[l] >> j) & 1) << 4);
      const float scaled = step * static_cast<float>(code);
      out[j * kSubBlockElems + l] = scaled - offset;
    }
  }
}

void dequantize_q6_k(const void* bytes, float* out) {
  const auto block = load_block<BlockQ6_K>(bytes);
  const float d = f16_to_f32(block.d);
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    const float scale = d * static_cast<float>(block.scales[s]);
    for (int l = 0; l < kQ6SubBlockElems; ++l) {
      const int e = s * kQ6SubBlockElems + l;
      const Q6Position at = q6_position(e);
      const int code =
          ((block.ql[at.ql_index] >> at.ql_shift) & 0x0F) | (((block.qh[at.qh_index] >> at.qh_shift) & 3) << 4);
      out[e] = scale * static_cast<float>(code - 32);
    }
  }
}

void quantize_q4_k(const float* values, void* bytes) {
  constexpr int kMaxCode = 15;
  const AsymmetricScales scales = choose_asymmetric_scales(values, kMaxCode);
  uint8_t codes[kQuantSuperBlock];
  asymmetric_codes(values, scales, kMaxCode, codes);
  BlockQ4_K block{};
  block.d = scales.d;
  block.dmin = scales.dmin;
  pack_k_scales(scales.scales, scales.mins, block.scales);
  pack_k_nibbles(codes, block.qs);
  store_block(block, bytes);
}

void quantize_q5_k(const float* values, void* bytes) {
  constexpr int kMaxCode = 31;
  const AsymmetricScales scales = choose_asymmetric_scales(values, kMaxCode);
  uint8_t codes[kQuantSuperBlock];
  asymmetric_codes(values, scales, kMaxCode, codes);
  BlockQ5_K block{};
  block.d = scales.d;
  block.dmin = scales.dmin;
  pack_k_scales(scales.scales, scales.mins, block.scales);
  pack_k_nibbles(codes, block.qs);
  for (int j = 0; j < kSubBlocks; ++j) {
    for (int l = 0; l < kSubBlockElems; ++l) {
      block.qh[l] = static_cast<uint8_t>(block.qh[l] | (((codes[j * kSubBlockElems + l] >> 4) & 1) << j));
    }
  }
  store_block(block, bytes);
}

// Symmetric: each sub-block's step is max|x| / 31 rounded up to a multiple of d, q in [-32, 31].
void quantize_q6_k(const float* values, void* bytes) {
  float step_wanted[kQ6SubBlocks];
  float max_step = 0.0F;
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    float max_abs = 0.0F;
    for (int l = 0; l < kQ6SubBlockElems; ++l)
      max_abs = std::fmax(max_abs, std::fabs(values[s * kQ6SubBlockElems + l]));
    step_wanted[s] = max_abs / 31.0F;
    max_step = std::fmax(max_step, step_wanted[s]);
  }
  BlockQ6_K block{};
  block.d = f32_to_f16_saturating(max_step / kQ6MaxScaleCode);
  const float d = f16_to_f32(block.d);
  for (int s = 0; s < kQ6SubBlocks; ++s) {
    const int scale_code = d > 0.0F ? ceil_clamped(step_wanted[s] / d, kQ6MaxScaleCode) : 0;
    block.scales[s] = static_cast<int8_t>(scale_code);
    const float step = d * static_cast<float>(scale_code);
    for (int l = 0; l < kQ6SubBlockElems; ++l) {
      const int e = s * kQ6SubBlockElems + l;
      const int code = (step > 0.0F ? round_clamped(values[e] / step, -32, 31) : 0) + 32;
      const Q6Position at = q6_position(e);
      block.ql[at.ql_index] = static_cast<uint8_t>(block.ql[at.ql_index] | ((code & 0x0F) << at.ql_shift));
      block.qh[at.qh_index] = static_cast<uint8_t>(block.qh[at.qh_index] | ((code >> 4) << at.qh_shift));
    }
  }
  store_block(block, bytes);
}

}  // namespace anvil::quant
