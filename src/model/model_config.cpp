// ModelConfig: names and the consistency checks every loader's result goes through.
#include "anvil/model/model_config.h"

#include <cmath>

#include "anvil/core/error.h"

namespace anvil::model {

const char* architecture_name(Architecture architecture) {
  switch (architecture) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
    case Architecture::Qwen3:
      return "qwen3";
    case Architecture::Gpt2:
      return "gpt2";
  }
  return "unknown";
}

namespace {

void require_positive(const char* field, int64_t value) {
  ANVIL_CHECK(value > 0, "model config: ", field, " must be > 0, got ", value);
}

void validate_rope(const ModelConfig& config) {
  const RopeParams& rope = config.rope;
  const int64_t rot_dim = rope.rot_dim == 0 ? config.head_dim : rope.rot_dim;
  ANVIL_CHECK(rot_dim > 0 && rot_dim <= config.head_dim && rot_dim % 2 == 0, "model config: rope.rot_dim ",
              rope.rot_dim, " must be 0 (whole head) or even and at most head_dim ", config.head_dim);
  ANVIL_CHECK(std::isfinite(rope.base) && rope.base > 0.0F, "model config: rope.base must be > 0, got ", rope.base);
  if (rope.scaling == RopeScaling::None) return;
  ANVIL_CHECK(std::isfinite(rope.factor) && rope.factor > 0.0F, "model config: rope scaling factor must be > 0, got ",
              rope.factor);
  if (rope.scaling != RopeScaling::Llama3) return;
  ANVIL_CHECK(rope.low_freq_factor > 0.0F && rope.high_freq_factor > rope.low_freq_factor,
              "model config: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got ",
              rope.low_freq_factor, " and ", rope.high_freq_factor);
  require_positive("rope.original_max_position", rope.original_max_position);
}

}  // namespace

void ModelConfig::validate() const {
  require_positive("vocab_size", vocab_size);
  require_positive("hidden_size", hidden_size);
  require_positive("intermediate_size", intermediate_size);
  require_positive("num_layers", num_layers);
  require_positive("num_heads", num_heads);
  require_positive("num_kv_heads", num_kv_heads);
  require_positive("head_dim", head_dim);
  require_positive("max_position", max_position);
  ANVIL_CHECK(num_heads % num_kv_heads == 0, "model config: num_heads ", num_heads,
              " must be a multiple of num_kv_heads ", num_kv_heads);
  ANVIL_CHECK(sliding_window >= 0, "model config: sliding_window must be >= 0, got ", sliding_window);
  ANVIL_CHECK(std::isfinite(norm_eps) && norm_eps > 0.0F, "model config: norm_eps must be > 0, got ", norm_eps);
  ANVIL_CHECK(vocab_size <= INT32_MAX, "model config: vocab_size ", vocab_size, " does not fit token ids (i32)");
  ANVIL_CHECK(bos_token_id < vocab_size && eos_token_id < vocab_size, "model config: bos/eos token ids (", bos_token_id,
              ", ", eos_token_id, ") must be below vocab_size ", vocab_size);
  const bool gpt2 = architecture == Architecture::Gpt2;
  ANVIL_CHECK(learned_positions == gpt2 && (norm == NormKind::LayerNorm) == gpt2 && (mlp == MlpKind::GeluTanh) == gpt2,
              "model config: architecture ", architecture_name(architecture),
              " disagrees with learned_positions / norm / mlp");
  if (!learned_positions) validate_rope(*this);
}

}  // namespace anvil::model
