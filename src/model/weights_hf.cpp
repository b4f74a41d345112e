// Weight names of Hugging Face checkpoints ("model.layers.N.self_attn.q_proj.weight", ...;
// GPT-2: "transformer.h.N.attn.c_attn.weight", with or without the "transformer." prefix).
#include <string>

#include "weights.h"

namespace anvil::model {

namespace {

LayerWeights llama_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix) {
  // Hugging Face's names.
  static constexpr LlamaLayerNames kNames = {"input_layernorm.weight",
                                             "self_attn.q_proj.weight",
                                             "self_attn.k_proj.weight",
                                             "self_attn.v_proj.weight",
                                             "self_attn.o_proj.weight",
                                             "self_attn.q_proj.bias",
                                             "self_attn.k_proj.bias",
                                             "self_attn.v_proj.bias",
                                             "self_attn.q_norm.weight",
                                             "self_attn.k_norm.weight",
                                             "post_attention_layernorm.weight",
                                             "mlp.gate_proj.weight",
                                             "mlp.up_proj.weight",
                                             "mlp.down_proj.weight"};
  return read_llama_layer(reader, config, prefix, kNames);
}

// HF GPT-2 uses Conv1D layers whose weights are stored (in, out); the forward wants
// (out, in), so they are transposed into contiguous copies once, here.
Tensor conv1d_weight(const WeightReader& reader, const std::string& name, int64_t in, int64_t out) {
  return reader.matrix(name, in, out).transpose(0, 1).contiguous();
}

LayerWeights gpt2_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix) {
  const int64_t c = config.hidden_size;
  const int64_t f = config.intermediate_size;
  LayerWeights layer;
  layer.attn_norm = reader.vector(prefix + "ln_1.weight", c);
  layer.attn_norm_bias = reader.vector(prefix + "ln_1.bias", c);
  const Tensor qkv = conv1d_weight(reader, prefix + "attn.c_attn.weight", c, 3 * c);  // (3C, C)
  const Tensor qkv_bias = reader.vector(prefix + "attn.c_attn.bias", 3 * c);
  layer.wq = qkv.slice(0, 0, c);
  layer.wk = qkv.slice(0, c, 2 * c);
  layer.wv = qkv.slice(0, 2 * c, 3 * c);
  layer.bq = qkv_bias.slice(0, 0, c);
  layer.bk = qkv_bias.slice(0, c, 2 * c);
  layer.bv = qkv_bias.slice(0, 2 * c, 3 * c);
  layer.wo = conv1d_weight(reader, prefix + "attn.c_proj.weight", c, c);
  layer.bo = reader.vector(prefix + "attn.c_proj.bias", c);
  layer.ffn_norm = reader.vector(prefix + "ln_2.weight", c);
  layer.ffn_norm_bias = reader.vector(prefix + "ln_2.bias", c);
  layer.w_up = conv1d_weight(reader, prefix + "mlp.c_fc.weight", c, f);
  layer.b_up = reader.vector(prefix + "mlp.c_fc.bias", f);
  layer.w_down = conv1d_weight(reader, prefix + "mlp.c_proj.weight", f, c);
  layer.b_down = reader.vector(prefix + "mlp.c_proj.bias", c);
  return layer;
}

ModelWeights gpt2_weights(const WeightReader& reader, const ModelConfig& config) {
  const std::string prefix = reader.has("transformer.wte.weight") ? "transformer." : "";
  ModelWeights weights;
  weights.token_embedding = reader.table(prefix + "wte.weight", config.vocab_size, config.hidden_size);
  weights.position_embedding =
      reader.table(prefix + "wpe.weight", config.max_position, config.hidden_size).to_dtype(DType::F32);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    weights.layers.push_back(gpt2_layer(reader, config, prefix + "h." + std::to_string(layer) + "."));
  }
  weights.final_norm = reader.vector(prefix + "ln_f.weight", config.hidden_size);
  weights.final_norm_bias = reader.vector(prefix + "ln_f.bias", config.hidden_size);
  return weights;
}

}  // namespace

ModelWeights load_hf_weights(const WeightSource& source, const ModelConfig& config) {
  const WeightReader reader(source);
  ModelWeights weights;
  if (config.architecture == Architecture::Gpt2) {
    weights = gpt2_weights(reader, config);
  } else {
    weights.token_embedding = reader.table("model.embed_tokens.weight", config.vocab_size, config.hidden_size);
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      weights.layers.push_back(llama_layer(reader, config, "model.layers." + std::to_string(layer) + "."));
    }
    weights.final_norm = reader.vector("model.norm.weight", config.hidden_size);
  }
  weights.lm_head = config.tied_embeddings ? weights.token_embedding
                                           : reader.matrix("lm_head.weight", config.vocab_size, config.hidden_size);
  return weights;
}

}  // namespace anvil::model
