// GGUF block formats: dequantisation bit-for-bit against the gguf package, legacy
// quantisation bit-for-bit against gguf's reference quantizers, K-quant round trips
// within float64 error bounds, and Tensor::to_dtype on quantized tensors.
#include "anvil/core/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "anvil/core/error.h"
#include "anvil/core/float_convert.h"
#include "anvil/core/tensor.h"
#include "fixture_file.h"
#include "support/op_harness.h"

namespace anvil {
namespace {

using testing::FixtureFile;

const std::vector<DType>& quant_dtypes() {
  static const std::vector<DType> kDTypes = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                             DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  return kDTypes;
}

bool gguf_can_quantize(DType dtype) { return dtype_info(dtype).block_elems == kQuantBlock; }

// What tools/gen_quant_fixtures.py wrote for one type.
struct QuantFixture {
  std::vector<float> inputs;          // (a) floats gguf quantized (legacy types only)
  std::vector<uint8_t> quantized;     //     gguf's bytes for them
  std::vector<float> dequantized;     //     gguf's dequantisation of those bytes
  std::vector<uint8_t> random_bytes;  // (b) random blocks with finite f16 scales
  std::vector<float> random_dequantized;
};

QuantFixture load_fixture(DType dtype) {
  FixtureFile file("quant_" + std::string(dtype_name(dtype)) + ".bin");
  file.expect_magic("ANVQNT01");
  QuantFixture fixture;
  const uint32_t num_quantized = file.read_u32();
  fixture.inputs = file.read_array<float>(num_quantized);
  fixture.quantized = file.read_bytes(dtype_bytes_for(dtype, num_quantized));
  fixture.dequantized = file.read_array<float>(num_quantized);
  const uint32_t num_random = file.read_u32();
  fixture.random_bytes = file.read_bytes(dtype_bytes_for(dtype, num_random));
  fixture.random_dequantized = file.read_array<float>(num_random);
  EXPECT_TRUE(file.at_end());
  return fixture;
}

// Bit-for-bit float comparison; reports the first few mismatches.
void expect_bits_equal(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]) && ++mismatches <= 5) {
      ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want[i];
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

std::vector<float> dequantize(DType dtype, const std::vector<uint8_t>& bytes) {
  const int64_t num_elems =
      static_cast<int64_t>(bytes.size()) / dtype_info(dtype).block_bytes * dtype_info(dtype).block_elems;
  std::vector<float> out(static_cast<size_t>(num_elems));
  dequantize_row(dtype, bytes.data(), out.data(), num_elems);
  return out;
}

std::vector<uint8_t> quantize(DType dtype, const std::vector<float>& values) {
  const auto num_elems = static_cast<int64_t>(values.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(dtype_bytes_for(dtype, num_elems)));
  quantize_row(dtype, values.data(), bytes.data(), num_elems);
  return bytes;
}

TEST(Quant, DequantizeMatchesGguf) {
  for (const DType dtype : quant_dtypes()) {
    const QuantFixture fixture = load_fixture(dtype);
    const std::string name(dtype_name(dtype));
    ASSERT_FALSE(fixture.random_bytes.empty()) << name;
    expect_bits_equal(dequantize(dtype, fixture.random_bytes), fixture.random_dequantized, name + " random blocks");
    if (gguf_can_quantize(dtype)) {
      expect_bits_equal(dequantize(dtype, fixture.quantized), fixture.dequantized, name + " quantized blocks");
    }
  }
}

TEST(Quant, LegacyQuantizeMatchesGguf) {
  for (const DType dtype : quant_dtypes()) {
    if (!gguf_can_quantize(dtype)) continue;
    const QuantFixture fixture = load_fixture(dtype);
    ASSERT_FALSE(fixture.inputs.empty());
    const std::vector<uint8_t> got = quantize(dtype, fixture.inputs);
    const int64_t block_bytes = dtype_info(dtype).block_bytes;
    for (size_t block = 0; block * block_bytes < got.size(); ++block) {
      const auto begin = static_cast<std::ptrdiff_t>(block * block_bytes);
      EXPECT_TRUE(std::equal(got.begin() + begin, got.begin() + begin + block_bytes, fixture.quantized.begin() + begin))
          << dtype_name(dtype) << " block " << block << " differs from gguf";
    }
  }
}

// Random test rows: per 32-element block a random scale and one of several shapes
// (normal, offset uniform of one sign, normal with an outlier).
std::vector<float> random_row(int64_t num_elems, testing::Rng& rng) {
  std::vector<float> values(static_cast<size_t>(num_elems));
  std::uniform_real_distribution<double> log_scale(-0.5, 2.0);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int64_t block = 0; block < num_elems / kQuantBlock; ++block) {
    const double scale = std::pow(10.0, log_scale(rng));
    const int shape = static_cast<int>(rng() % 3);
    const double offset = uniform(rng) > 0 ? 1.5 : -1.5;
    for (int j = 0; j < kQuantBlock; ++j) {
      double value = shape == 1 ? uniform(rng) + offset : normal(rng);
      if (shape == 2 && j == static_cast<int>(rng() % kQuantBlock)) value *= 8.0;
      values[static_cast<size_t>(block * kQuantBlock + j)] = static_cast<float>(value * scale);
    }
  }
  return values;
}

