// The default model's real tensors: rows dequantised by anvil equal the `gguf` package's
// dequantisation bit for bit (tools/gen_real_dequant_fixture.py wrote the expected rows).
// Skipped when models/ has no SmolLM2 GGUF (scripts/setup.sh puts it there).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "anvil/io/gguf.h"
#include "anvil/io/safetensors.h"

namespace anvil::io {
namespace {

const std::string kModel = std::string(ANVIL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kExpected = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/smollm2/dequant_rows.safetensors";

TEST(GgufRealModel, DequantisedRowsMatchTheGgufPackageBitForBit) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no " << kModel << " (run scripts/setup.sh)";
  const GgufFile model = GgufFile::open(kModel);
  const SafetensorsFile expected = SafetensorsFile::open(kExpected);
  ASSERT_EQ(expected.entries().size(), 5U);
  for (const SafetensorsEntry& entry : expected.entries()) {
    SCOPED_TRACE(entry.name);
    const Tensor weight = model.tensor(entry.name);
    const Tensor rows = weight.dim() == 1 ? weight.view({1, -1}) : weight;
    const std::vector<float> want = expected.tensor(entry.name).to_f32_vector();
    const int64_t row_length = rows.size(-1);
    ASSERT_EQ(entry.shape.back(), row_length);
    const int64_t last = rows.size(0) - 1;
    const std::vector<int64_t> picked =
        rows.size(0) > 3 ? std::vector<int64_t>{0, 1, 2, last} : std::vector<int64_t>{0};
    for (size_t i = 0; i < picked.size(); ++i) {
      const std::vector<float> got = rows.slice(0, picked[i], picked[i] + 1).to_f32_vector();
      ASSERT_EQ(got.size(), static_cast<size_t>(row_length));
      EXPECT_EQ(std::memcmp(got.data(), want.data() + i * static_cast<size_t>(row_length), got.size() * sizeof(float)),
                0)
          << "row " << picked[i];
    }
  }
}

}  // namespace
}  // namespace anvil::io
