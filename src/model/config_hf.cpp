// ModelConfig from a Hugging Face config.json.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "anvil/core/error.h"
#include "anvil/model/model_config.h"

namespace anvil::model {

namespace {

using Json = nlohmann::json;

// Typed field access on one JSON object; errors name the source and the field. JSON null
// counts as absent (HF writes "head_dim": null and the like).
class Fields {
 public:
  Fields(const Json& object, std::string source) : object_(object), source_(std::move(source)) {}

  [[nodiscard]] bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }
  [[nodiscard]] const Json& at(const char* key) const { return object_.at(key); }
  [[nodiscard]] int64_t integer(const char* key) const {
    ANVIL_CHECK(has(key), source_, ": field '", key, "' is missing");
    ANVIL_CHECK(at(key).is_number_integer(), source_, ": field '", key, "' must be an integer, got ", at(key).dump());
    return at(key).get<int64_t>();
  }
  [[nodiscard]] int64_t integer_or(const char* key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  [[nodiscard]] double real_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    ANVIL_CHECK(at(key).is_number(), source_, ": field '", key, "' must be a number, got ", at(key).dump());
    return at(key).get<double>();
  }
  [[nodiscard]] bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    ANVIL_CHECK(at(key).is_boolean(), source_, ": field '", key, "' must be true or false, got ", at(key).dump());
    return at(key).get<bool>();
  }
  [[nodiscard]] std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    ANVIL_CHECK(at(key).is_string(), source_, ": field '", key, "' must be a string, got ", at(key).dump());
    return at(key).get<std::string>();
  }
  // A token id given as an integer or a list of integers (the first one is used).
  [[nodiscard]] int32_t token_id_or(const char* key, int32_t fallback) const {
    if (!has(key)) return fallback;
    const Json& value = at(key).is_array() && !at(key).empty() ? at(key).front() : at(key);
    ANVIL_CHECK(value.is_number_integer(), source_, ": field '", key, "' must be a token id, got ", at(key).dump());
    return value.get<int32_t>();
  }
  [[nodiscard]] const std::string& source() const { return source_; }

 private:
  const Json& object_;
  std::string source_;
};