// Distance from x to the nearest of low, low + step, ..., low + (count - 1) * step.
double grid_distance(double x, double low, double step, int count) {
  if (step == 0.0) return std::fabs(x - low);
  const double k = std::clamp(std::round((x - low) / step), 0.0, static_cast<double>(count - 1));
  return std::fabs(x - (low + k * step));
}

// Per-element error bounds (float64, from the values alone) for a round-to-nearest
// quantizer of each format; the slack covers f16 scales and f32 arithmetic.
std::vector<double> legacy_bounds(DType dtype, const std::vector<float>& values) {
  std::vector<double> bounds(values.size());
  for (size_t begin = 0; begin < values.size(); begin += kQuantBlock) {
    const auto block = std::vector<double>(values.begin() + static_cast<std::ptrdiff_t>(begin),
                                           values.begin() + static_cast<std::ptrdiff_t>(begin + kQuantBlock));
    const auto [low_it, high_it] = std::minmax_element(block.begin(), block.end());
    const double low = *low_it;
    const double high = *high_it;
    const double signed_max = std::fabs(low) > std::fabs(high) ? low : high;  // extreme element
    const double abs_max = std::fabs(signed_max);
    for (size_t j = 0; j < block.size(); ++j) {
      double distance = 0.0;
      double slack = abs_max * 0x1p-10;
      if (dtype == DType::Q8_0) distance = grid_distance(block[j], -abs_max, abs_max / 127, 255);
      if (dtype == DType::Q4_0) {  // codes 0..15 are max * (8 - q) / 8: the extreme maps to -8
        distance = grid_distance(block[j], signed_max > 0 ? -abs_max * 7 / 8 : -abs_max, abs_max / 8, 16);
      }
      if (dtype == DType::Q5_0) {
        distance = grid_distance(block[j], signed_max > 0 ? -abs_max * 15 / 16 : -abs_max, abs_max / 16, 32);
      }
      if (dtype == DType::Q4_1) distance = grid_distance(block[j], low, (high - low) / 15, 16);
      if (dtype == DType::Q5_1) distance = grid_distance(block[j], low, (high - low) / 31, 32);
      if (dtype == DType::Q4_1 || dtype == DType::Q5_1) slack *= 2;  // f16 min as well as scale
      bounds[begin + j] = distance + slack;
    }
  }
  return bounds;
}

