// anvil's intermediates of one prefill of SmolLM2-135M-Instruct Q4_1 against llama.cpp's, bit
// for bit. The fixture (tests/fixtures/smollm2/intermediates.{json,bin}) is written by
// tools/llama_cpp_intermediates.py: llama.cpp's tensors of layer 0 and the logits for one
// prompt, captured with a ggml scheduler eval callback. ANVIL_LLAMACPP_INTERMEDIATES=PREFIX
// compares against another dump (e.g. more layers) instead. Every tensor's differing
// elements and largest difference in ulps are printed; with the AVX2 or AVX-512 kernels
// (which both compute what the AVX-512 build of ggml-cpu that made the fixture computes, see
// docs/reference.md) every tensor must be identical. The scalar kernels only print.
#include <gtest/gtest.h>

#include <bit>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "anvil/infer/block_allocator.h"
#include "anvil/infer/generator.h"
#include "anvil/core/cpu_features.h"
#include "anvil/model/causal_lm.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

const std::string kSource = ANVIL_SOURCE_DIR;
const std::string kSmolLm2 = kSource + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kFixture = kSource + "/tests/fixtures/smollm2/intermediates";

// llama.cpp's (name, occurrence) -> anvil's tap name: Qcur and Kcur are named again after
// their reshape (occurrence 1) and RoPE (2).
std::string anvil_name(const std::string& name, int occurrence) {
  if ((name == "Qcur" || name == "Kcur") && occurrence == 2) return name + "_rope";
  if (occurrence == 0) return name;
  return {};
}

// Distance in representable floats (0 when the bits are equal or both are zeros).
int64_t ulps(float a, float b) {
  const auto ordered = [](float v) {
    const auto bits = std::bit_cast<int32_t>(v);
    return bits < 0 ? int64_t{INT32_MIN} - bits : int64_t{bits};
  };
  return std::abs(ordered(a) - ordered(b));
}

struct Comparison {
  int64_t differing = 0;
  int64_t max_ulps = 0;
  double max_abs = 0.0;
};

Comparison compare(const std::vector<float>& ours, const float* theirs) {
  Comparison result;
  for (size_t i = 0; i < ours.size(); ++i) {
    const int64_t distance = ulps(ours[i], theirs[i]);
    result.differing += distance > 0 ? 1 : 0;
    result.max_ulps = std::max(result.max_ulps, distance);
    result.max_abs = std::max(result.max_abs, static_cast<double>(std::abs(ours[i] - theirs[i])));
  }
  return result;
}

TEST(LlamaCppIntermediates, LayerZeroMatchesLlamaCppBitForBit) {
  if (!std::filesystem::exists(kSmolLm2)) GTEST_SKIP() << kSmolLm2 << " not present (scripts/setup.sh fetches it)";
  const char* override_prefix = std::getenv("ANVIL_LLAMACPP_INTERMEDIATES");
  const std::string prefix = override_prefix != nullptr ? override_prefix : kFixture;
  std::ifstream index_stream(prefix + ".json");
  ASSERT_TRUE(index_stream.good()) << prefix << ".json";
  const nlohmann::json index = nlohmann::json::parse(index_stream);
  std::ifstream bin_stream(prefix + ".bin", std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(bin_stream), std::istreambuf_iterator<char>()};
  const auto prompt = index.at("prompt_ids").get<std::vector<int32_t>>();

  std::map<std::pair<std::string, int64_t>, std::vector<float>> tapped;
  std::unique_ptr<model::CausalLM> lm = model::load_causal_lm(test_ctx(), kSmolLm2);
  lm->set_tap([&](std::string_view name, int64_t layer, const Tensor& value) {
    tapped[{std::string(name), layer}] = value.to_f32_vector();
  });
  Ctx& ctx = test_ctx();
  const model::ModelConfig& config = lm->config();
  const int64_t blocks_needed = (static_cast<int64_t>(prompt.size()) + 15) / 16;
  model::PagedKvCache cache(
      ctx, {config.num_layers, blocks_needed, 16, config.num_kv_heads, config.head_dim, DType::F16}, Device::cpu());
  infer::BlockAllocator blocks(blocks_needed, 16);
  const infer::SequenceId sequence = blocks.add_sequence();
  blocks.reserve(sequence, static_cast<int64_t>(prompt.size()));
  const model::Batch batch = infer::single_sequence_batch(prompt, 0, blocks.block_table(sequence), true);
  tapped[{"result_output", -1}] = lm->forward(ctx, batch, cache).to_f32_vector();

  const bool exact = best_isa(CpuFeatures::from_environment()) != CpuIsa::Scalar;
  int compared = 0;
  for (const nlohmann::json& tensor : index.at("tensors")) {
    const std::string name = anvil_name(tensor.at("name"), tensor.at("occurrence"));
    const int64_t layer = tensor.at("layer").is_null() ? -1 : tensor.at("layer").get<int64_t>();
    if (name.empty()) continue;
    const auto found = tapped.find({name, layer});
    ASSERT_NE(found, tapped.end()) << "anvil has no tensor " << name << " of layer " << layer;
    ++compared;
    int64_t count = 1;
    for (const auto& extent : tensor.at("shape")) count *= extent.get<int64_t>();
    // llama.cpp's last block keeps only the rows whose logits are asked for (the last one).
    const std::vector<float>& all = found->second;
    ASSERT_TRUE(static_cast<int64_t>(all.size()) >= count) << name << " layer " << layer;
    const std::vector<float> ours(all.end() - count, all.end());
    const auto* theirs = reinterpret_cast<const float*>(bytes.data() + tensor.at("offset").get<size_t>());
    const Comparison result = compare(ours, theirs);
    std::printf("[ llama.cpp] layer %2lld %-14s %7lld/%-7lld elements differ, max %lld ulps, max |diff| %.3g\n",
                static_cast<long long>(layer), name.c_str(), static_cast<long long>(result.differing),
                static_cast<long long>(count), static_cast<long long>(result.max_ulps), result.max_abs);
    if (exact) {
      EXPECT_EQ(result.differing, 0) << name << " of layer " << layer << " differs from llama.cpp's";
    }
  }
  EXPECT_GT(compared, 0);
}

}  // namespace
}  // namespace anvil::testing
