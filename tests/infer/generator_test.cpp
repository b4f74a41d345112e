// Generator on a tiny random SmolLM2-like model with the small Qwen2 tokenizer fixture
// (1003 tokens, ChatML specials): generate() must equal a step-by-step loop over forward()
// (the model tests' CacheRunner) with the same sampler, whatever the prefill chunking and
// prefix reuse; stop tokens, stop strings, max tokens, a full context and cancellation end
// it as documented; the streamed text is exactly the result's text.
#include <gtest/gtest.h>

#include <algorithm>

#include "anvil/core/error.h"
#include "anvil/infer/generator.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/tokenizer/streaming_decoder.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::infer {
namespace {

using testing::HostArray;
using testing::Rng;

const std::string kTokenizer = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/tokenizer/small_qwen2.gguf";

struct TinyLm {
  testing::TempDir dir;
  std::unique_ptr<model::CausalLM> model;
  tokenizer::BpeTokenizer tokenizer = tokenizer::BpeTokenizer::from_gguf_file(kTokenizer);
};

// `extra_rows`: model vocabulary rows past the tokenizer's (padding, as training pads).
std::unique_ptr<TinyLm> make_tiny_lm(Rng& rng, int64_t extra_rows = 0) {
  auto lm = std::make_unique<TinyLm>();
  testing::TinySpec spec = testing::smollm_spec();
  spec.vocab = lm->tokenizer.vocab_size() + extra_rows;
  testing::TinyWeights weights = testing::random_weights(spec, rng);
  // Smaller tied embeddings flatten the logits, so sampling has real choices to make.
  for (double& value : weights.at("model.embed_tokens.weight").values) value *= 0.15;
  testing::write_gguf_checkpoint(lm->dir.path("tiny.gguf"), spec, weights);
  lm->model = model::load_causal_lm(testing::test_ctx(), lm->dir.path("tiny.gguf"));
  return lm;
}

std::vector<int32_t> random_prompt(Rng& rng, int64_t count, int64_t vocab) {
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < count; ++i) tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
  return tokens;
}

SamplerParams sampled(uint64_t seed) {
  SamplerParams params;
  params.temperature = 1.5F;
  params.top_k = 0;
  params.top_p = 1.0F;
  params.min_p = 0.0F;
  params.repeat_penalty = 1.3F;
  params.seed = seed;
  return params;
}

// The text of `tokens` as a stream shows it: ill-formed UTF-8 replaced by U+FFFD.
std::string streamed_text(const tokenizer::Tokenizer& tokenizer, const std::vector<int32_t>& tokens) {
  tokenizer::StreamingDecoder decoder(tokenizer);
  std::string text;
  for (const int32_t token : tokens) text += decoder.push(token);
  return text + decoder.finish();
}

SamplerParams greedy() {
  SamplerParams params;
  params.temperature = 0.0F;
  return params;
}

// The reference: prefill, then sample and run one token at a time through forward().
std::vector<int32_t> step_by_step(model::CausalLM& lm, const std::vector<int32_t>& prompt, const SamplerParams& params,
                                  int64_t max_tokens, Rng& rng) {
  Ctx& ctx = testing::test_ctx();
  testing::CacheRunner runner(ctx, lm.config(), 4, 64, rng);
  const int sequence = runner.add_sequence();
  HostArray logits = runner.step(lm, {{sequence, prompt}});
  Sampler sampler(params);
  std::vector<int32_t> history = prompt;
  std::vector<int32_t> generated;
  for (int64_t i = 0; i < max_tokens; ++i) {
    const int64_t vocab = logits.shape[1];
    const auto last = logits.values.begin() + (logits.shape[0] - 1) * vocab;
    Tensor row = Tensor::from_f32({1, vocab}, std::vector<float>(last, last + vocab));
    generated.push_back(sampler.sample(ctx, row, history));
    history.push_back(generated.back());
    logits = runner.step(lm, {{sequence, {generated.back()}}});
  }
  return generated;
}