// Q4_K / Q5_K: sub-blocks of 32 on the grid -neg_min + step * q, q in [0, max_code], with
// 6-bit scales and mins of the super-block's largest step and neg_min / 63.
std::vector<double> asymmetric_k_bounds(const std::vector<float>& values, int max_code) {
  std::vector<double> bounds(values.size());
  for (size_t super = 0; super < values.size(); super += kQuantSuperBlock) {
    std::vector<double> step(8), range(8);
    double max_step = 0.0;
    double max_neg_min = 0.0;
    double abs_max = 0.0;
    for (size_t j = 0; j < 8; ++j) {
      const auto sub = values.begin() + static_cast<std::ptrdiff_t>(super + 32 * j);
      const auto [low_it, high_it] = std::minmax_element(sub, sub + 32);
      const double low = std::min(0.0, static_cast<double>(*low_it));
      range[j] = *high_it - low;
      step[j] = range[j] / max_code;
      max_step = std::max(max_step, step[j]);
      max_neg_min = std::max(max_neg_min, -low);
      abs_max = std::max({abs_max, std::fabs(low), std::fabs(static_cast<double>(*high_it))});
    }
    for (size_t e = 0; e < kQuantSuperBlock; ++e) {
      const size_t j = e / 32;
      bounds[super + e] =
          0.5 * step[j] + 0.5 * (max_step + max_neg_min) / 63 * (1 + 0x1p-9) + range[j] * 0x1p-9 + abs_max * 1e-6;
    }
  }
  return bounds;
}

// Q6_K: symmetric sub-blocks of 16, step max|x| / 31 in multiples of max step / 127.
std::vector<double> q6_k_bounds(const std::vector<float>& values) {
  std::vector<double> bounds(values.size());
  for (size_t super = 0; super < values.size(); super += kQuantSuperBlock) {
    std::vector<double> sub_max(16, 0.0);
    for (size_t e = 0; e < kQuantSuperBlock; ++e) {
      sub_max[e / 16] = std::max(sub_max[e / 16], std::fabs(static_cast<double>(values[super + e])));
    }
    const double abs_max = *std::max_element(sub_max.begin(), sub_max.end());
    for (size_t e = 0; e < kQuantSuperBlock; ++e) {
      bounds[super + e] = 0.5 * sub_max[e / 16] / 31 + 0.5 * abs_max / 31 / 127 * (1 + 0x1p-9) +
                          sub_max[e / 16] * 0x1p-9 + abs_max * 1e-6;
    }
  }
  return bounds;
}

std::vector<double> error_bounds(DType dtype, const std::vector<float>& values) {
  if (dtype == DType::Q4_K) return asymmetric_k_bounds(values, 15);
  if (dtype == DType::Q5_K) return asymmetric_k_bounds(values, 31);
  if (dtype == DType::Q6_K) return q6_k_bounds(values);
  return legacy_bounds(dtype, values);
}

TEST(Quant, RoundTripWithinErrorBound) {
  testing::Rng rng(testing::test_seed());
  for (const DType dtype : quant_dtypes()) {
    for (const int64_t num_blocks : {1, 3, 8}) {
      const int64_t num_elems = num_blocks * dtype_info(dtype).block_elems;
      const std::vector<float> values = random_row(num_elems, rng);
      const std::vector<float> restored = dequantize(dtype, quantize(dtype, values));
      const std::vector<double> bounds = error_bounds(dtype, values);
      double worst_ratio = 0.0;
      size_t worst = 0;
      for (size_t i = 0; i < values.size(); ++i) {
        const double ratio = std::fabs(static_cast<double>(restored[i]) - values[i]) / bounds[i];
        if (ratio > worst_ratio) {
          worst_ratio = ratio;
          worst = i;
        }
      }
      EXPECT_LE(worst_ratio, 1.0) << dtype_name(dtype) << " " << num_elems << " elements: element " << worst
                                  << " value " << values[worst] << " restored " << restored[worst] << " bound "
                                  << bounds[worst];
    }
  }
}

