// ModelConfig from HF config.json and GGUF metadata: every field the loaders read, and
// errors that name the field.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "anvil/io/gguf.h"
#include "anvil/io/gguf_writer.h"
#include "anvil/ops/rope.h"
#include "model/tiny_model.h"

namespace anvil::testing {
namespace {

using model::Architecture;
using model::ModelConfig;
using Json = nlohmann::json;

// Runs `body`, expecting an anvil::Error whose message contains every one of `parts`.
template <typename Body>
void expect_error_mentions(Body body, const std::vector<std::string>& parts) {
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

Json llama_json() { return Json::parse(hf_config_json(llama_spec())); }

ModelConfig from_json(const Json& json) { return model::config_from_hf_json(json.dump(), "test/config.json"); }

TEST(ModelConfigHf, ReadsLlamaFields) {
  Json json = llama_json();
  json["rope_scaling"] = {{"rope_type", "llama3"},
                          {"factor", 32.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  json["head_dim"] = nullptr;  // HF writes null for "derive it"
  const ModelConfig config = from_json(json);
  EXPECT_EQ(config.architecture, Architecture::Llama);
  EXPECT_EQ(config.vocab_size, 97);
  EXPECT_EQ(config.hidden_size, 64);
  EXPECT_EQ(config.intermediate_size, 96);
  EXPECT_EQ(config.num_layers, 2);
  EXPECT_EQ(config.num_heads, 4);
  EXPECT_EQ(config.num_kv_heads, 2);
  EXPECT_EQ(config.head_dim, 16);
  EXPECT_EQ(config.max_position, 64);
  EXPECT_EQ(config.sliding_window, 0);
  EXPECT_FLOAT_EQ(config.norm_eps, 1e-5F);
  EXPECT_FALSE(config.tied_embeddings);
  EXPECT_EQ(config.rope.layout, RopeLayout::RotateHalf);
  EXPECT_EQ(config.rope.scaling, RopeScaling::Llama3);
  EXPECT_EQ(config.rope.factor, 32.0F);
  EXPECT_EQ(config.rope.original_max_position, 8192);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_id, 2);  // first of [2, 3]
}

TEST(ModelConfigHf, ReadsTransformers5RopeParameters) {
  Json json = llama_json();
  json.erase("rope_theta");
  json.erase("rope_scaling");
  json["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "linear"}, {"factor", 2.0}};
  const ModelConfig config = from_json(json);
  EXPECT_EQ(config.rope.base, 500000.0F);
  EXPECT_EQ(config.rope.scaling, RopeScaling::Linear);
  EXPECT_EQ(config.rope.factor, 2.0F);
  json["rope_parameters"] = {{"rope_theta", 1000.0}, {"rope_type", "default"}};
  EXPECT_EQ(from_json(json).rope.scaling, RopeScaling::None);
  EXPECT_EQ(from_json(json).rope.base, 1000.0F);
}

TEST(ModelConfigHf, ReadsEachArchitecturesSpecialFields) {
  Json mistral = Json::parse(hf_config_json(mistral_spec()));
  EXPECT_EQ(from_json(mistral).sliding_window, 5);
  mistral["sliding_window"] = nullptr;
  EXPECT_EQ(from_json(mistral).sliding_window, 0);
  const ModelConfig qwen2 = from_json(Json::parse(hf_config_json(qwen2_spec())));
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_EQ(qwen2.sliding_window, 0);  // use_sliding_window is false
  const ModelConfig qwen3 = from_json(Json::parse(hf_config_json(qwen3_spec())));
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 24);
  EXPECT_TRUE(qwen3.tied_embeddings);
  Json gpt2 = Json::parse(hf_config_json(gpt2_spec()));
  gpt2.erase("tie_word_embeddings");
  const ModelConfig config = from_json(gpt2);
  EXPECT_EQ(config.architecture, Architecture::Gpt2);
  EXPECT_EQ(config.intermediate_size, 256);  // n_inner null: 4 C
  EXPECT_TRUE(config.tied_embeddings);
  EXPECT_TRUE(config.learned_positions);
  EXPECT_EQ(config.norm, model::NormKind::LayerNorm);
  EXPECT_EQ(config.mlp, model::MlpKind::GeluTanh);
}

TEST(ModelConfigHf, ErrorsNameTheField) {
  Json missing = llama_json();
  missing.erase("hidden_size");
  expect_error_mentions([&] { from_json(missing); }, {"hidden_size", "test/config.json"});
  Json wrong_type = llama_json();
  wrong_type["num_hidden_layers"] = "2";
  expect_error_mentions([&] { from_json(wrong_type); }, {"num_hidden_layers"});
  Json bad_heads = llama_json();
  bad_heads["num_key_value_heads"] = 3;
  expect_error_mentions([&] { from_json(bad_heads); }, {"num_kv_heads"});
  Json unknown = llama_json();
  unknown["architectures"] = {"FalconForCausalLM"};
  expect_error_mentions([&] { from_json(unknown); }, {"FalconForCausalLM"});
  Json yarn = llama_json();
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error_mentions([&] { from_json(yarn); }, {"yarn"});
  Json llama3 = llama_json();
  llama3["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error_mentions([&] { from_json(llama3); }, {"original_max_position_embeddings"});
  Json act = llama_json();
  act["hidden_act"] = "relu";
  expect_error_mentions([&] { from_json(act); }, {"hidden_act"});
  Json zero = llama_json();
  zero["vocab_size"] = 0;
  expect_error_mentions([&] { from_json(zero); }, {"vocab_size"});
  expect_error_mentions([] { model::config_from_hf_json("{not json", "x.json"); }, {"x.json", "JSON"});
}

// A metadata-only GGUF of the spec (plus `edit` applied to its writer), read back.
template <typename Edit>
ModelConfig gguf_config(const TinySpec& spec, Edit edit, const TinyWeights& weights = {}) {
  const TempDir dir;
  write_gguf_checkpoint(dir.path("m.gguf"), spec, weights);
  const io::GgufFile original = io::GgufFile::open(dir.path("m.gguf"));
  io::GgufWriter writer;
  for (const auto& [key, value] : original.metadata()) writer.set(key, value);
  for (const io::GgufTensorInfo& info : original.tensors()) writer.add_tensor(info.name, original.tensor(info.name));
  edit(writer);
  writer.write(dir.path("edited.gguf"));
  return model::config_from_gguf(io::GgufFile::open(dir.path("edited.gguf")));
}

ModelConfig gguf_config(const TinySpec& spec, const TinyWeights& weights = {}) {
  return gguf_config(
      spec, [](io::GgufWriter&) {}, weights);
}

TEST(ModelConfigGguf, ReadsEachArchitecture) {
  Rng rng(test_seed());
  const ModelConfig llama = gguf_config(llama_spec(), random_weights(llama_spec(), rng));
  EXPECT_EQ(llama.architecture, Architecture::Llama);
  EXPECT_EQ(llama.num_layers, 2);
  EXPECT_EQ(llama.hidden_size, 64);
  EXPECT_EQ(llama.intermediate_size, 96);
  EXPECT_EQ(llama.num_kv_heads, 2);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_EQ(llama.vocab_size, 97);  // from tokenizer.ggml.tokens
  EXPECT_EQ(llama.max_position, 64);
  EXPECT_EQ(llama.rope.layout, RopeLayout::Interleaved);
  EXPECT_EQ(llama.rope.rot_dim, 0);
  EXPECT_EQ(llama.bos_token_id, 1);
  EXPECT_FALSE(llama.tied_embeddings);  // output.weight present
  const ModelConfig smol = gguf_config(smollm_spec(), random_weights(smollm_spec(), rng));
  EXPECT_TRUE(smol.tied_embeddings);
  EXPECT_EQ(smol.rope.base, 100000.0F);
  const ModelConfig mistral = gguf_config(mistral_spec(), random_weights(mistral_spec(), rng));
  EXPECT_EQ(mistral.sliding_window, 5);
  const ModelConfig qwen2 = gguf_config(qwen2_spec(), random_weights(qwen2_spec(), rng));
  EXPECT_EQ(qwen2.rope.layout, RopeLayout::RotateHalf);
  EXPECT_TRUE(qwen2.qkv_bias);
  const ModelConfig qwen3 = gguf_config(qwen3_spec(), random_weights(qwen3_spec(), rng));
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.head_dim, 24);
  const ModelConfig gpt2 = gguf_config(gpt2_spec(), random_weights(gpt2_spec(), rng));
  EXPECT_EQ(gpt2.architecture, Architecture::Gpt2);
  EXPECT_TRUE(gpt2.learned_positions);
  EXPECT_EQ(gpt2.intermediate_size, 256);
}

TEST(ModelConfigGguf, Llama3ScalingFromRopeFreqsMatchesTheHfConfig) {
  Rng rng(test_seed());
  for (const int64_t original : {16, 8192}) {
    TinySpec spec = llama3_spec();
    spec.head_dim = 64;
    spec.heads = 1;
    spec.kv_heads = 1;
    spec.llama3_original_max_position = original;
    const ModelConfig from_gguf = gguf_config(spec, random_weights(spec, rng));
    const ModelConfig from_hf = from_json(Json::parse(hf_config_json(spec)));
    ASSERT_EQ(from_gguf.rope.scaling, RopeScaling::Llama3);
    for (int64_t pair = 0; pair < 32; ++pair) {
      const double expected =
          std::pow(spec.rope_base, -2.0 * static_cast<double>(pair) / 64.0) / llama3_frequency_divisor(spec, pair);
      EXPECT_NEAR(rope_inv_frequency(from_gguf.rope, 64, pair), expected, 1e-5 * expected) << "pair " << pair;
      EXPECT_NEAR(rope_inv_frequency(from_hf.rope, 64, pair), expected, 1e-5 * expected) << "pair " << pair;
    }
  }
}

TEST(ModelConfigGguf, ErrorsNameTheKey) {
  using W = io::GgufWriter;
  expect_error_mentions([] { gguf_config(llama_spec(), [](W& w) { w.set("llama.block_count", W::string("2")); }); },
                        {"llama.block_count"});
  expect_error_mentions(
      [] { gguf_config(llama_spec(), [](W& w) { w.set("general.architecture", W::string("falcon")); }); }, {"falcon"});
  expect_error_mentions(
      [] { gguf_config(llama_spec(), [](W& w) { w.set("llama.rope.scaling.type", W::string("yarn")); }); },
      {"llama.rope.scaling.type", "yarn"});
  expect_error_mentions(
      [] { gguf_config(llama_spec(), [](W& w) { w.set("llama.attention.head_count_kv", W::u32(3)); }); },
      {"num_kv_heads", ".gguf"});
}

TEST(ModelConfigGguf, MissingKeyIsNamed) {
  const TempDir dir;
  io::GgufWriter writer;
  writer.set("general.architecture", io::GgufWriter::string("qwen2"));
  writer.set("qwen2.embedding_length", io::GgufWriter::u32(64));
  writer.write(dir.path("m.gguf"));
  expect_error_mentions([&] { model::config_from_gguf(io::GgufFile::open(dir.path("m.gguf"))); },
                        {"qwen2.block_count"});
}

TEST(ModelConfig, ValidateRejectsInconsistentValues) {
  ModelConfig config = from_json(llama_json());
  EXPECT_NO_THROW(config.validate());
  ModelConfig odd_rope = config;
  odd_rope.rope.rot_dim = 7;
  expect_error_mentions([&] { odd_rope.validate(); }, {"rot_dim"});
  ModelConfig bad_eps = config;
  bad_eps.norm_eps = 0.0F;
  expect_error_mentions([&] { bad_eps.validate(); }, {"norm_eps"});
  ModelConfig bad_bos = config;
  bad_bos.bos_token_id = 97;
  expect_error_mentions([&] { bad_bos.validate(); }, {"bos"});
  ModelConfig mixed = config;
  mixed.learned_positions = true;
  expect_error_mentions([&] { mixed.validate(); }, {"learned_positions"});
}

}  // namespace
}  // namespace anvil::testing
