// The real SmolLM2-135M-Instruct (Q4_1 GGUF) when present at models/ (git-ignored; the test
// skips otherwise): the config is read right, logits are finite, and greedy continuation
// is the same whether generated token by token or re-run as one prefill. (Exact agreement
// with llama.cpp is checked elsewhere.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "anvil/model/causal_lm.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

const std::string kSmolLm2 = std::string(ANVIL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

int32_t row_argmax(const HostArray& logits, int64_t row) {
  const int64_t vocab = logits.shape[1];
  const auto begin = logits.values.begin() + row * vocab;
  return static_cast<int32_t>(std::max_element(begin, begin + vocab) - begin);
}

TEST(SmolLm2, GreedyContinuationIsFiniteAndStable) {
  if (!std::filesystem::exists(kSmolLm2)) GTEST_SKIP() << kSmolLm2 << " not present";
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const auto lm = model::load_causal_lm(ctx, kSmolLm2);
  const model::ModelConfig& config = lm->config();
  EXPECT_EQ(config.architecture, model::Architecture::Llama);
  EXPECT_EQ(config.num_layers, 30);
  EXPECT_EQ(config.hidden_size, 576);
  EXPECT_EQ(config.num_heads, 9);
  EXPECT_EQ(config.num_kv_heads, 3);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.vocab_size, 49152);
  EXPECT_TRUE(config.tied_embeddings);
  EXPECT_EQ(config.rope.layout, RopeLayout::Interleaved);
  EXPECT_EQ(config.rope.base, 100000.0F);

  // Prompt, then 6 greedy tokens decoded one at a time.
  std::vector<int32_t> tokens = {1, 9690, 42, 2};
  CacheRunner runner(ctx, config, 16, 4, rng);
  const int id = runner.add_sequence();
  HostArray step_logits = runner.step(*lm, {{id, tokens}});
  for (const double value : step_logits.values) ASSERT_TRUE(std::isfinite(value));
  std::vector<int32_t> generated;
  for (int i = 0; i < 6; ++i) {
    generated.push_back(row_argmax(step_logits, step_logits.shape[0] - 1));
    step_logits = runner.step(*lm, {{id, {generated.back()}}});
    for (const double value : step_logits.values) ASSERT_TRUE(std::isfinite(value));
  }

  // The whole sequence as one prefill predicts the same tokens at the same places.
  std::vector<int32_t> all = tokens;
  all.insert(all.end(), generated.begin(), generated.end() - 1);
  const HostArray prefill = prefill_logits(ctx, *lm, all, 16, rng);
  for (size_t i = 0; i < generated.size(); ++i) {
    EXPECT_EQ(row_argmax(prefill, static_cast<int64_t>(tokens.size() - 1 + i)), generated[i])
        << "generated token " << i;
  }
  std::string text;
  for (const int32_t token : generated) text += std::to_string(token) + " ";
  std::cout << "[ smollm2  ] greedy continuation of [1, 9690, 42, 2]: " << text << "\n";
}

}  // namespace
}  // namespace anvil::testing