TEST(Generator, EqualsStepByStepForwardForAnyChunkingAndPrefixReuse) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng);
  const std::vector<int32_t> prompt = random_prompt(rng, 11, lm->tokenizer.vocab_size());
  for (const SamplerParams& params : {greedy(), sampled(rng())}) {
    const std::vector<int32_t> reference = step_by_step(*lm->model, prompt, params, 9, rng);
    GenerationParams generation;
    generation.max_tokens = 9;
    generation.sampler = params;
    for (const int64_t chunk : {int64_t{512}, int64_t{3}, int64_t{1}}) {
      GeneratorOptions options;
      options.context_tokens = 40;
      options.block_size = 5;
      options.max_batch_tokens = chunk;
      Generator generator(ctx, *lm->model, lm->tokenizer, options);
      const GenerationResult result = generator.generate(prompt, generation);
      EXPECT_EQ(result.tokens, reference) << "prefill chunk " << chunk << ", temperature " << params.temperature;
      EXPECT_EQ(result.stop_reason, StopReason::MaxTokens);
      EXPECT_EQ(result.stats.prefill_tokens, 11);
      EXPECT_EQ(result.stats.generated_tokens, 9);
      // The sequence's K/V stay cached: prompt + all but the last sampled token.
      EXPECT_EQ(generator.cached_tokens().size(), 19U);

      // A longer prompt sharing the first 15 tokens reuses their K/V and equals a fresh run.
      std::vector<int32_t> longer(prompt);
      longer.insert(longer.end(), result.tokens.begin(), result.tokens.begin() + 4);
      longer.push_back(7);
      const GenerationResult continued = generator.generate(longer, generation);
      EXPECT_EQ(continued.stats.reused_tokens, 15);
      EXPECT_EQ(continued.stats.prefill_tokens, 1);
      EXPECT_EQ(continued.tokens, step_by_step(*lm->model, longer, params, 9, rng)) << "prefill chunk " << chunk;
      EXPECT_EQ(generator.blocks().num_free_blocks(), 8 - 5);  // 24 cached tokens in blocks of 5
    }
  }
}

TEST(Generator, StopsAtMaxTokensStopTokenAndFullContext) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng);
  const std::vector<int32_t> prompt = random_prompt(rng, 6, lm->tokenizer.vocab_size());
  GeneratorOptions options;
  options.context_tokens = 16;
  Generator generator(ctx, *lm->model, lm->tokenizer, options);
  GenerationParams params;
  params.sampler = sampled(rng());
  params.max_tokens = 0;
  EXPECT_TRUE(generator.generate(prompt, params).tokens.empty());
  params.max_tokens = 8;
  const GenerationResult full = generator.generate(prompt, params);
  ASSERT_EQ(full.tokens.size(), 8U);
  EXPECT_EQ(full.stop_reason, StopReason::MaxTokens);

  // The first occurrence of the 5th token stops it; that token is not streamed.
  params.stop_tokens = {full.tokens[4]};
  const GenerationResult stopped = generator.generate(prompt, params);
  const auto first = std::find(full.tokens.begin(), full.tokens.end(), full.tokens[4]);
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(full.tokens.begin(), first + 1));
  EXPECT_EQ(stopped.stop_reason, StopReason::StopToken);
  EXPECT_EQ(stopped.text, streamed_text(lm->tokenizer, std::vector<int32_t>(full.tokens.begin(), first)));

  // 16 slots: the prompt's 6, then room to run 10 sampled tokens; the 11th ends it.
  params.stop_tokens.clear();
  params.max_tokens = 100;
  const GenerationResult context_full = generator.generate(prompt, params);
  EXPECT_EQ(context_full.stop_reason, StopReason::ContextFull);
  EXPECT_EQ(context_full.tokens.size(), 11U);
  EXPECT_EQ(generator.cached_tokens().size(), 16U);
}

