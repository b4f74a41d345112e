// ModelConfig from GGUF metadata (llama.cpp's key names: "<arch>.block_count", ...).
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/model/model_config.h"
#include "anvil/ops/rope.h"

namespace anvil::model {

namespace {

// Typed reads of "<arch>.<suffix>" keys; errors name the file and the key.
class GgufKeys {
 public:
  GgufKeys(const io::GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}

  [[nodiscard]] const io::GgufValue* find(const std::string& key) const { return file_.find(key); }
  // "<arch>.<suffix>", which must be present.
  [[nodiscard]] int64_t integer(const std::string& suffix) const {
    const std::string key = arch_ + "." + suffix;
    return checked(key, [&] { return file_.get(key).as_int(); });
  }
  [[nodiscard]] std::optional<int64_t> integer_or(const std::string& key) const {
    if (file_.find(key) == nullptr) return std::nullopt;
    return checked(key, [&] { return file_.get(key).as_int(); });
  }
  [[nodiscard]] std::optional<double> real_or(const std::string& key) const {
    if (file_.find(key) == nullptr) return std::nullopt;
    return checked(key, [&] { return file_.get(key).as_float(); });
  }
  [[nodiscard]] std::optional<std::string> string_or(const std::string& key) const {
    if (file_.find(key) == nullptr) return std::nullopt;
    return checked(key, [&] { return file_.get(key).as_string(); });
  }
  [[nodiscard]] const std::string& arch() const { return arch_; }
  [[nodiscard]] const io::GgufFile& file() const { return file_; }

 private:
  template <typename Fn>
  auto checked(const std::string& key, Fn fn) const -> decltype(fn()) {
    try {
      return fn();
    } catch (const Error& error) {
      throw error.with("file", file_.path()).with("key", key);
    }
  }

