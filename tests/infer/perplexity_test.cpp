// evaluate_perplexity on a tiny random model against a float64 reference computed here from
// the tiny models' dense reference forward: chunking (whole and partial chunks), the scored
// positions, the mean, the standard error and the llama-perplexity variant.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/core/error.h"
#include "anvil/infer/perplexity.h"
#include "model/tiny_model.h"

namespace anvil::infer {
namespace {

using testing::HostArray;

struct Reference {
  double mean = 0.0;
  double error = 0.0;
  int64_t count = 0;
};

// Chunks of `context` (partial last one when `partial`), tokens from index `first` on scored.
Reference reference_perplexity(const testing::TinySpec& spec, const testing::TinyWeights& weights,
                               const std::vector<int32_t>& tokens, size_t context, size_t first, bool partial) {
  std::vector<double> nlls;
  for (size_t begin = 0; begin < tokens.size(); begin += context) {
    const size_t end = std::min(tokens.size(), begin + context);
    if (end - begin < context && !partial) break;
    const std::vector<int32_t> chunk(tokens.begin() + static_cast<long>(begin),
                                     tokens.begin() + static_cast<long>(end));
    const HostArray logits = testing::reference_logits(spec, weights, chunk);
    const int64_t vocab = logits.shape[1];
    for (size_t i = first; i < chunk.size(); ++i) {
      const double* row = logits.values.data() + static_cast<int64_t>(i - 1) * vocab;
      double max_value = row[0];
      for (int64_t v = 0; v < vocab; ++v) max_value = std::max(max_value, row[v]);
      double total = 0.0;
      for (int64_t v = 0; v < vocab; ++v) total += std::exp(row[v] - max_value);
      nlls.push_back(max_value + std::log(total) - row[chunk[i]]);
    }
  }
  Reference reference;
  reference.count = static_cast<int64_t>(nlls.size());
  double sum = 0.0;
  for (const double nll : nlls) sum += nll;
  const double n = static_cast<double>(nlls.size());
  reference.mean = sum / n;
  double squares = 0.0;
  for (const double nll : nlls) squares += (nll - reference.mean) * (nll - reference.mean);
  reference.error = std::exp(reference.mean) * std::sqrt(squares / n / (n - 1.0));
  return reference;
}

TEST(Perplexity, MatchesTheFloat64ReferenceForEveryChunking) {
  Ctx& ctx = testing::test_ctx();
  testing::Rng rng(testing::test_seed());
  testing::TinySpec spec = testing::smollm_spec();
  testing::TinyWeights weights = testing::random_weights(spec, rng);
  for (double& value : weights.at("model.embed_tokens.weight").values) value *= 0.15;
  const testing::TempDir dir;
  testing::write_gguf_checkpoint(dir.path("tiny.gguf"), spec, weights);
  const auto lm = model::load_causal_lm(ctx, dir.path("tiny.gguf"));
  std::vector<int32_t> tokens;
  for (const double id : testing::random_ints({45}, rng, 0, spec.vocab).values)
    tokens.push_back(static_cast<int32_t>(id));

  struct Case {
    int64_t context, first, batch;
    bool partial;
  };
  for (const Case& c : {Case{16, 1, 512, true}, Case{16, 1, 5, true}, Case{7, 1, 3, true}, Case{16, 9, 512, false},
                        Case{45, 1, 512, true}, Case{10, 6, 4, true}}) {
    SCOPED_TRACE("context " + std::to_string(c.context) + ", first " + std::to_string(c.first) + ", batch " +
                 std::to_string(c.batch) + (c.partial ? ", partial" : ""));
    PerplexityOptions options;
    options.context_tokens = c.context;
    options.first_scored = c.first;
    options.max_batch_tokens = c.batch;
    options.partial_last_chunk = c.partial;
    options.block_size = 4;
    const auto n = static_cast<int64_t>(tokens.size());
    const int64_t expected_chunks = n / c.context + (c.partial && n % c.context > c.first ? 1 : 0);
    int64_t progress_calls = 0;
    const PerplexityResult result =
        evaluate_perplexity(ctx, *lm, tokens, options, [&](const PerplexityResult& so_far, int64_t total) {
          EXPECT_EQ(so_far.chunks, ++progress_calls);
          EXPECT_EQ(total, expected_chunks);
        });
    const Reference reference = reference_perplexity(spec, weights, tokens, static_cast<size_t>(c.context),
                                                     static_cast<size_t>(c.first), c.partial);
    EXPECT_EQ(result.scored_tokens, reference.count);
    EXPECT_EQ(result.chunks, expected_chunks);
    EXPECT_EQ(progress_calls, expected_chunks);
    EXPECT_NEAR(result.mean_nll, reference.mean, 1e-4 * reference.mean);
    EXPECT_NEAR(result.perplexity, std::exp(reference.mean), 1e-4 * std::exp(reference.mean));
    EXPECT_NEAR(result.perplexity_error, reference.error, 1e-3 * reference.error);
  }
}

TEST(Perplexity, BadArgumentsThrow) {
  Ctx& ctx = testing::test_ctx();
  testing::Rng rng(testing::test_seed());
  const testing::TinySpec spec = testing::smollm_spec();
  const testing::TempDir dir;
  testing::write_gguf_checkpoint(dir.path("tiny.gguf"), spec, testing::random_weights(spec, rng));
  const auto lm = model::load_causal_lm(ctx, dir.path("tiny.gguf"));
  const std::vector<int32_t> tokens(20, 3);
  const auto evaluate = [&](auto edit, const std::vector<int32_t>& ids) {
    PerplexityOptions options;
    options.context_tokens = 8;
    edit(options);
    return evaluate_perplexity(ctx, *lm, ids, options);
  };
  EXPECT_THROW(evaluate([](PerplexityOptions& o) { o.context_tokens = 1; }, tokens), Error);
  EXPECT_THROW(evaluate([](PerplexityOptions& o) { o.context_tokens = 65; }, tokens), Error);  // > max_position
  EXPECT_THROW(evaluate([](PerplexityOptions& o) { o.first_scored = 0; }, tokens), Error);
  EXPECT_THROW(evaluate([](PerplexityOptions& o) { o.first_scored = 8; }, tokens), Error);
  EXPECT_THROW(evaluate([](PerplexityOptions&) {}, std::vector<int32_t>{3}), Error);
  EXPECT_THROW(evaluate([](PerplexityOptions& o) { o.partial_last_chunk = false; }, std::vector<int32_t>(7, 3)), Error);
  EXPECT_THROW(evaluate([](PerplexityOptions&) {}, std::vector<int32_t>{3, 4, 97}), Error);  // outside the vocabulary
}

}  // namespace
}  // namespace anvil::infer
