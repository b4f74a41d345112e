// GGUF export in llama.cpp's converter layout.
#include "anvil/train/gguf_export.h"

#include "../tokenizer/byte_level.h"
#include "anvil/core/error.h"
#include "anvil/io/gguf_writer.h"

namespace anvil::train {

namespace {

using W = io::GgufWriter;

bool is_gpt2(const model::ModelConfig& config) { return config.architecture == model::Architecture::Gpt2; }

io::GgufValue u32(int64_t value) { return W::u32(static_cast<uint32_t>(value)); }

// llama.cpp's permute(): within each head, rotate-half pair member j of pair i (row
// j * D/2 + i) moves to row 2 i + j, so interleaved RoPE on the result equals rotate-half
// RoPE on the original.
Tensor permuted_for_interleaved_rope(const Tensor& weight, int64_t heads) {
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  const Tensor dense = weight.contiguous();
  Tensor out = Tensor::empty({rows, cols}, DType::F32);
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::copy_n(dense.data<const float>() + (h * head_dim + j * half + i) * cols, cols,
                    out.data<float>() + (h * head_dim + 2 * i + j) * cols);
      }
    }
  }
  return out;
}

Tensor stacked_rows(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const Tensor& part : parts) rows += part.size(0);
  Shape shape = parts.front().shape();
  shape[0] = rows;
  Tensor out = Tensor::empty(shape, DType::F32);
  float* cursor = out.data<float>();
  for (const Tensor& part : parts) cursor = std::copy_n(part.contiguous().data<const float>(), part.numel(), cursor);
  return out;
}

void add_llama_tensors(const TrainModel& m, W& writer) {
  const model::ModelConfig& c = m.config();
  writer.add_tensor("token_embd.weight", m.param("model.embed_tokens.weight"));
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".", b = "blk." + std::to_string(layer) + ".";
    writer.add_tensor(b + "attn_norm.weight", m.param(p + "input_layernorm.weight"));
    writer.add_tensor(b + "attn_q.weight",
                      permuted_for_interleaved_rope(m.param(p + "self_attn.q_proj.weight"), c.num_heads));
    writer.add_tensor(b + "attn_k.weight",
                      permuted_for_interleaved_rope(m.param(p + "self_attn.k_proj.weight"), c.num_kv_heads));
    writer.add_tensor(b + "attn_v.weight", m.param(p + "self_attn.v_proj.weight"));
    writer.add_tensor(b + "attn_output.weight", m.param(p + "self_attn.o_proj.weight"));
    writer.add_tensor(b + "ffn_norm.weight", m.param(p + "post_attention_layernorm.weight"));
    writer.add_tensor(b + "ffn_gate.weight", m.param(p + "mlp.gate_proj.weight"));
    writer.add_tensor(b + "ffn_up.weight", m.param(p + "mlp.up_proj.weight"));
    writer.add_tensor(b + "ffn_down.weight", m.param(p + "mlp.down_proj.weight"));
  }
  writer.add_tensor("output_norm.weight", m.param("model.norm.weight"));
}

void add_gpt2_tensors(const TrainModel& m, W& writer) {
  writer.add_tensor("token_embd.weight", m.param("wte.weight"));
  writer.add_tensor("position_embd.weight", m.param("wpe.weight"));
  for (int64_t layer = 0; layer < m.config().num_layers; ++layer) {
    const std::string p = "h." + std::to_string(layer) + ".", b = "blk." + std::to_string(layer) + ".";
    const auto w = [&](const std::string& name) { return m.param(p + name); };
    writer.add_tensor(b + "attn_norm.weight", w("ln_1.weight"));
    writer.add_tensor(b + "attn_norm.bias", w("ln_1.bias"));
    writer.add_tensor(b + "attn_qkv.weight",
                      stacked_rows({w("attn.q_proj.weight"), w("attn.k_proj.weight"), w("attn.v_proj.weight")}));
    writer.add_tensor(b + "attn_qkv.bias",
                      stacked_rows({w("attn.q_proj.bias"), w("attn.k_proj.bias"), w("attn.v_proj.bias")}));
    writer.add_tensor(b + "attn_output.weight", w("attn.c_proj.weight"));
    writer.add_tensor(b + "attn_output.bias", w("attn.c_proj.bias"));
    writer.add_tensor(b + "ffn_norm.weight", w("ln_2.weight"));
    writer.add_tensor(b + "ffn_norm.bias", w("ln_2.bias"));
    writer.add_tensor(b + "ffn_up.weight", w("mlp.c_fc.weight"));
    writer.add_tensor(b + "ffn_up.bias", w("mlp.c_fc.bias"));
    writer.add_tensor(b + "ffn_down.weight", w("mlp.c_proj.weight"));
    writer.add_tensor(b + "ffn_down.bias", w("mlp.c_proj.bias"));
  }
  writer.add_tensor("output_norm.weight", m.param("ln_f.weight"));
  writer.add_tensor("output_norm.bias", m.param("ln_f.bias"));
}