// Legacy formats: values already on the block's grid (scale exactly 1) round-trip exactly.
TEST(Quant, LegacyGridValuesRoundTripExactly) {
  // (dtype, lowest, highest): the block holds lowest, highest and integers in between.
  const std::vector<std::tuple<DType, int, int>> cases = {{DType::Q8_0, -127, 127},
                                                          {DType::Q4_0, -8, 7},
                                                          {DType::Q4_1, -3, 12},
                                                          {DType::Q5_0, -16, 15},
                                                          {DType::Q5_1, -40, -9}};
  for (const auto& [dtype, lowest, highest] : cases) {
    std::vector<float> values(kQuantBlock);
    for (int j = 0; j < kQuantBlock; ++j)
      values[static_cast<size_t>(j)] = static_cast<float>(lowest + (j * 7) % (highest - lowest + 1));
    values[3] = static_cast<float>(lowest);
    values[9] = static_cast<float>(highest);
    expect_bits_equal(dequantize(dtype, quantize(dtype, values)), values,
                      std::string(dtype_name(dtype)) + " grid values");
  }
}

TEST(Quant, RejectsPartialBlocksAndPlainTypes) {
  std::vector<float> values(300, 1.0F);
  std::vector<uint8_t> bytes(1024);
  EXPECT_THROW(quantize_row(DType::Q8_0, values.data(), bytes.data(), 33), Error);
  EXPECT_THROW(dequantize_row(DType::Q4_0, bytes.data(), values.data(), 48), Error);
  EXPECT_THROW(dequantize_row(DType::Q4_K, bytes.data(), values.data(), 100), Error);
  EXPECT_THROW(quantize_row(DType::Q6_K, values.data(), bytes.data(), 288), Error);
  EXPECT_THROW(dequantize_row(DType::F32, bytes.data(), values.data(), 32), Error);
  EXPECT_THROW(quantize_row(DType::BF16, values.data(), bytes.data(), 32), Error);
  EXPECT_NO_THROW(dequantize_row(DType::Q6_K, bytes.data(), values.data(), 0));
}

// A quantized tensor holding gguf's bytes converts to f32 exactly as gguf dequantizes,
// also through a row slice, and converting on to f16 rounds those floats.
TEST(Quant, TensorToDtypeDequantizes) {
  for (const DType dtype : quant_dtypes()) {
    const QuantFixture fixture = load_fixture(dtype);
    const auto num_elems = static_cast<int64_t>(fixture.random_dequantized.size());
    const Shape shape = {2, num_elems / 2};
    Tensor quantized = Tensor::empty(shape, dtype);
    ASSERT_EQ(quantized.nbytes(), static_cast<int64_t>(fixture.random_bytes.size()));
    std::memcpy(quantized.raw_data(), fixture.random_bytes.data(), fixture.random_bytes.size());
    const std::string name(dtype_name(dtype));
    const Tensor as_f32 = quantized.to_dtype(DType::F32);
    EXPECT_EQ(as_f32.shape(), shape);
    expect_bits_equal(as_f32.to_f32_vector(), fixture.random_dequantized, name + " to_dtype(f32)");
    const std::vector<float> second_row(fixture.random_dequantized.begin() + num_elems / 2,
                                        fixture.random_dequantized.end());
    expect_bits_equal(quantized.slice(0, 1, 2).to_dtype(DType::F32).to_f32_vector(), second_row, name + " row 1");
    const Tensor as_f16 = quantized.to_dtype(DType::F16);
    for (int64_t i = 0; i < num_elems; i += 37) {
      EXPECT_EQ(as_f16.data<uint16_t>()[i], f32_to_f16(fixture.random_dequantized[static_cast<size_t>(i)])) << name;
    }
  }
}

// f32 tensors convert to the legacy formats with gguf's bytes.
TEST(Quant, TensorToQuantizedDtypeMatchesGguf) {
  for (const DType dtype : quant_dtypes()) {
    if (!gguf_can_quantize(dtype)) continue;
    const QuantFixture fixture = load_fixture(dtype);
    const Tensor values = Tensor::from_f32({static_cast<int64_t>(fixture.inputs.size())}, fixture.inputs);
    const Tensor quantized = values.to_dtype(dtype);
    ASSERT_EQ(quantized.nbytes(), static_cast<int64_t>(fixture.quantized.size()));
    EXPECT_EQ(std::memcmp(quantized.raw_data(), fixture.quantized.data(), fixture.quantized.size()), 0)
        << dtype_name(dtype);
  }
}

}  // namespace
}  // namespace anvil
