#pragma once
// Hyper-parameters of a decoder-only transformer, whatever file it came from.
#include <cstdint>
#include <string>

#include "anvil/backend/op_params.h"

namespace anvil::io {
class GgufFile;
}

namespace anvil::model {

enum class Architecture : uint8_t { Llama, Mistral, Qwen2, Qwen3, Gpt2 };
const char* architecture_name(Architecture architecture);

enum class NormKind : uint8_t { RmsNorm, LayerNorm };
enum class MlpKind : uint8_t { SwiGlu, GeluTanh };

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // C
  int64_t intermediate_size = 0;  // F (MLP hidden)
  int64_t num_layers = 0;
  int64_t num_heads = 0;       // Hq
  int64_t num_kv_heads = 0;    // Hkv (GQA when < Hq)
  int64_t head_dim = 0;        // D (usually C / Hq)
  int64_t max_position = 0;    // context length the model was trained for
  int64_t sliding_window = 0;  // 0 = full attention (Mistral uses 4096)
  float norm_eps = 1e-5F;
  NormKind norm = NormKind::RmsNorm;
  MlpKind mlp = MlpKind::SwiGlu;
  bool learned_positions = false;  // GPT-2: wpe table instead of RoPE
  bool qkv_bias = false;           // Qwen2
  bool qk_norm = false;            // Qwen3: RMSNorm on each q/k head
  bool tied_embeddings = false;    // lm_head shares the token embedding
  RopeParams rope;                 // layout depends on the weight source (see loaders)
  int32_t bos_token_id = -1;
  int32_t eos_token_id = -1;

  // Throws anvil::Error naming the field when the values are inconsistent.
  void validate() const;
};

// The config of a GGUF file from its metadata ("<arch>.block_count", ...) and, where the
// metadata is silent, its tensors (biases, q/k norms, a separate output head). RoPE is
// Interleaved for llama-arch files (llama.cpp permutes their Q/K rows), RotateHalf for
// qwen2/qwen3. Throws anvil::Error naming the file and key. The result is validated.
ModelConfig config_from_gguf(const io::GgufFile& file);

// The config of a Hugging Face config.json (text in `json_text`, `source` names it in
// errors): LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
// GPT2LMHeadModel. RoPE is RotateHalf (HF layout). The result is validated.
ModelConfig config_from_hf_json(const std::string& json_text, const std::string& source);

}  // namespace anvil::model