void set_model_metadata(const model::ModelConfig& c, W& writer) {
  const std::string a = is_gpt2(c) ? "gpt2" : "llama";
  writer.set("general.architecture", W::string(a));
  writer.set("general.name", W::string("anvil-trained " + a));
  writer.set(a + ".block_count", u32(c.num_layers));
  writer.set(a + ".context_length", u32(c.max_position));
  writer.set(a + ".embedding_length", u32(c.hidden_size));
  writer.set(a + ".feed_forward_length", u32(c.intermediate_size));
  writer.set(a + ".attention.head_count", u32(c.num_heads));
  if (is_gpt2(c)) {
    writer.set(a + ".attention.layer_norm_epsilon", W::f32(c.norm_eps));
  } else {
    writer.set(a + ".attention.head_count_kv", u32(c.num_kv_heads));
    writer.set(a + ".rope.freq_base", W::f32(c.rope.base));
    writer.set(a + ".rope.dimension_count", u32(c.head_dim));
    writer.set(a + ".attention.layer_norm_rms_epsilon", W::f32(c.norm_eps));
  }
  writer.set(a + ".vocab_size", u32(c.vocab_size));
}

// The bytes tokenizer as a byte-level BPE without merges; ids past 256 are padding.
void set_byte_tokenizer(const model::ModelConfig& c, W& writer) {
  io::GgufArray tokens{io::GgufType::String, {}}, types{io::GgufType::I32, {}};
  for (int64_t id = 0; id < c.vocab_size; ++id) {
    if (id < 256) {
      tokens.items.push_back(W::string(tokenizer::byte_level_encode(std::string(1, static_cast<char>(id)))));
      types.items.push_back(W::i32(1));  // normal
    } else if (id == 256) {
      tokens.items.push_back(W::string("<|endoftext|>"));
      types.items.push_back(W::i32(3));  // control
    } else {
      tokens.items.push_back(W::string("[PAD" + std::to_string(id) + "]"));
      types.items.push_back(W::i32(5));  // unused
    }
  }
  writer.set("tokenizer.ggml.model", W::string("gpt2"));
  writer.set("tokenizer.ggml.pre", W::string("default"));
  writer.set("tokenizer.ggml.tokens", io::GgufValue{io::GgufType::Array, tokens});
  writer.set("tokenizer.ggml.token_type", io::GgufValue{io::GgufType::Array, types});
  writer.set("tokenizer.ggml.merges", io::GgufValue{io::GgufType::Array, io::GgufArray{io::GgufType::String, {}}});
  writer.set("tokenizer.ggml.eos_token_id", u32(256));
}

}  // namespace

void export_gguf(const TrainModel& model, const std::string& path, const std::string& tokenizer) {
  const model::ModelConfig& c = model.config();
  W writer;
  set_model_metadata(c, writer);
  if (tokenizer == "bytes") {
    ANVIL_CHECK(c.vocab_size >= 257, "export_gguf: the bytes tokenizer needs vocab_size >= 257, got ", c.vocab_size);
    set_byte_tokenizer(c, writer);
  }
  if (is_gpt2(c)) {
    add_gpt2_tensors(model, writer);
  } else {
    add_llama_tensors(model, writer);
  }
  if (!c.tied_embeddings) writer.add_tensor("output.weight", model.param("lm_head.weight"));
  writer.write(path);
}

}  // namespace anvil::train
