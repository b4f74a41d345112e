// Sampler against float64 references written here from the documented semantics:
// llama.cpp's repetition penalty, greedy == argmax, and each seeded draw equal to the
// reference chain top-k -> top-p -> min-p -> softmax(x / T) -> inverse CDF at
// Philox(seed, 0).uniform(draw) (sample_multinomial's documented stream).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "anvil/core/error.h"
#include "anvil/core/rng.h"
#include "anvil/infer/sampler.h"
#include "support/op_harness.h"

namespace anvil::infer {
namespace {

using testing::HostArray;
using testing::Rng;

const std::vector<int64_t> kVocabs = {1, 7, 33, 257, 1000};

std::vector<float> random_logits(Rng& rng, int64_t vocab, double scale = 4.0) {
  const HostArray values = testing::random_array({vocab}, rng, -scale, scale);
  return {values.values.begin(), values.values.end()};
}

Tensor row_tensor(const std::vector<float>& logits) {
  return Tensor::from_f32({1, static_cast<int64_t>(logits.size())}, logits);
}

// llama.cpp: each distinct recent token once; logit <= 0 multiplied, > 0 divided.
std::vector<float> reference_penalty(std::vector<float> logits, const std::vector<int32_t>& recent, double penalty) {
  std::set<int32_t> done;
  for (const int32_t token : recent) {
    if (token < 0 || token >= static_cast<int32_t>(logits.size()) || !done.insert(token).second) continue;
    const double x = logits[static_cast<size_t>(token)];
    logits[static_cast<size_t>(token)] = static_cast<float>(x <= 0.0 ? x * penalty : x / penalty);
  }
  return logits;
}

int32_t reference_argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Candidate set after top-k, top-p and min-p (each on the survivors of the previous one).
std::vector<bool> reference_kept(const std::vector<float>& logits, const SamplerParams& params) {
  const size_t vocab = logits.size();
  std::vector<bool> kept(vocab, true);
  std::vector<size_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < vocab) {
    const float threshold = logits[order[static_cast<size_t>(params.top_k) - 1]];
    for (size_t i = 0; i < vocab; ++i) kept[i] = logits[i] >= threshold;
  }
  const auto probabilities = [&]() {
    std::vector<double> p(vocab, 0.0);
    double total = 0.0;
    for (size_t i = 0; i < vocab; ++i) total += kept[i] ? std::exp(static_cast<double>(logits[i])) : 0.0;
    for (size_t i = 0; i < vocab; ++i) p[i] = kept[i] ? std::exp(static_cast<double>(logits[i])) / total : 0.0;
    return p;
  };
  if (params.top_p < 1.0F) {
    const std::vector<double> p = probabilities();
    double cumulative = 0.0;
    bool reached = false;
    for (const size_t i : order) {
      if (!kept[i]) continue;
      if (reached) kept[i] = false;
      cumulative += p[i];
      reached = reached || cumulative >= params.top_p;
    }
  }
  if (params.min_p > 0.0F) {
    const std::vector<double> p = probabilities();
    const double p_max = *std::max_element(p.begin(), p.end());
    for (size_t i = 0; i < vocab; ++i) kept[i] = kept[i] && p[i] >= params.min_p * p_max;
  }
  return kept;
}

// The token whose cumulative weight (index order) first exceeds u * total.
int32_t reference_draw(const std::vector<float>& logits, const std::vector<bool>& kept, double temperature, double u) {
  double max_value = -INFINITY;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (kept[i]) max_value = std::max(max_value, static_cast<double>(logits[i]));
  }
  std::vector<double> weights(logits.size(), 0.0);
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (kept[i]) weights[i] = std::exp((logits[i] - max_value) / temperature);
    total += weights[i];
  }
  double cumulative = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    cumulative += weights[i];
    if (weights[i] > 0.0 && cumulative > u * total) return static_cast<int32_t>(i);
  }
  return -1;
}

TEST(Sampler, RepetitionPenaltyMatchesLlamaCpp) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  for (const int64_t vocab : kVocabs) {
    const std::vector<float> logits = random_logits(rng, vocab);
    std::vector<int32_t> recent;
    for (int i = 0; i < 20; ++i) recent.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab + 2)) - 1);
    for (const float penalty : {1.0F, 1.1F, 1.7F, 0.8F}) {
      Tensor tensor = row_tensor(logits);
      apply_repetition_penalty(tensor, recent, penalty);
      const std::vector<float> got = tensor.to_f32_vector();
      EXPECT_EQ(got, reference_penalty(logits, recent, penalty)) << "vocab " << vocab << " penalty " << penalty;
    }
  }
  (void)ctx;
}

