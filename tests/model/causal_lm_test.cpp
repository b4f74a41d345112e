// Tiny random models of every supported architecture, written as HF safetensors and as
// GGUF (laid out as llama.cpp's converter does), loaded with load_causal_lm: logits must
// match the float64 reference forward, whatever the file format and KV block size.
#include <gtest/gtest.h>

#include "anvil/model/causal_lm.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

// f32 activations through 2 layers against float64: errors of a few f32 ulps per op,
// accumulated over sums of ~100 terms.
const Tolerance kF32Model{1e-4, 1e-5, 1.0};

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, Rng& rng) {
  std::vector<int32_t> tokens;
  for (const double id : random_ints({count}, rng, 0, vocab).values) tokens.push_back(static_cast<int32_t>(id));
  return tokens;
}

std::unique_ptr<model::CausalLM> load_tiny(Ctx& ctx, const TinySpec& spec, const TinyWeights& weights,
                                           const TempDir& dir, bool gguf) {
  if (gguf) {
    write_gguf_checkpoint(dir.path("tiny.gguf"), spec, weights);
    return model::load_causal_lm(ctx, dir.path("tiny.gguf"));
  }
  write_hf_checkpoint(dir.path("hf"), spec, weights);
  return model::load_causal_lm(ctx, dir.path("hf"));
}

const std::vector<TinySpec>& all_specs() {
  static const std::vector<TinySpec> kSpecs = {llama_spec(), llama3_spec(), smollm_spec(), mistral_spec(),
                                               qwen2_spec(), qwen3_spec(),  gpt2_spec()};
  return kSpecs;
}

TEST(CausalLm, LogitsMatchFloat64ReferenceForEveryArchitectureAndFormat) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const TinySpec& spec : all_specs()) {
    const TinyWeights weights = random_weights(spec, rng);
    const std::vector<int32_t> tokens = random_tokens(23, spec.vocab, rng);
    const HostArray reference = reference_logits(spec, weights, tokens);
    for (const bool gguf : {false, true}) {
      const TempDir dir;
      const auto lm = load_tiny(ctx, spec, weights, dir, gguf);
      for (const int64_t block_size : {16, 5}) {
        SCOPED_TRACE(spec_label(spec) + (gguf ? " from GGUF" : " from safetensors") + ", block size " +
                     std::to_string(block_size));
        expect_close(prefill_logits(ctx, *lm, tokens, block_size, rng), reference, kF32Model, "logits");
      }
    }
  }
}

}  // namespace
}  // namespace anvil::testing
