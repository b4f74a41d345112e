// Weight names of llama.cpp's GGUF files ("blk.N.attn_q.weight", ...). Llama-arch Q/K rows
// are stored permuted for interleaved RoPE; the config's RoPE layout accounts for that.
#include <string>

#include "weights.h"

namespace anvil::model {

namespace {

LayerWeights llama_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix) {
  // llama.cpp's names.
  static constexpr LlamaLayerNames kNames = {
      "attn_norm.weight", "attn_q.weight",   "attn_k.weight", "attn_v.weight",      "attn_output.weight",
      "attn_q.bias",      "attn_k.bias",     "attn_v.bias",   "attn_q_norm.weight", "attn_k_norm.weight",
      "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
  return read_llama_layer(reader, config, prefix, kNames);
}

// GPT-2 keeps Q, K and V fused in attn_qkv (3C, C) (llama.cpp transposed HF's Conv1D
// weights on conversion); its row blocks are Q, K, V.
LayerWeights gpt2_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix) {
  const int64_t c = config.hidden_size;
  const int64_t f = config.intermediate_size;
  LayerWeights layer;
  layer.attn_norm = reader.vector(prefix + "attn_norm.weight", c);
  layer.attn_norm_bias = reader.vector(prefix + "attn_norm.bias", c);
  const Tensor qkv = reader.matrix(prefix + "attn_qkv.weight", 3 * c, c);
  const Tensor qkv_bias = reader.vector(prefix + "attn_qkv.bias", 3 * c);
  layer.wq = qkv.slice(0, 0, c);
  layer.wk = qkv.slice(0, c, 2 * c);
  layer.wv = qkv.slice(0, 2 * c, 3 * c);
  layer.bq = qkv_bias.slice(0, 0, c);
  layer.bk = qkv_bias.slice(0, c, 2 * c);
  layer.bv = qkv_bias.slice(0, 2 * c, 3 * c);
  layer.wo = reader.matrix(prefix + "attn_output.weight", c, c);
  layer.bo = reader.vector(prefix + "attn_output.bias", c);
  layer.ffn_norm = reader.vector(prefix + "ffn_norm.weight", c);
  layer.ffn_norm_bias = reader.vector(prefix + "ffn_norm.bias", c);
  layer.w_up = reader.matrix(prefix + "ffn_up.weight", f, c);
  layer.b_up = reader.vector(prefix + "ffn_up.bias", f);
  layer.w_down = reader.matrix(prefix + "ffn_down.weight", c, f);
  layer.b_down = reader.vector(prefix + "ffn_down.bias", c);
  return layer;
}

}  // namespace

ModelWeights load_gguf_weights(const WeightSource& source, const ModelConfig& config) {
  const WeightReader reader(source);
  const bool gpt2 = config.architecture == Architecture::Gpt2;
  ModelWeights weights;
  weights.token_embedding = reader.table("token_embd.weight", config.vocab_size, config.hidden_size);
  if (gpt2) {
    weights.position_embedding =
        reader.table("position_embd.weight", config.max_position, config.hidden_size).to_dtype(DType::F32);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string prefix = "blk." + std::to_string(layer) + ".";
    weights.layers.push_back(gpt2 ? gpt2_layer(reader, config, prefix) : llama_layer(reader, config, prefix));
  }
  weights.final_norm = reader.vector("output_norm.weight", config.hidden_size);
  if (gpt2) weights.final_norm_bias = reader.vector("output_norm.bias", config.hidden_size);
  weights.lm_head = config.tied_embeddings ? weights.token_embedding
                                           : reader.matrix("output.weight", config.vocab_size, config.hidden_size);
  return weights;
}

}  // namespace anvil::model