Architecture architecture_from_hf(const Fields& fields) {
  std::string name = fields.string_or("model_type", "");
  if (fields.has("architectures")) {
    const Json& list = fields.at("architectures");
    ANVIL_CHECK(list.is_array() && !list.empty() && list.front().is_string(), fields.source(),
                ": field 'architectures' must be a list of names, got ", list.dump());
    name = list.front().get<std::string>();
  }
  if (name == "LlamaForCausalLM" || name == "llama") return Architecture::Llama;
  if (name == "MistralForCausalLM" || name == "mistral") return Architecture::Mistral;
  if (name == "Qwen2ForCausalLM" || name == "qwen2") return Architecture::Qwen2;
  if (name == "Qwen3ForCausalLM" || name == "qwen3") return Architecture::Qwen3;
  if (name == "GPT2LMHeadModel" || name == "gpt2") return Architecture::Gpt2;
  throw make_error(fields.source(), ": architecture '", name,
                   "' is not supported (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
                   "GPT2LMHeadModel)");
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5): {rope_type: default |
// linear | llama3, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}.
void read_rope_scaling(const Fields& fields, RopeParams& rope) {
  const char* key = fields.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  if (!fields.has(key)) return;
  ANVIL_CHECK(fields.at(key).is_object(), fields.source(), ": field '", key, "' must be an object");
  const Fields scaling(fields.at(key), fields.source() + " " + key);
  rope.base = static_cast<float>(scaling.real_or("rope_theta", rope.base));
  const std::string type = scaling.string_or("rope_type", scaling.string_or("type", "default"));
  if (type == "default") return;
  rope.factor = static_cast<float>(scaling.real_or("factor", 1.0));
  if (type == "linear") {
    rope.scaling = RopeScaling::Linear;
  } else if (type == "llama3") {
    rope.scaling = RopeScaling::Llama3;
    rope.low_freq_factor = static_cast<float>(scaling.real_or("low_freq_factor", 1.0));
    rope.high_freq_factor = static_cast<float>(scaling.real_or("high_freq_factor", 4.0));
    rope.original_max_position = scaling.integer("original_max_position_embeddings");
  } else {
    throw make_error(scaling.source(), ": rope_type '", type, "' is not supported (default, linear, llama3)");
  }
}

ModelConfig llama_family_config(const Fields& fields, Architecture architecture) {
  ModelConfig config;
  config.architecture = architecture;
  config.vocab_size = fields.integer("vocab_size");
  config.hidden_size = fields.integer("hidden_size");
  config.intermediate_size = fields.integer("intermediate_size");
  config.num_layers = fields.integer("num_hidden_layers");
  config.num_heads = fields.integer("num_attention_heads");
  config.num_kv_heads = fields.integer_or("num_key_value_heads", config.num_heads);
  ANVIL_CHECK(config.num_heads > 0, fields.source(), ": num_attention_heads must be > 0");
  config.head_dim = fields.integer_or("head_dim", config.hidden_size / config.num_heads);
  config.max_position = fields.integer("max_position_embeddings");
  config.norm_eps = static_cast<float>(fields.real_or("rms_norm_eps", 1e-6));
  config.tied_embeddings = fields.boolean_or("tie_word_embeddings", false);
  const bool window_used = architecture == Architecture::Mistral || fields.boolean_or("use_sliding_window", false);
  config.sliding_window = window_used ? fields.integer_or("sliding_window", 0) : 0;
  config.qkv_bias = architecture == Architecture::Qwen2;
  config.qk_norm = architecture == Architecture::Qwen3;
  ANVIL_CHECK(!fields.boolean_or("attention_bias", false) || architecture == Architecture::Qwen2, fields.source(),
              ": attention_bias = true is not supported for ", architecture_name(architecture));
  ANVIL_CHECK(!fields.boolean_or("mlp_bias", false), fields.source(), ": mlp_bias = true is not supported");
  const std::string activation = fields.string_or("hidden_act", "silu");
  ANVIL_CHECK(activation == "silu", fields.source(), ": hidden_act '", activation, "' is not supported (silu)");
  config.rope.layout = RopeLayout::RotateHalf;
  config.rope.base = static_cast<float>(fields.real_or("rope_theta", 10000.0));
  read_rope_scaling(fields, config.rope);
  return config;
}

ModelConfig gpt2_config(const Fields& fields) {
  ModelConfig config;
  config.architecture = Architecture::Gpt2;
  config.vocab_size = fields.integer("vocab_size");
  config.hidden_size = fields.integer("n_embd");
  config.num_layers = fields.integer("n_layer");
  config.num_heads = fields.integer("n_head");
  ANVIL_CHECK(config.num_heads > 0, fields.source(), ": n_head must be > 0");
  config.num_kv_heads = config.num_heads;
  config.head_dim = config.hidden_size / config.num_heads;
  config.intermediate_size = fields.integer_or("n_inner", 4 * config.hidden_size);
  config.max_position = fields.integer_or("n_positions", fields.integer_or("n_ctx", 0));
  config.norm_eps = static_cast<float>(fields.real_or("layer_norm_epsilon", 1e-5));
  config.tied_embeddings = fields.boolean_or("tie_word_embeddings", true);
  const std::string activation = fields.string_or("activation_function", "gelu_new");
  ANVIL_CHECK(activation == "gelu_new" || activation == "gelu_pytorch_tanh", fields.source(), ": activation_function '",
              activation, "' is not supported (gelu_new)");
  config.norm = NormKind::LayerNorm;
  config.mlp = MlpKind::GeluTanh;
  config.learned_positions = true;
  return config;
}

}  // namespace

ModelConfig config_from_hf_json(const std::string& json_text, const std::string& source) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& error) {
    throw make_error(source, ": not valid JSON: ", error.what());
  }
  ANVIL_CHECK(root.is_object(), source, ": expected a JSON object at the top level");
  const Fields fields(root, source);
  const Architecture architecture = architecture_from_hf(fields);
  ModelConfig config =
      architecture == Architecture::Gpt2 ? gpt2_config(fields) : llama_family_config(fields, architecture);
  config.bos_token_id = fields.token_id_or("bos_token_id", -1);
  config.eos_token_id = fields.token_id_or("eos_token_id", -1);
  try {
    config.validate();
  } catch (const Error& error) {
    throw error.with("file", source);
  }
  return config;
}

}  // namespace anvil::model
