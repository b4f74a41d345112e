// The tiny models made by Hugging Face transformers (tests/fixtures/models, see its README):
// our logits must match the ones transformers computed, loading the folders directly and
// after converting them to GGUF the way llama.cpp's converter does.
#include <gtest/gtest.h>

#include "anvil/io/safetensors.h"
#include "anvil/model/causal_lm.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

const std::string kFixtures = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/models/";
const std::vector<std::string> kModels = {"llama2", "llama3", "smollm2", "mistral", "qwen2", "qwen3", "gpt2"};

// Both sides compute in f32 (torch eager on the CPU and ours) with different summation
// orders: agreement to a few f32 ulps of the logits' scale, accumulated over 2 layers.
const Tolerance kTorchF32{1e-4, 1e-5, 1.0};

struct Prompt {
  std::vector<int32_t> tokens;
  HostArray logits;  // (T, V) from transformers
};

std::vector<Prompt> expected_prompts(const std::string& model) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(kFixtures + model + "/expected.safetensors");
  std::vector<Prompt> prompts;
  for (int i = 0; file.find("input_ids_" + std::to_string(i)) != nullptr; ++i) {
    Prompt prompt;
    for (const double id : file.tensor("input_ids_" + std::to_string(i)).to_f64_vector()) {
      prompt.tokens.push_back(static_cast<int32_t>(id));
    }
    const Tensor logits = file.tensor("logits_" + std::to_string(i));
    prompt.logits = {logits.shape(), logits.to_f64_vector()};
    prompts.push_back(std::move(prompt));
  }
  return prompts;
}

// The fixture's weights by HF name, for the GGUF writer.
TinyWeights fixture_weights(const std::string& model) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(kFixtures + model + "/model.safetensors");
  TinyWeights weights;
  for (const io::SafetensorsEntry& entry : file.entries()) {
    weights[entry.name] = {entry.shape, file.tensor(entry.name).to_f64_vector()};
  }
  return weights;
}

// The writer's spec for a model whose config we read from config.json.
TinySpec spec_for(const model::ModelConfig& config) {
  TinySpec spec;
  spec.architecture = config.architecture;
  spec.vocab = config.vocab_size;
  spec.hidden = config.hidden_size;
  spec.intermediate = config.intermediate_size;
  spec.layers = config.num_layers;
  spec.heads = config.num_heads;
  spec.kv_heads = config.num_kv_heads;
  spec.head_dim = config.head_dim;
  spec.max_position = config.max_position;
  spec.sliding_window = config.sliding_window;
  spec.tied = config.tied_embeddings;
  spec.rope_base = config.rope.base;
  spec.norm_eps = config.norm_eps;
  if (config.rope.scaling == RopeScaling::Llama3) {
    spec.llama3_factor = config.rope.factor;
    spec.llama3_low_freq_factor = config.rope.low_freq_factor;
    spec.llama3_high_freq_factor = config.rope.high_freq_factor;
    spec.llama3_original_max_position = config.rope.original_max_position;
  }
  return spec;
}

void expect_prompts_match(Ctx& ctx, model::CausalLM& lm, const std::vector<Prompt>& prompts, Rng& rng) {
  for (const Prompt& prompt : prompts) {
    SCOPED_TRACE("prompt of " + std::to_string(prompt.tokens.size()) + " tokens");
    for (const int64_t block_size : {16, 5}) {
      expect_close(prefill_logits(ctx, lm, prompt.tokens, block_size, rng), prompt.logits, kTorchF32, "logits");
    }
  }
}

TEST(HfFixtures, FoldersMatchTransformersLogits) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const std::string& name : kModels) {
    SCOPED_TRACE(name);
    const auto lm = model::load_causal_lm(ctx, kFixtures + name);
    expect_prompts_match(ctx, *lm, expected_prompts(name), rng);
  }
}

TEST(HfFixtures, SafetensorsFileWithConfigBesideIt) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const auto lm = model::load_causal_lm(ctx, kFixtures + "qwen3/model.safetensors");
  expect_prompts_match(ctx, *lm, expected_prompts("qwen3"), rng);
}

TEST(HfFixtures, ConvertedToGgufMatchTransformersLogits) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const std::string& name : kModels) {
    SCOPED_TRACE(name);
    const TinySpec spec = spec_for(model::load_causal_lm(ctx, kFixtures + name)->config());
    const TempDir dir;
    write_gguf_checkpoint(dir.path("model.gguf"), spec, fixture_weights(name));
    const auto lm = model::load_causal_lm(ctx, dir.path("model.gguf"));
    expect_prompts_match(ctx, *lm, expected_prompts(name), rng);
  }
}

}  // namespace
}  // namespace anvil::testing