TEST(Sampler, GreedyIsArgmaxOfPenalisedLogitsOverTheLastN) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  for (const int64_t vocab : kVocabs) {
    for (const int64_t last_n : {int64_t{0}, int64_t{3}, int64_t{-1}}) {
      SamplerParams params;
      params.temperature = 0.0F;
      params.repeat_penalty = 3.0F;
      params.repeat_last_n = last_n;
      Sampler sampler(params);
      const std::vector<float> logits = random_logits(rng, vocab);
      // History ends with the argmax, so the penalty matters whenever last_n != 0.
      std::vector<int32_t> history;
      for (int i = 0; i < 6; ++i) history.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
      history.push_back(reference_argmax(logits));
      const size_t window = last_n < 0 ? history.size() : std::min(history.size(), static_cast<size_t>(last_n));
      const std::vector<int32_t> recent(history.end() - static_cast<long>(window), history.end());
      Tensor tensor = row_tensor(logits);
      EXPECT_EQ(sampler.sample(ctx, tensor, history), reference_argmax(reference_penalty(logits, recent, 3.0)))
          << "vocab " << vocab << " last_n " << last_n;
      EXPECT_EQ(sampler.draws(), 0U);  // greedy draws no random numbers
    }
  }
}

TEST(Sampler, SeededDrawsMatchTheReferenceChain) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const std::vector<SamplerParams> cases = {
      {1.0F, 0, 1.0F, 0.0F, 1.0F, 64, 0},     // plain softmax
      {0.7F, 40, 0.95F, 0.05F, 1.0F, 64, 0},  // llama.cpp defaults
      {1.3F, 5, 1.0F, 0.0F, 1.0F, 64, 0},     // top-k only
      {0.9F, 0, 0.5F, 0.0F, 1.0F, 64, 0},     // top-p only
      {1.1F, 0, 1.0F, 0.2F, 1.0F, 64, 0},     // min-p only
      {0.8F, 20, 0.8F, 0.1F, 1.25F, 8, 0},    // everything, with a penalty
  };
  for (const int64_t vocab : kVocabs) {
    for (SamplerParams params : cases) {
      params.seed = rng();
      Sampler sampler(params);
      std::vector<int32_t> history = {0};
      for (uint64_t draw = 0; draw < 12; ++draw) {
        const std::vector<float> logits = random_logits(rng, vocab, 3.0);
        const size_t window = std::min(history.size(), static_cast<size_t>(params.repeat_last_n));
        const std::vector<float> penalised = reference_penalty(
            logits, {history.end() - static_cast<long>(window), history.end()}, params.repeat_penalty);
        const double u = Philox(params.seed, 0).uniform(draw);
        const int32_t expected = reference_draw(penalised, reference_kept(penalised, params), params.temperature, u);
        Tensor tensor = row_tensor(logits);
        const int32_t got = sampler.sample(ctx, tensor, history);
        ASSERT_EQ(got, expected) << "vocab " << vocab << " draw " << draw << " temperature " << params.temperature
                                 << " top_k " << params.top_k << " top_p " << params.top_p << " min_p " << params.min_p;
        history.push_back(got);
      }
      EXPECT_EQ(sampler.draws(), 12U);
    }
  }
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const std::vector<float> logits = random_logits(rng, 1000, 0.5);  // flat: many candidates
  const auto run = [&](uint64_t seed) {
    SamplerParams params;
    params.temperature = 1.0F;
    params.top_k = 0;
    params.top_p = 1.0F;
    params.min_p = 0.0F;
    params.seed = seed;
    Sampler sampler(params);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 16; ++i) {
      Tensor tensor = row_tensor(logits);
      tokens.push_back(sampler.sample(ctx, tensor, tokens));
    }
    return tokens;
  };
  const uint64_t seed = rng();
  EXPECT_EQ(run(seed), run(seed));
  EXPECT_NE(run(seed), run(seed + 1));
  const std::vector<int32_t> tokens = run(seed);
  EXPECT_GT(std::set<int32_t>(tokens.begin(), tokens.end()).size(), 8U);  // draws are not stuck
}

TEST(Sampler, BadArgumentsThrow) {
  Ctx& ctx = testing::test_ctx();
  const auto make = [](auto edit) {
    SamplerParams params;
    edit(params);
    return Sampler(params);
  };
  EXPECT_THROW(make([](SamplerParams& p) { p.temperature = -0.1F; }), Error);
  EXPECT_THROW(make([](SamplerParams& p) { p.temperature = NAN; }), Error);
  EXPECT_THROW(make([](SamplerParams& p) { p.top_p = -1.0F; }), Error);
  EXPECT_THROW(make([](SamplerParams& p) { p.min_p = 1.5F; }), Error);
  EXPECT_THROW(make([](SamplerParams& p) { p.repeat_penalty = 0.0F; }), Error);
  EXPECT_THROW(make([](SamplerParams& p) { p.repeat_last_n = -2; }), Error);
  Sampler sampler{SamplerParams{}};
  Tensor two_rows = Tensor::from_f32({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  EXPECT_THROW(sampler.sample(ctx, two_rows, {}), Error);
  const float inf = INFINITY;
  Tensor no_candidate = Tensor::from_f32({1, 3}, std::vector<float>{-inf, -inf, NAN});
  EXPECT_THROW(sampler.sample(ctx, no_candidate, {}), Error);
}

}  // namespace
}  // namespace anvil::infer
