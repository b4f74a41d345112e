// Bad or missing files, weights and configs, and bad batches, give an anvil::Error that
// names the file, tensor or field, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "anvil/io/safetensors.h"
#include "anvil/model/causal_lm.h"
#include "model/tiny_model.h"
#include "model/tiny_runner.h"

namespace anvil::testing {
namespace {

void expect_error_mentions(const std::function<void()>& body, const std::vector<std::string>& parts) {
  try {
    body();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << parts.front() << "'";
  } catch (const Error& error) {
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos)
          << "error '" << error.what() << "' does not mention '" << part << "'";
    }
  }
}

// Loads the spec's weights after `edit` from an HF folder and from GGUF.
void expect_hf_load_error(const TinySpec& spec, const std::function<void(TinyWeights&)>& edit,
                          const std::vector<std::string>& parts) {
  Rng rng(7);
  TinyWeights weights = random_weights(spec, rng);
  edit(weights);
  const TempDir dir;
  write_hf_checkpoint(dir.path("hf"), spec, weights);
  expect_error_mentions([&] { (void)model::load_causal_lm(test_ctx(), dir.path("hf")); }, parts);
}

TEST(ModelLoadErrors, MissingOrMisshapenWeightsAreNamed) {
  expect_hf_load_error(llama_spec(), [](TinyWeights& w) { w.erase("model.layers.1.mlp.up_proj.weight"); },
                       {"model.layers.1.mlp.up_proj.weight", "missing", "model.safetensors"});
  expect_hf_load_error(llama_spec(),
                       [](TinyWeights& w) {
                         w["model.layers.0.self_attn.k_proj.weight"].shape = {64, 32};
                       },
                       {"model.layers.0.self_attn.k_proj.weight", "(64, 32)", "expected (32, 64)"});
  expect_hf_load_error(llama_spec(), [](TinyWeights& w) { w.erase("lm_head.weight"); }, {"lm_head.weight"});
  expect_hf_load_error(qwen2_spec(), [](TinyWeights& w) { w.erase("model.layers.1.self_attn.v_proj.bias"); },
                       {"model.layers.1.self_attn.v_proj.bias"});
  expect_hf_load_error(gpt2_spec(), [](TinyWeights& w) { w.erase("transformer.h.0.attn.c_attn.bias"); },
                       {"transformer.h.0.attn.c_attn.bias"});
}

TEST(ModelLoadErrors, GgufMissingWeightIsNamed) {
  Rng rng(7);
  const TinySpec spec = qwen3_spec();
  TinyWeights weights = random_weights(spec, rng);
  weights.erase("model.layers.1.self_attn.k_norm.weight");
  const TempDir dir;
  write_gguf_checkpoint(dir.path("m.gguf"), spec, weights);
  expect_error_mentions([&] { (void)model::load_causal_lm(test_ctx(), dir.path("m.gguf")); },
                        {"blk.1.attn_k_norm.weight", "m.gguf"});
}

TEST(ModelLoadErrors, WrongWeightDtypeIsNamed) {
  const TinySpec spec = llama_spec();
  Rng rng(7);
  const TinyWeights weights = random_weights(spec, rng);
  const TempDir dir;
  write_hf_checkpoint(dir.path("hf"), spec, weights);
  // Rewrite one weight as i32.
  const io::SafetensorsFile file = io::SafetensorsFile::open(dir.path("hf/model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const io::SafetensorsEntry& entry : file.entries()) {
    const bool victim = entry.name == "model.layers.0.mlp.gate_proj.weight";
    tensors.emplace_back(entry.name, victim ? Tensor::zeros(entry.shape, DType::I32) : file.tensor(entry.name).clone());
  }
  io::write_safetensors(dir.path("hf/model.safetensors"), tensors);
  expect_error_mentions([&] { (void)model::load_causal_lm(test_ctx(), dir.path("hf")); },
                        {"model.layers.0.mlp.gate_proj.weight", "i32"});
}

TEST(ModelLoadErrors, BadPathsAndConfigs) {
  Ctx& ctx = test_ctx();
  const TempDir dir;
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path("nothing.gguf")); }, {"does not exist"});
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path()); }, {"config.json"});
  std::ofstream(dir.path("config.json")) << hf_config_json(llama_spec());
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path()); }, {"model.safetensors"});
  std::ofstream(dir.path("config.json")) << R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})";
  std::ofstream(dir.path("model.safetensors")) << "garbage";
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path()); }, {"hidden_size", "config.json"});
  std::ofstream(dir.path("model.safetensors.index.json")) << R"({"weight_map": {"a": "../../etc/passwd"}})";
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path()); }, {"plain file name"});
  std::ofstream(dir.path("junk.bin")) << "not a model";
  expect_error_mentions([&] { (void)model::load_causal_lm(ctx, dir.path("junk.bin")); }, {"hidden_size"});
}

TEST(ModelForwardErrors, BadBatchesAndCachesAreNamed) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const TinySpec& spec : {llama_spec(), gpt2_spec()}) {
    const TempDir dir;
    write_gguf_checkpoint(dir.path("m.gguf"), spec, random_weights(spec, rng));
    const auto lm = model::load_causal_lm(ctx, dir.path("m.gguf"));
    CacheRunner runner(ctx, lm->config(), 4, 6, rng);
    const int id = runner.add_sequence();
    model::Batch batch = runner.make_batch({{id, {1, 2, 3}}});
    EXPECT_NO_THROW((void)lm->forward(ctx, batch, runner.cache()));
    model::Batch bad_token = batch;
    bad_token.tokens[1] = static_cast<int32_t>(spec.vocab);
    expect_error_mentions([&] { (void)lm->forward(ctx, bad_token, runner.cache()); }, {"token id 97"});
    model::Batch bad_block = batch;
    bad_block.sequences[0].block_table[0] = 6;
    expect_error_mentions([&] { (void)lm->forward(ctx, bad_block, runner.cache()); }, {"block 6"});
    model::Batch bad_positions = batch;
    bad_positions.positions[2] = 7;
    expect_error_mentions([&] { (void)lm->forward(ctx, bad_positions, runner.cache()); }, {"position"});
    model::KvCacheShape wrong = runner.cache().shape();
    wrong.num_kv_heads += 1;
    model::PagedKvCache wrong_cache(ctx, wrong, Device::cpu());
    expect_error_mentions([&] { (void)lm->forward(ctx, batch, wrong_cache); }, {"kv cache"});
  }
}

TEST(ModelForwardErrors, Gpt2PositionsPastTheLearnedTable) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  TinySpec spec = gpt2_spec();
  spec.max_position = 4;
  const TempDir dir;
  write_gguf_checkpoint(dir.path("m.gguf"), spec, random_weights(spec, rng));
  const auto lm = model::load_causal_lm(ctx, dir.path("m.gguf"));
  CacheRunner runner(ctx, lm->config(), 4, 4, rng);
  const int id = runner.add_sequence();
  EXPECT_NO_THROW(runner.step(*lm, {{id, {1, 2, 3, 4}}}));
  expect_error_mentions([&] { runner.step(*lm, {{id, {5}}}); }, {"learned positions"});
}

}  // namespace
}  // namespace anvil::testing
