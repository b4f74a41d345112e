#pragma once
// Scalar conversions between f32 and the narrow float formats. Narrowing rounds to
// nearest, ties to even, as IEEE 754 and ml_dtypes do; NaN stays NaN, overflow gives
// Inf where the format has one (f16, bf16, e5m2) and NaN where it does not (e4m3fn).
#include <bit>
#include <cstdint>

namespace anvil {

inline float f16_to_f32(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000U) << 16;
  const uint32_t exponent = (half >> 10) & 0x1FU;
  uint32_t mantissa = half & 0x3FFU;
  if (exponent == 0x1F) {  // Inf / NaN
    return std::bit_cast<float>(sign | 0x7F800000U | (mantissa << 13));
  }
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);
    // Subnormal: value = mantissa * 2^-24, exact in f32.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24F;
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112U) << 23) | (mantissa << 13));
}

inline uint16_t f32_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000U);
  const uint32_t abs_bits = bits & 0x7FFFFFFFU;
  if (abs_bits > 0x7F800000U) return static_cast<uint16_t>(sign | 0x7E00U | ((abs_bits >> 13) & 0x1FFU));
  if (abs_bits >= 0x477FF000U) return static_cast<uint16_t>(sign | 0x7C00U);  // rounds to Inf
  if (abs_bits < 0x38800000U) {
    // Result is subnormal or zero: round abs * 2^24 to an integer, ties to even.
    // Adding 0.5f (2^-1) lets the FPU do the rounding at the right bit.
    const float scaled = std::bit_cast<float>(abs_bits) + 0.5F;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(scaled) - 0x3F000000U));
  }
  const uint32_t odd = (abs_bits >> 13) & 1U;
  const uint32_t rounded = abs_bits + 0xC8000FFFU + odd;  // rebias exponent, add half-ulp - 1 + odd
  return static_cast<uint16_t>(sign | (rounded >> 13));
}

inline float bf16_to_f32(uint16_t bf16) { return std::bit_cast<float>(static_cast<uint32_t>(bf16) << 16); }

inline uint16_t f32_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<uint16_t>((bits >> 16) | 0x0040U);  // quiet NaN
  const uint32_t odd = (bits >> 16) & 1U;
  return static_cast<uint16_t>((bits + 0x7FFFU + odd) >> 16);
}

// Generic small-float decode: 1 sign bit, `kExpBits`, `kManBits`, with bias 2^(e-1)-1.
namespace detail {
template <int kExpBits, int kManBits, bool kHasInf>
float small_float_to_f32(uint8_t code) {
  constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  constexpr uint32_t kExpMask = (1U << kExpBits) - 1U;
  const bool negative = (code & 0x80U) != 0;
  const uint32_t exponent = (code >> kManBits) & kExpMask;
  const uint32_t mantissa = code & ((1U << kManBits) - 1U);
  float magnitude;
  if (kHasInf && exponent == kExpMask) {
    magnitude = mantissa == 0 ? std::bit_cast<float>(0x7F800000U) : std::bit_cast<float>(0x7FC00000U);
  } else if (!kHasInf && exponent == kExpMask && mantissa == (1U << kManBits) - 1U) {
    magnitude = std::bit_cast<float>(0x7FC00000U);  // e4m3fn: S.1111.111 is the only NaN
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * std::bit_cast<float>((127U - kBias - kManBits + 1) << 23);
  } else {
    magnitude = std::bit_cast<float>(((exponent + 127U - kBias) << 23) | (mantissa << (23 - kManBits)));
  }
  return negative ? -magnitude : magnitude;
}

// Encodes by rounding the f32 mantissa at the target precision (ties to even),
// handling subnormals by scaling into the integer range of the smallest exponent.
template <int kExpBits, int kManBits, bool kHasInf>
uint8_t f32_to_small_float(float value) {
  constexpr int kBias = (1 << (kExpBits - 1)) - 1;
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint8_t>((bits >> 24) & 0x80U);
  const uint32_t abs_bits = bits & 0x7FFFFFFFU;
  constexpr uint8_t kNan = kHasInf
                               ? static_cast<uint8_t>((((1U << kExpBits) - 1U) << kManBits) | (1U << (kManBits - 1)))
                               : static_cast<uint8_t>(0x7FU);
  if (abs_bits > 0x7F800000U) return static_cast<uint8_t>(sign | kNan);
  // Largest finite code: for e4m3fn it is 0x7E (448); for e5m2 0x7B (57344).
  constexpr uint32_t kMaxCode = kHasInf ? ((((1U << kExpBits) - 2U) << kManBits) | ((1U << kManBits) - 1U)) : 0x7EU;
  constexpr uint32_t kInfOrNan = kHasInf ? ((((1U << kExpBits) - 1U) << kManBits)) : 0x7FU;
  const float abs_value = std::bit_cast<float>(abs_bits);
  const int min_normal_exp = 1 - kBias;  // unbiased exponent of the smallest normal
  uint32_t code;
  if (abs_value < std::bit_cast<float>(static_cast<uint32_t>(min_normal_exp + 127) << 23)) {
    // Subnormal range: code = round(abs / 2^(min_normal_exp - kManBits)), ties to even.
    const float scaled = abs_value * std::bit_cast<float>(static_cast<uint32_t>(127 - min_normal_exp + kManBits) << 23);
    const float magic = 0x1p23F;  // adding 2^23 rounds to an integer with ties to even
    code = std::bit_cast<uint32_t>(scaled + magic) - std::bit_cast<uint32_t>(magic);
  } else {
    const int shift = 23 - kManBits;
    const uint32_t odd = (abs_bits >> shift) & 1U;
    const uint32_t rounded = abs_bits + ((1U << (shift - 1)) - 1U) + odd;
    code = (rounded >> shift) - (static_cast<uint32_t>(127 - kBias) << kManBits);
  }
  if (code > kMaxCode) code = kInfOrNan;
  return static_cast<uint8_t>(sign | code);
}
}  // namespace detail

inline float e4m3_to_f32(uint8_t code) { return detail::small_float_to_f32<4, 3, false>(code); }
inline uint8_t f32_to_e4m3(float value) { return detail::f32_to_small_float<4, 3, false>(value); }
inline float e5m2_to_f32(uint8_t code) { return detail::small_float_to_f32<5, 2, true>(code); }
inline uint8_t f32_to_e5m2(float value) { return detail::f32_to_small_float<5, 2, true>(value); }

}  // namespace anvil
