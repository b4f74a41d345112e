// safetensors reader and writer: a file from the reference `safetensors` package
// (tools/gen_safetensors_fixture.py), our writer's round trip, and corrupt input.
#include "anvil/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "support/op_harness.h"

namespace anvil::io {
namespace {

const std::string kFixture = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/io/tiny.safetensors";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

TEST(Safetensors, ReadsFileFromTheReferencePackage) {
  const SafetensorsFile file = SafetensorsFile::open(kFixture);
  ASSERT_EQ(file.entries().size(), 3U);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "anvil fixture");
  const Tensor a = file.tensor("a.f32");
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  const std::vector<float> a_values = a.to_f32_vector();
  for (size_t i = 0; i < a_values.size(); ++i) EXPECT_EQ(a_values[i], static_cast<float>(i) * 0.5F - 1.0F);
  EXPECT_EQ(file.tensor("b.bf16").to_f32_vector(), (std::vector<float>{1.0F, -2.0F, 0.5F, 3.0F}));
  const Tensor c = file.tensor("c.i64");
  EXPECT_EQ(c.dtype(), DType::I64);
  EXPECT_EQ(c.data<int64_t>()[2], 1993);
  EXPECT_THROW((void)file.tensor("missing"), Error);
}

TEST(Safetensors, WriterRoundTrips) {
  const std::string path = ::testing::TempDir() + "anvil_roundtrip.safetensors";
  testing::Rng rng(testing::test_seed());
  std::uniform_real_distribution<float> uniform(-5.0F, 5.0F);
  std::vector<float> values(7 * 9);
  for (float& value : values) value = uniform(rng);
  const Tensor weights = Tensor::from_f32({7, 9}, values);
  write_safetensors(
      path, {{"w", weights}, {"w.f16", weights.to_dtype(DType::F16)}, {"scalar", Tensor::zeros({}, DType::F32)}},
      {{"format", "pt"}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.tensor("w").to_f32_vector(), values);
  EXPECT_EQ(file.tensor("w.f16").to_f32_vector(), weights.to_dtype(DType::F16).to_f32_vector());
  EXPECT_EQ(file.tensor("scalar").shape(), Shape{});
  EXPECT_EQ(file.metadata().at("format"), "pt");
  std::remove(path.c_str());
}

TEST(Safetensors, EveryTruncationIsAClearError) {
  const std::vector<uint8_t> bytes = read_bytes(kFixture);
  for (size_t size = 0; size < bytes.size(); ++size) {
    try {
      (void)SafetensorsFile::parse(bytes.data(), size, "cut.safetensors", nullptr);
      ADD_FAILURE() << "prefix of " << size << " bytes parsed without error";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("cut.safetensors"), std::string::npos) << error.what();
    }
  }
}

TEST(Safetensors, CorruptHeadersAreRejectedClearly) {
  const auto with_header = [](const std::string& json) {
    std::vector<uint8_t> bytes(8 + json.size() + 16, 0);
    const uint64_t length = json.size();
    std::memcpy(bytes.data(), &length, 8);
    std::memcpy(bytes.data() + 8, json.data(), json.size());
    return bytes;
  };
  const std::vector<std::string> bad = {
      "not json",
      "[1, 2]",
      R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})",   // wrong byte count
      R"({"t": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}})",    // unknown dtype
      R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",  // negative dim
      R"({"t": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})",  // past the end
      R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",   // gap
      R"({"t": {"dtype": "F32", "shape": [1]}})",                           // missing offsets
      R"({"__metadata__": {"k": 1}})",                                      // non-string metadata
  };
  for (const std::string& json : bad) {
    const std::vector<uint8_t> bytes = with_header(json);
    EXPECT_THROW((void)SafetensorsFile::parse(bytes.data(), bytes.size(), "bad", nullptr), Error) << json;
  }
}

TEST(Safetensors, CorruptBytesNeverCrash) {
  const std::vector<uint8_t> original = read_bytes(kFixture);
  testing::Rng rng(testing::test_seed());
  std::uniform_int_distribution<size_t> position(0, original.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> bytes = original;
    for (int flips = 0; flips < 2; ++flips) bytes[position(rng)] = static_cast<uint8_t>(byte(rng));
    try {
      const SafetensorsFile file = SafetensorsFile::parse(bytes.data(), bytes.size(), "corrupt", nullptr);
      for (const SafetensorsEntry& entry : file.entries()) (void)file.tensor(entry.name).to_f64_vector();
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace anvil::io
