// Narrow float conversions (f16, bf16, f8 e4m3fn, f8 e5m2) bit-for-bit against numpy /
// ml_dtypes fixtures, plus convert_host's integer and f64 paths.
#include "anvil/core/float_convert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "anvil/core/convert.h"
#include "fixture_file.h"
#include "support/op_harness.h"

namespace anvil {
namespace {

using testing::FixtureFile;

// One narrow format's scalar codec, widened to u32 codes.
struct Format {
  std::string name;
  DType dtype;
  float (*decode)(uint32_t);
  uint32_t (*encode)(float);
};

std::vector<Format> formats() {
  return {
      {"f16", DType::F16, [](uint32_t c) { return f16_to_f32(static_cast<uint16_t>(c)); },
       [](float v) { return static_cast<uint32_t>(f32_to_f16(v)); }},
      {"bf16", DType::BF16, [](uint32_t c) { return bf16_to_f32(static_cast<uint16_t>(c)); },
       [](float v) { return static_cast<uint32_t>(f32_to_bf16(v)); }},
      {"f8_e4m3", DType::F8E4M3, [](uint32_t c) { return e4m3_to_f32(static_cast<uint8_t>(c)); },
       [](float v) { return static_cast<uint32_t>(f32_to_e4m3(v)); }},
      {"f8_e5m2", DType::F8E5M2, [](uint32_t c) { return e5m2_to_f32(static_cast<uint8_t>(c)); },
       [](float v) { return static_cast<uint32_t>(f32_to_e5m2(v)); }},
  };
}

// The reference data of tools/gen_dtype_fixtures.py for one format.
struct FloatFixture {
  std::vector<float> decoded;   // (num_codes,) f32 value of every code
  std::vector<float> inputs;    // (num_inputs,)
  std::vector<uint32_t> codes;  // (num_inputs,) reference encoding of each input
};

FloatFixture load_fixture(const std::string& name) {
  FixtureFile file("float_" + name + ".bin");
  file.expect_magic("ANVFLT01");
  const uint32_t code_bytes = file.read_u32();
  FloatFixture fixture;
  fixture.decoded = file.read_array<float>(file.read_u32());
  const uint32_t num_inputs = file.read_u32();
  fixture.inputs = file.read_array<float>(num_inputs);
  if (code_bytes == 1) {
    for (const uint8_t code : file.read_array<uint8_t>(num_inputs)) fixture.codes.push_back(code);
  } else {
    for (const uint16_t code : file.read_array<uint16_t>(num_inputs)) fixture.codes.push_back(code);
  }
  EXPECT_TRUE(file.at_end());
  return fixture;
}

std::string hex(uint32_t bits) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08X", bits);
  return text;
}

TEST(FloatConvert, DecodeEveryCodeMatchesMlDtypes) {
  for (const Format& format : formats()) {
    const FloatFixture fixture = load_fixture(format.name);
    int mismatches = 0;
    for (uint32_t code = 0; code < fixture.decoded.size(); ++code) {
      const float want = fixture.decoded[code];
      const float got = format.decode(code);
      const bool ok =
          std::isnan(want) ? std::isnan(got) : std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want);
      if (!ok && ++mismatches <= 5) {
        ADD_FAILURE() << format.name << " code " << hex(code) << ": got " << got << " want " << want;
      }
    }
    EXPECT_EQ(mismatches, 0) << format.name;
  }
}

TEST(FloatConvert, EncodeMatchesMlDtypes) {
  for (const Format& format : formats()) {
    const FloatFixture fixture = load_fixture(format.name);
    ASSERT_GT(fixture.inputs.size(), 1000U) << format.name;
    int mismatches = 0;
    for (size_t i = 0; i < fixture.inputs.size(); ++i) {
      const float input = fixture.inputs[i];
      const uint32_t want = fixture.codes[i];
      const uint32_t got = format.encode(input);
      const bool ok = std::isnan(input) ? std::isnan(format.decode(got)) : got == want;
      if (!ok && ++mismatches <= 5) {
        ADD_FAILURE() << format.name << " input " << input << " (" << hex(std::bit_cast<uint32_t>(input))
                      << "): got code " << hex(got) << " want " << hex(want);
      }
    }
    EXPECT_EQ(mismatches, 0) << format.name;
  }
}