TEST(Generator, StopStringsEndTheStreamWithoutLeakingAPartialMatch) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng);
  const std::vector<int32_t> prompt = random_prompt(rng, 5, lm->tokenizer.vocab_size());
  Generator generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{64, 16, 512, DType::F32});
  GenerationParams params;
  params.sampler = sampled(rng());
  params.max_tokens = 24;
  const GenerationResult full = generator.generate(prompt, params);
  ASSERT_EQ(full.text, streamed_text(lm->tokenizer, full.tokens));  // no stop token was configured
  ASSERT_GE(full.text.size(), 12U) << "the random model generated too little text";

  // Stop strings cut from the middle of the text: the stream ends right before the first one.
  for (const size_t begin : {size_t{3}, full.text.size() / 2, full.text.size() - 4}) {
    const std::string stop = full.text.substr(begin, 4);
    params.stop_strings = {"never in the text \x01", stop};
    std::string streamed;
    const GenerationResult result = generator.generate(prompt, params, [&](const TokenEvent& event) {
      streamed += event.text;
      return true;
    });
    const size_t at = full.text.find(stop);
    EXPECT_EQ(result.stop_reason, StopReason::StopString);
    EXPECT_EQ(result.stop_string, stop);
    EXPECT_EQ(result.text, full.text.substr(0, at));
    EXPECT_EQ(streamed, result.text);
    EXPECT_LE(result.tokens.size(), full.tokens.size());
  }
}

TEST(Generator, StreamsEveryTokenAndCanBeCancelled) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng);
  const std::vector<int32_t> prompt = random_prompt(rng, 4, lm->tokenizer.vocab_size());
  Generator generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{64, 16, 512, DType::F32});
  GenerationParams params;
  params.sampler = sampled(rng());
  params.max_tokens = 10;
  std::vector<int32_t> events;
  std::string streamed;
  const GenerationResult result = generator.generate(prompt, params, [&](const TokenEvent& event) {
    events.push_back(event.token);
    streamed += event.text;
    return true;
  });
  if (!events.empty() && events.back() == -1) events.pop_back();  // the end-of-stream flush
  EXPECT_EQ(events, result.tokens);
  EXPECT_EQ(streamed, result.text);
  EXPECT_EQ(result.text, streamed_text(lm->tokenizer, result.tokens));

  int calls = 0;
  const GenerationResult cancelled = generator.generate(prompt, params, [&](const TokenEvent&) { return ++calls < 3; });
  EXPECT_EQ(cancelled.stop_reason, StopReason::Cancelled);
  EXPECT_EQ(cancelled.tokens, std::vector<int32_t>(result.tokens.begin(), result.tokens.begin() + 3));
}

// A model whose vocabulary is padded past the tokenizer's may sample a padding id (an
// untrained or random model does): generation goes on, the id is returned, its text is empty.
TEST(Generator, PaddedVocabularyIdsHaveNoText) {
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng, 4000);
  Generator generator(testing::test_ctx(), *lm->model, lm->tokenizer, GeneratorOptions{64, 4, 16, DType::F32});
  GenerationParams params;
  params.max_tokens = 40;
  params.sampler = sampled(7);
  const GenerationResult result = generator.generate(random_prompt(rng, 5, lm->tokenizer.vocab_size()), params);
  std::vector<int32_t> in_vocabulary;
  int padded = 0;
  for (const int32_t token : result.tokens) {
    if (token < lm->tokenizer.vocab_size()) {
      in_vocabulary.push_back(token);
    } else {
      ++padded;
    }
  }
  EXPECT_GT(padded, 0) << "80% of the rows are padding: some must be sampled";
  EXPECT_EQ(result.text, streamed_text(lm->tokenizer, in_vocabulary));
}

TEST(Generator, BadArgumentsThrow) {
  Ctx& ctx = testing::test_ctx();
  Rng rng(testing::test_seed());
  const auto lm = make_tiny_lm(rng);
  EXPECT_THROW(Generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{65, 16, 512, DType::F32}), Error);
  EXPECT_THROW(Generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{32, 0, 512, DType::F32}), Error);
  EXPECT_THROW(Generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{32, 16, 0, DType::F32}), Error);
  Generator generator(ctx, *lm->model, lm->tokenizer, GeneratorOptions{8, 4, 512, DType::F32});
  GenerationParams params;
  EXPECT_THROW(generator.generate({}, params), Error);
  EXPECT_THROW(generator.generate(std::vector<int32_t>(9, 1), params), Error);
  EXPECT_THROW(generator.generate(std::vector<int32_t>{1, 5000}, params), Error);
  params.max_tokens = -1;
  EXPECT_THROW(generator.generate(std::vector<int32_t>{1}, params), Error);
  params.max_tokens = 4;
  params.sampler.temperature = -1.0F;
  EXPECT_THROW(generator.generate(std::vector<int32_t>{1}, params), Error);
}

}  // namespace
}  // namespace anvil::infer