  const io::GgufFile& file_;
  std::string arch_;
};

Architecture architecture_from_gguf(const io::GgufFile& file) {
  const std::string& arch = file.get("general.architecture").as_string();
  if (arch == "llama") return Architecture::Llama;
  if (arch == "qwen2") return Architecture::Qwen2;
  if (arch == "qwen3") return Architecture::Qwen3;
  if (arch == "gpt2") return Architecture::Gpt2;
  throw make_error("GGUF '", file.path(), "': general.architecture '", arch,
                   "' is not supported (llama, qwen2, qwen3, gpt2)");
}

int64_t vocab_size_from_gguf(const GgufKeys& keys) {
  if (const auto* tokens = keys.find("tokenizer.ggml.tokens")) {
    return static_cast<int64_t>(tokens->as_array().items.size());
  }
  if (auto size = keys.integer_or(keys.arch() + ".vocab_size")) return *size;
  const io::GgufTensorInfo* embedding = keys.file().find_tensor("token_embd.weight");
  ANVIL_CHECK(embedding != nullptr && embedding->shape.size() == 2, "GGUF '", keys.file().path(),
              "': no tokenizer.ggml.tokens, ", keys.arch(), ".vocab_size or token_embd.weight to size the vocabulary");
  return embedding->shape[0];
}

// Llama 3 checkpoints converted by llama.cpp carry their frequency scaling as a tensor of
// per-pair divisors (rope_freqs.weight) instead of metadata. This finds the llama3
// parameters that reproduce it, searching the values released models use (power-of-two
// original context lengths; low/high frequency factors 0.5..8).
RopeParams rope_from_freq_factors(const RopeParams& base, int64_t head_dim, const std::vector<float>& factors,
                                  const std::string& path) {
  float largest = 1.0F;
  for (const float factor : factors) largest = std::max(largest, factor);
  if (largest == 1.0F) return base;
  RopeParams candidate = base;
  candidate.scaling = RopeScaling::Llama3;
  candidate.factor = largest;
  RopeParams plain = base;
  plain.scaling = RopeScaling::None;
  for (int64_t original = 16; original <= (int64_t{1} << 20); original *= 2) {
    for (const float low : {1.0F, 2.0F, 0.5F}) {
      for (const float high : {4.0F, 2.0F, 8.0F, 1.0F}) {
        if (high <= low) continue;
        candidate.original_max_position = original;
        candidate.low_freq_factor = low;
        candidate.high_freq_factor = high;
        bool matches = true;
        for (size_t pair = 0; matches && pair < factors.size(); ++pair) {
          const double expected = rope_inv_frequency(plain, head_dim, static_cast<int64_t>(pair)) / factors[pair];
          const double got = rope_inv_frequency(candidate, head_dim, static_cast<int64_t>(pair));
          matches = std::abs(got - expected) <= 1e-4 * expected;
        }
        if (matches) return candidate;
      }
    }
  }
  throw make_error("GGUF '", path, "': rope_freqs.weight does not match any llama3 rope scaling (largest factor ",
                   largest, ")");
}

RopeParams rope_from_gguf(const GgufKeys& keys, const ModelConfig& config) {
  RopeParams rope;
  const bool neox = config.architecture == Architecture::Qwen2 || config.architecture == Architecture::Qwen3;
  rope.layout = neox ? RopeLayout::RotateHalf : RopeLayout::Interleaved;
  rope.ggml_angles = true;  // as llama.cpp runs GGUF models (applies while unscaled)
  rope.base = static_cast<float>(keys.real_or(keys.arch() + ".rope.freq_base").value_or(10000.0));
  const int64_t rot_dim = keys.integer_or(keys.arch() + ".rope.dimension_count").value_or(config.head_dim);
  rope.rot_dim = rot_dim == config.head_dim ? 0 : rot_dim;
  const std::string type = keys.string_or(keys.arch() + ".rope.scaling.type").value_or("none");
  if (type == "linear") {
    rope.scaling = RopeScaling::Linear;
    rope.factor = static_cast<float>(keys.real_or(keys.arch() + ".rope.scaling.factor").value_or(1.0));
  } else if (type != "none") {
    throw make_error("GGUF '", keys.file().path(), "': ", keys.arch(), ".rope.scaling.type '", type,
                     "' is not supported (none, linear)");
  }
  if (keys.file().find_tensor("rope_freqs.weight") != nullptr) {
    ANVIL_CHECK(rope.scaling == RopeScaling::None, "GGUF '", keys.file().path(),
                "': rope_freqs.weight together with rope scaling '", type, "' is not supported");
    const Tensor factors = keys.file().tensor("rope_freqs.weight");
    const int64_t pairs = (rot_dim > 0 ? rot_dim : config.head_dim) / 2;
    ANVIL_CHECK(factors.numel() == pairs, "GGUF '", keys.file().path(), "': rope_freqs.weight has ", factors.numel(),
                " values, expected ", pairs);
    rope = rope_from_freq_factors(rope, config.head_dim, factors.to_f32_vector(), keys.file().path());
  }
  return rope;
}

// Sizes and norms; the parts every architecture has.
void read_dimensions(const GgufKeys& keys, ModelConfig& config) {
  config.num_layers = keys.integer("block_count");
  config.hidden_size = keys.integer("embedding_length");
  config.intermediate_size = keys.integer("feed_forward_length");
  config.num_heads = keys.integer("attention.head_count");
  config.num_kv_heads = keys.integer_or(keys.arch() + ".attention.head_count_kv").value_or(config.num_heads);
  ANVIL_CHECK(config.num_heads > 0, "GGUF '", keys.file().path(), "': ", keys.arch(),
              ".attention.head_count must be > 0");
  config.head_dim =
      keys.integer_or(keys.arch() + ".attention.key_length").value_or(config.hidden_size / config.num_heads);
  config.max_position = keys.integer("context_length");
  config.sliding_window = keys.integer_or(keys.arch() + ".attention.sliding_window").value_or(0);
  config.vocab_size = vocab_size_from_gguf(keys);
  config.bos_token_id = static_cast<int32_t>(keys.integer_or("tokenizer.ggml.bos_token_id").value_or(-1));
  config.eos_token_id = static_cast<int32_t>(keys.integer_or("tokenizer.ggml.eos_token_id").value_or(-1));
}

}  // namespace

ModelConfig config_from_gguf(const io::GgufFile& file) {
  ModelConfig config;
  config.architecture = architecture_from_gguf(file);
  const GgufKeys keys(file, file.get("general.architecture").as_string());
  try {
    read_dimensions(keys, config);
  } catch (const Error& error) {
    throw error.with("file", file.path());
  }
  config.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  if (config.architecture == Architecture::Gpt2) {
    config.norm = NormKind::LayerNorm;
    config.mlp = MlpKind::GeluTanh;
    config.learned_positions = true;
    config.norm_eps = static_cast<float>(keys.real_or("gpt2.attention.layer_norm_epsilon").value_or(1e-5));
  } else {
    config.norm_eps =
        static_cast<float>(keys.real_or(keys.arch() + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
    config.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
    config.qk_norm = file.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
    config.rope = rope_from_gguf(keys, config);
  }
  try {
    config.validate();
  } catch (const Error& error) {
    throw error.with("file", file.path());
  }
  return config;
}

}  // namespace anvil::model