// Fresh random f32 inputs: the code we pick must decode (by the reference table) to a
// nearest representable value, with ties going to the even code.
TEST(FloatConvert, EncodeRandomIsNearestByReferenceTable) {
  testing::Rng rng(testing::test_seed());
  for (const Format& format : formats()) {
    const FloatFixture fixture = load_fixture(format.name);
    const auto num_codes = static_cast<uint32_t>(fixture.decoded.size());
    const uint32_t sign_bit = num_codes / 2;
    const auto max_finite =
        static_cast<double>(*std::max_element(fixture.decoded.begin(), fixture.decoded.end(), [](float a, float b) {
          return (std::isfinite(a) ? a : 0.0F) < (std::isfinite(b) ? b : 0.0F);
        }));
    // Magnitudes log-uniform over the format's range: exponent of max_finite plus margin.
    std::uniform_real_distribution<double> log2_magnitude(-40.0, std::log2(max_finite) + 0.5);
    for (int trial = 0; trial < 20000; ++trial) {
      const auto input = static_cast<float>(std::exp2(log2_magnitude(rng)) * ((trial & 1) ? -1.0 : 1.0));
      const uint32_t code = format.encode(input);
      ASSERT_LT(code, num_codes);
      const float value = fixture.decoded[code];
      if (std::fabs(static_cast<double>(input)) > max_finite) continue;  // overflow: covered by the fixture
      ASSERT_TRUE(std::isfinite(value)) << format.name << " " << input;
      const double error = std::fabs(static_cast<double>(value) - input);
      // Neighbours by magnitude: code +- 1 within the same sign half.
      for (const int step : {-1, 1}) {
        const uint32_t magnitude = code & (sign_bit - 1);
        if ((step < 0 && magnitude == 0) || magnitude + step >= sign_bit) continue;
        const float neighbour = fixture.decoded[(code & sign_bit) | (magnitude + step)];
        if (!std::isfinite(neighbour)) continue;
        const double neighbour_error = std::fabs(static_cast<double>(neighbour) - input);
        ASSERT_LE(error, neighbour_error) << format.name << " input " << input << " code " << hex(code);
        if (error == neighbour_error) {
          ASSERT_EQ(code & 1U, 0U) << format.name << " tie for " << input;
        }
      }
    }
  }
}

TEST(FloatConvert, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(f32_to_f16(65520.0F), 0x7C00);  // tie above max: Inf
  EXPECT_EQ(f32_to_f16(-inf), 0xFC00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(nan))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(-nan))));
  EXPECT_EQ(f32_to_e4m3(464.0F), 0x7E);  // tie rounds to even 448
  EXPECT_EQ(f32_to_e4m3(inf), 0x7F);     // no Inf in e4m3fn: NaN
  EXPECT_EQ(f32_to_e4m3(-1e6F), 0xFF);
  EXPECT_EQ(f32_to_e5m2(61440.0F), 0x7C);  // tie above 57344: Inf
  EXPECT_EQ(f32_to_e5m2(-0.0F), 0x80);
}

// --- convert_host: integers and the f64 paths ---

template <typename Out>
std::vector<Out> convert_from_f64(const std::vector<double>& values, DType dst) {
  std::vector<Out> out(values.size());
  convert_host(DType::F64, values.data(), dst, out.data(), static_cast<int64_t>(values.size()));
  return out;
}

TEST(ConvertHost, IntegersRoundToNearestEvenAndSaturate) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> values = {0.5,   1.5,   2.5, -0.5, -1.5,  -2.5, 2.4999, -2.5001,
                                      127.4, 127.5, 300, -129, -1e30, nan,  inf,    -inf};
  EXPECT_EQ(convert_from_f64<int8_t>(values, DType::I8),
            (std::vector<int8_t>{0, 2, 2, 0, -2, -2, 2, -3, 127, 127, 127, -128, -128, 0, 127, -128}));
  EXPECT_EQ(convert_from_f64<uint8_t>(values, DType::U8),
            (std::vector<uint8_t>{0, 2, 2, 0, 0, 0, 2, 0, 127, 128, 255, 0, 0, 0, 255, 0}));
  EXPECT_EQ(convert_from_f64<int32_t>(values, DType::I32),
            (std::vector<int32_t>{0, 2, 2, 0, -2, -2, 2, -3, 127, 128, 300, -129, INT32_MIN, 0, INT32_MAX, INT32_MIN}));
  const std::vector<int64_t> big = convert_from_f64<int64_t>({1e19, -1e19, 4503599627370497.0, nan}, DType::I64);
  EXPECT_EQ(big, (std::vector<int64_t>{INT64_MAX, INT64_MIN, 4503599627370497LL, 0}));
  // From f32 and f16 sources too (through the generic path).
  const std::vector<float> floats = {3.5F, 4.5F, -7.5F, 1e10F, std::numeric_limits<float>::quiet_NaN()};
  std::vector<int32_t> ints(floats.size());
  convert_host(DType::F32, floats.data(), DType::I32, ints.data(), static_cast<int64_t>(floats.size()));
  EXPECT_EQ(ints, (std::vector<int32_t>{4, 4, -8, INT32_MAX, 0}));
}

