// Export in Hugging Face layout: load_causal_lm reads it back and its logits equal the
// training model's; the byte tokenizer.json round-trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "anvil/model/causal_lm.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/train/gguf_export.h"
#include "anvil/train/hf_export.h"
#include "anvil/train/text_sampler.h"
#include "model/tiny_runner.h"
#include "train/train_reference.h"

namespace anvil::testing {
namespace {

using model::Architecture;

TEST(TrainExport, LoadCausalLmReproducesTrainingLogits) {
  Rng rng(test_seed());
  for (const auto& [architecture, tied] : {std::pair{Architecture::Llama, false}, std::pair{Architecture::Llama, true},
                                           std::pair{Architecture::Gpt2, true}, std::pair{Architecture::Gpt2, false}}) {
    SCOPED_TRACE(std::string(model::architecture_name(architecture)) + (tied ? " tied" : " untied"));
    model::ModelConfig config = tiny_train_config(architecture, tied);
    config.eos_token_id = 10;
    train::TrainModel model(test_ctx(), config);
    fill_random_params(model, rng);
    const int64_t batch = 2, seq = 7;
    std::vector<int32_t> tokens;
    for (int64_t i = 0; i < batch * seq; ++i) tokens.push_back(static_cast<int32_t>(rng() % 11));
    const Tensor token_tensor = Tensor::from_i32({batch, seq}, tokens);
    model.forward_train(token_tensor, token_tensor);

    TempDir dir;
    train::export_hf(model, dir.path("model"), "bytes");
    const std::unique_ptr<model::CausalLM> loaded = model::load_causal_lm(test_ctx(), dir.path("model"));
    const model::ModelConfig& got = loaded->config();
    EXPECT_EQ(got.architecture, config.architecture);
    EXPECT_EQ(got.tied_embeddings, config.tied_embeddings);
    EXPECT_EQ(got.num_kv_heads, config.num_kv_heads);
    EXPECT_EQ(got.intermediate_size, config.intermediate_size);
    EXPECT_EQ(got.eos_token_id, 10);
    for (int64_t b = 0; b < batch; ++b) {
      const std::vector<int32_t> row(tokens.begin() + b * seq, tokens.begin() + (b + 1) * seq);
      const HostArray served = prefill_logits(test_ctx(), *loaded, row, 4, rng);
      const HostArray trained = to_host(test_ctx(), model.logits().slice(0, b * seq, (b + 1) * seq));
      expect_close(served, trained, Tolerance{1e-5, 1e-6}, "logits of sequence " + std::to_string(b));
    }
  }
}

TEST(TrainExport, GgufRunsWithTheTrainingLogits) {
  Rng rng(test_seed());
  for (const auto& [architecture, tied] :
       {std::pair{Architecture::Llama, false}, std::pair{Architecture::Gpt2, true}}) {
    SCOPED_TRACE(model::architecture_name(architecture));
    model::ModelConfig config = tiny_train_config(architecture, tied);
    config.vocab_size = 320;  // room for the byte tokenizer
    train::TrainModel model(test_ctx(), config);
    fill_random_params(model, rng);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 8; ++i) tokens.push_back(static_cast<int32_t>(rng() % 320));
    const Tensor token_tensor = Tensor::from_i32({1, 8}, tokens);
    model.forward_train(token_tensor, token_tensor);
    TempDir dir;
    train::export_gguf(model, dir.path("model.gguf"), "bytes");
    const std::unique_ptr<model::CausalLM> loaded = model::load_causal_lm(test_ctx(), dir.path("model.gguf"));
    EXPECT_EQ(loaded->config().vocab_size, 320);
    const HostArray served = prefill_logits(test_ctx(), *loaded, tokens, 4, rng);
    expect_close(served, to_host(test_ctx(), model.logits()), Tolerance{1e-5, 1e-6}, "GGUF logits");
    const tokenizer::BpeTokenizer bpe = tokenizer::BpeTokenizer::from_gguf_file(dir.path("model.gguf"));
    const std::string text = "To be, or not to be\n\xe2\x80\x94 that";
    const std::vector<int32_t> ids = bpe.encode(text);
    ASSERT_EQ(ids.size(), text.size());
    for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], static_cast<uint8_t>(text[i]));
    EXPECT_EQ(bpe.eos_id(), std::optional<int32_t>(256));
  }
}

TEST(TrainExport, GreedySamplesThroughTheServingPathFollowTheTrainingLogits) {
  Rng rng(test_seed());
  for (const Architecture architecture : {Architecture::Llama, Architecture::Gpt2}) {
    SCOPED_TRACE(model::architecture_name(architecture));
    const model::ModelConfig config = tiny_train_config(architecture, true);
    train::TrainModel model(test_ctx(), config);
    fill_random_params(model, rng);
    TempDir dir;
    train::export_hf(model, dir.path("model"));
    const std::vector<int32_t> prompt = {3, 1, 4, 1};
    const std::vector<int32_t> sampled = train::sample_continuation(test_ctx(), dir.path("model"), prompt, 4, 0.0F, 1);
    ASSERT_EQ(sampled.size(), 4U);
    std::vector<int32_t> sequence = prompt;
    for (const int32_t token : sampled) {
      const auto t = static_cast<int64_t>(sequence.size());
      const Tensor ids = Tensor::from_i32({1, t}, sequence);
      model.forward_train(ids, ids);
      const std::vector<double> last = to_host(test_ctx(), model.logits().slice(0, t - 1, t)).values;
      const auto best = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      EXPECT_EQ(token, best) << "after " << t << " tokens";
      sequence.push_back(token);
    }
    // GPT-2 stops at its 9 learned positions.
    if (architecture == Architecture::Gpt2) {
      EXPECT_EQ(train::sample_continuation(test_ctx(), dir.path("model"), prompt, 20, 0.7F, 2).size(),
                6U);  // positions 0..8 fed, 6 drawn
    }
  }
}

TEST(TrainExport, ByteTokenizerJsonRoundTripsBytes) {
  TempDir dir;
  std::filesystem::create_directories(dir.path("t"));
  { std::ofstream(dir.path("t/tokenizer.json")) << train::byte_tokenizer_json(); }
  const tokenizer::BpeTokenizer bpe = tokenizer::BpeTokenizer::from_hf_json_file(dir.path("t/tokenizer.json"));
  const std::string text = "Hello, w\xc3\xb6rld!\n\t\x01\xff";
  const std::vector<int32_t> ids = bpe.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], static_cast<uint8_t>(text[i]));
  EXPECT_EQ(bpe.decode(ids), text);
  EXPECT_EQ(bpe.find_token("<|endoftext|>"), std::optional<int32_t>(256));
}

}  // namespace
}  // namespace anvil::testing
