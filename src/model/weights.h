#pragma once
// The weights of a decoder-only transformer as the forward pass uses them, and the named
// tensor sources (GGUF file, safetensors shards) they are read from. Linear weights are
// (out_features, in_features) as stored, quantized or not; norm weights and biases are
// small f32 copies; everything else is a zero-copy view of the mapped file.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "anvil/core/tensor.h"
#include "anvil/model/model_config.h"

namespace anvil::io {
class GgufFile;
class SafetensorsFile;
}  // namespace anvil::io

namespace anvil::model {

struct LayerWeights {
  Tensor attn_norm, attn_norm_bias;  // (C) f32; bias: LayerNorm only
  Tensor wq, wk, wv, wo;             // (Hq*D, C), (Hkv*D, C), (Hkv*D, C), (C, Hq*D)
  Tensor bq, bk, bv, bo;             // optional f32 biases of the above
  Tensor q_norm, k_norm;             // (D) f32, Qwen3's per-head RMSNorm
  Tensor ffn_norm, ffn_norm_bias;    // (C) f32
  Tensor w_gate, w_up, w_down;       // (F, C), (F, C), (C, F); no gate for GELU MLPs
  Tensor b_up, b_down;               // optional f32 (GPT-2)
  // On a GPU, when the parts share a dtype: the rows of wq, wk, wv (and bq, bk, bv) in one
  // tensor, and of w_gate, w_up, so that a decode step reads each with one GEMV; the parts
  // above are then row views of these.
  Tensor wqkv, bqkv;  // (Hq*D + 2*Hkv*D, C), (Hq*D + 2*Hkv*D)
  Tensor w_gate_up;   // (2F, C)
};

struct ModelWeights {
  Tensor token_embedding;     // (V, C) any dtype (rows are gathered, dequantised if need be)
  Tensor position_embedding;  // (P, C) f32, learned positions only
  std::vector<LayerWeights> layers;
  Tensor final_norm, final_norm_bias;  // (C) f32
  Tensor lm_head;                      // (V, C); the token embedding when tied
};

// Named tensors of a checkpoint.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The tensor called `name`, or nullopt.
  [[nodiscard]] virtual std::optional<Tensor> find(const std::string& name) const = 0;
  // What the tensors come from, for error messages ("GGUF 'x.gguf'").
  [[nodiscard]] virtual std::string describe() const = 0;
};

std::unique_ptr<WeightSource> gguf_weight_source(std::shared_ptr<const io::GgufFile> file);
// One or more safetensors shards; a name must live in exactly one.
std::unique_ptr<WeightSource> safetensors_weight_source(std::vector<io::SafetensorsFile> shards);

// Reads and shape-checks every weight `config` needs; names are llama.cpp's for GGUF and
// Hugging Face's otherwise. Throws anvil::Error naming the tensor and the source.
ModelWeights load_gguf_weights(const WeightSource& source, const ModelConfig& config);
ModelWeights load_hf_weights(const WeightSource& source, const ModelConfig& config);

// `weights` with every tensor copied to `device` as stored, except the host tables rows are
// gathered from (token and position embeddings); lm_head is copied even when tied. Q, K, V
// and gate, up are stored fused where their dtypes agree (LayerWeights::wqkv, w_gate_up).
ModelWeights weights_to_device(Ctx& ctx, const ModelWeights& weights, Device device);

}  // namespace anvil::model

namespace anvil::model {

// Shape- and dtype-checked reads from a WeightSource; every error names the tensor.
class WeightReader {
 public:
  explicit WeightReader(const WeightSource& source) : source_(source) {}

  [[nodiscard]] bool has(const std::string& name) const { return source_.find(name).has_value(); }
  // A linear weight (rows, cols) as stored: f32/f16/bf16 or block-quantized.
  [[nodiscard]] Tensor matrix(const std::string& name, int64_t rows, int64_t cols) const;
  // An embedding table (rows, cols) in any float or quantized dtype.
  [[nodiscard]] Tensor table(const std::string& name, int64_t rows, int64_t cols) const;
  // A vector (length) as an f32 copy.
  [[nodiscard]] Tensor vector(const std::string& name, int64_t length) const;
  // The tensor as stored, which must exist with exactly `shape`.
  [[nodiscard]] Tensor exact(const std::string& name, const Shape& shape) const;
  [[nodiscard]] const WeightSource& source() const { return source_; }

 private:
  const WeightSource& source_;
};

// The per-layer tensor names of one checkpoint format, relative to the layer prefix.
struct LlamaLayerNames {
  const char* attn_norm;
  const char* q;
  const char* k;
  const char* v;
  const char* o;
  const char* q_bias;
  const char* k_bias;
  const char* v_bias;
  const char* q_norm;
  const char* k_norm;
  const char* ffn_norm;
  const char* gate;
  const char* up;
  const char* down;
};

// Reads one Llama-family layer (optional QKV bias and q/k norm per `config`).
LayerWeights read_llama_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix,
                              const LlamaLayerNames& names);

}  // namespace anvil::model