TEST(ConvertHost, IntegersToFloats) {
  const std::vector<int64_t> values = {0, -3, 257, (1LL << 53) + 1, INT64_MIN};
  std::vector<double> as_f64(values.size());
  convert_host(DType::I64, values.data(), DType::F64, as_f64.data(), 5);
  EXPECT_EQ(as_f64, (std::vector<double>{0, -3, 257, 9007199254740992.0, -9223372036854775808.0}));
  std::vector<uint16_t> as_bf16(values.size());
  convert_host(DType::I64, values.data(), DType::BF16, as_bf16.data(), 5);
  EXPECT_EQ(bf16_to_f32(as_bf16[2]), 256.0F);  // 257 is a tie between 256 and 258: even mantissa wins
  const std::vector<uint8_t> bytes = {0, 200, 255};
  std::vector<float> as_f32(3);
  convert_host(DType::U8, bytes.data(), DType::F32, as_f32.data(), 3);
  EXPECT_EQ(as_f32, (std::vector<float>{0, 200, 255}));
}

// f64 -> narrow must round once: a value just above a tie of the narrow format would
// become the exact tie if first rounded to f32, then round the wrong way.
TEST(ConvertHost, F64ToNarrowRoundsOnce) {
  const double above_bf16_tie = 1.0 + 0x1p-8 + 0x1p-40;           // bf16 neighbours 1 and 1 + 2^-7
  const double below_bf16_tie = 1.0 + 0x1p-7 + 0x1p-8 - 0x1p-40;  // tie of 1+2^-7 (odd) and 1+2^-6
  const double above_f16_tie = 1.0 + 0x1p-11 + 0x1p-45;           // f16 neighbours 1 and 1 + 2^-10
  const double above_e4m3_tie = 1.0 + 0x1p-4 + 0x1p-50;
  const double above_e5m2_tie = -(1.0 + 0x1p-3 + 0x1p-50);
  const auto bf16 = convert_from_f64<uint16_t>({above_bf16_tie, below_bf16_tie, 1.0 + 0x1p-8}, DType::BF16);
  EXPECT_EQ(bf16_to_f32(bf16[0]), 1.0F + 0x1p-7F);
  EXPECT_EQ(bf16_to_f32(bf16[1]), 1.0F + 0x1p-7F);
  EXPECT_EQ(bf16_to_f32(bf16[2]), 1.0F);  // the exact tie goes to even
  EXPECT_EQ(f16_to_f32(convert_from_f64<uint16_t>({above_f16_tie}, DType::F16)[0]), 1.0F + 0x1p-10F);
  EXPECT_EQ(e4m3_to_f32(convert_from_f64<uint8_t>({above_e4m3_tie}, DType::F8E4M3)[0]), 1.125F);
  EXPECT_EQ(e5m2_to_f32(convert_from_f64<uint8_t>({above_e5m2_tie}, DType::F8E5M2)[0]), -1.25F);
  // f64 -> f32 is the hardware's single rounding; overflow of a narrow format still gives Inf.
  EXPECT_EQ(convert_from_f64<float>({1.0 + 0x1p-24 + 0x1p-40}, DType::F32)[0], 1.0F + 0x1p-23F);
  EXPECT_EQ(convert_from_f64<uint16_t>({1e300}, DType::F16)[0], 0x7C00);
  EXPECT_EQ(convert_from_f64<uint16_t>({-1e300}, DType::BF16)[0], 0xFF80);
}

// convert_host over buffers agrees with the scalar codecs for every plain float format.
TEST(ConvertHost, BuffersAgreeWithScalarCodecs) {
  testing::Rng rng(testing::test_seed());
  std::uniform_real_distribution<float> uniform(-500.0F, 500.0F);
  std::vector<float> values(1000);
  for (float& value : values) value = uniform(rng);
  for (const Format& format : formats()) {
    std::vector<uint16_t> codes(values.size());  // wide enough for 1- and 2-byte codes
    convert_host(DType::F32, values.data(), format.dtype, codes.data(), static_cast<int64_t>(values.size()));
    std::vector<float> back(values.size());
    convert_host(format.dtype, codes.data(), DType::F32, back.data(), static_cast<int64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      const uint32_t code = format.encode(values[i]);
      const float want = format.decode(code);
      ASSERT_TRUE(back[i] == want || (std::isnan(want) && std::isnan(back[i])))
          << format.name << " value " << values[i] << " got " << back[i] << " want " << want;
    }
  }
}

}  // namespace
}  // namespace anvil
