// GGUF reader and writer: a file written by the reference `gguf` package
// (tools/gen_gguf_fixture.py), our writer's round trip, and corrupt input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/io/gguf_writer.h"
#include "support/op_harness.h"

namespace anvil::io {
namespace {

const std::string kFixture = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/io/tiny.gguf";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

TEST(Gguf, ReadsEveryMetadataTypeWrittenByTheGgufPackage) {
  const GgufFile file = GgufFile::open(kFixture);
  EXPECT_EQ(file.version(), 3U);
  EXPECT_EQ(file.get("general.architecture").as_string(), "llama");
  EXPECT_EQ(file.get("test.u8").as_int(), 200);
  EXPECT_EQ(file.get("test.i8").as_int(), -100);
  EXPECT_EQ(file.get("test.u16").as_int(), 60000);
  EXPECT_EQ(file.get("test.i16").as_int(), -30000);
  EXPECT_EQ(file.get("test.u32").as_int(), 4000000000);
  EXPECT_EQ(file.get("test.i32").as_int(), -2000000000);
  EXPECT_EQ(file.get("test.f32").as_float(), 1.5);
  EXPECT_EQ(file.get("test.u64").as_int(), int64_t{1} << 40);
  EXPECT_EQ(file.get("test.i64").as_int(), -(int64_t{1} << 40));
  EXPECT_EQ(file.get("test.f64").as_float(), 0.1);
  EXPECT_TRUE(file.get("test.bool").as_bool());
  EXPECT_EQ(file.get("test.string").as_string(), "h\xc3\xa9llo w\xc3\xb6rld");
  const GgufArray& ints = file.get("test.array_i32").as_array();
  ASSERT_EQ(ints.items.size(), 3U);
  EXPECT_EQ(ints.items[1].as_int(), -2);
  const GgufArray& strings = file.get("test.array_str").as_array();
  ASSERT_EQ(strings.items.size(), 3U);
  EXPECT_EQ(strings.items[1].as_string(), "bc");
  EXPECT_EQ(strings.items[2].as_string(), "");
  EXPECT_EQ(file.find("missing"), nullptr);
  EXPECT_THROW((void)file.get("missing"), Error);
  EXPECT_THROW((void)file.get("test.string").as_int(), Error);
}

TEST(Gguf, ReadsTensorsZeroCopy) {
  const GgufFile file = GgufFile::open(kFixture);
  const Tensor f32 = file.tensor("t.f32");
  EXPECT_EQ(f32.shape(), (Shape{3, 5}));
  const std::vector<float> f32_values = f32.to_f32_vector();
  for (size_t i = 0; i < f32_values.size(); ++i) EXPECT_EQ(f32_values[i], static_cast<float>(i) * 0.25F - 1.0F);
  const Tensor f16 = file.tensor("t.f16");
  EXPECT_EQ(f16.dtype(), DType::F16);
  EXPECT_EQ(f16.shape(), (Shape{2, 4}));
  const std::vector<float> f16_values = f16.to_f32_vector();
  for (size_t i = 0; i < f16_values.size(); ++i) EXPECT_EQ(f16_values[i], static_cast<float>(i) * 0.5F - 2.0F);
  const Tensor i32 = file.tensor("t.i32");
  EXPECT_EQ(i32.data<int32_t>()[5], 15);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f32.raw_data()) % file.alignment(), 0U);
  EXPECT_THROW((void)file.tensor("nope"), Error);
}

TEST(Gguf, WriterRoundTrips) {
  const std::string path = ::testing::TempDir() + "anvil_roundtrip.gguf";
  testing::Rng rng(testing::test_seed());
  std::uniform_real_distribution<float> uniform(-3.0F, 3.0F);
  std::vector<float> values(6 * 10);
  for (float& value : values) value = uniform(rng);
  const Tensor weights = Tensor::from_f32({6, 10}, values);
  GgufWriter writer;
  writer.set("general.architecture", GgufWriter::string("gpt2"));
  writer.set("gpt2.block_count", GgufWriter::u32(12));
  writer.set("x.flag", GgufWriter::boolean(false));
  writer.set("x.scale", GgufWriter::f32(0.125F));
  writer.set("x.list", GgufValue{GgufType::Array, GgufArray{GgufType::String, {GgufWriter::string("a")}}});
  writer.add_tensor("w", weights);
  writer.add_tensor("w.bf16", weights.to_dtype(DType::BF16));
  writer.write(path);

  const GgufFile file = GgufFile::open(path);
  EXPECT_EQ(file.get("gpt2.block_count").as_int(), 12);
  EXPECT_FALSE(file.get("x.flag").as_bool());
  EXPECT_EQ(file.get("x.scale").as_float(), 0.125);
  EXPECT_EQ(file.get("x.list").as_array().items.at(0).as_string(), "a");
  EXPECT_EQ(file.tensor("w").to_f32_vector(), values);
  EXPECT_EQ(file.tensor("w.bf16").to_f32_vector(), weights.to_dtype(DType::BF16).to_f32_vector());
  std::remove(path.c_str());
}

TEST(Gguf, EveryTruncationIsAClearError) {
  const std::vector<uint8_t> bytes = read_bytes(kFixture);
  const GgufFile whole = GgufFile::open(kFixture);
  uint64_t data_end = 0;
  for (const GgufTensorInfo& info : whole.tensors()) data_end = std::max(data_end, info.offset + info.bytes);
  const size_t needed = whole.data_offset() + data_end;  // only padding may follow
  ASSERT_LE(needed, bytes.size());
  for (size_t size = 0; size < bytes.size(); ++size) {
    try {
      (void)GgufFile::parse(bytes.data(), size, "truncated.gguf", nullptr);
      EXPECT_GE(size, needed) << "prefix of " << size << " bytes parsed without error";
    } catch (const Error& error) {
      EXPECT_LT(size, needed) << error.what();
      const std::string message = error.what();
      EXPECT_NE(message.find("truncated.gguf"), std::string::npos) << message;
      EXPECT_TRUE(message.find("truncated file") != std::string::npos || message.find("outside") != std::string::npos ||
                  message.find("exceed") != std::string::npos)
          << message;
    }
  }
}

TEST(Gguf, CorruptBytesNeverCrash) {
  const std::vector<uint8_t> original = read_bytes(kFixture);
  testing::Rng rng(testing::test_seed());
  std::uniform_int_distribution<size_t> position(0, original.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int rejected = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> bytes = original;
    for (int flips = 0; flips < 3; ++flips) bytes[position(rng)] = static_cast<uint8_t>(byte(rng));
    try {
      const GgufFile file = GgufFile::parse(bytes.data(), bytes.size(), "corrupt", nullptr);
      for (const GgufTensorInfo& info : file.tensors()) {
        if (info.dtype) (void)file.tensor(info.name).to_f32_vector();
      }
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(Gguf, RejectsBadMagicAndVersion) {
  std::vector<uint8_t> bytes = read_bytes(kFixture);
  bytes[0] = 'X';
  EXPECT_THROW((void)GgufFile::parse(bytes.data(), bytes.size(), "bad", nullptr), Error);
  bytes = read_bytes(kFixture);
  bytes[4] = 9;
  EXPECT_THROW((void)GgufFile::parse(bytes.data(), bytes.size(), "bad", nullptr), Error);
  EXPECT_THROW((void)GgufFile::open("/nonexistent/model.gguf"), Error);
}

}  // namespace
}  // namespace anvil::io
