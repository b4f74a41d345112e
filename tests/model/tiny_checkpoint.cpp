// Checkpoint writers for the tiny test models: HF (config.json + safetensors) and GGUF the
// way llama.cpp's convert_hf_to_gguf.py lays it out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "anvil/core/convert.h"
#include "anvil/io/gguf_writer.h"
#include "anvil/io/safetensors.h"
#include "model/tiny_model.h"

namespace anvil::testing {

using model::Architecture;

namespace {

Tensor to_tensor(const HostArray& array, DType dtype = DType::F32) {
  Tensor tensor = Tensor::empty(array.shape, DType::F32);
  convert_host(DType::F64, array.values.data(), DType::F32, tensor.raw_data(), array.numel());
  return dtype == DType::F32 ? tensor : tensor.to_dtype(dtype);
}

HostArray transposed(const HostArray& array) {
  const int64_t rows = array.shape[0];
  const int64_t cols = array.shape[1];
  HostArray out{{cols, rows}, std::vector<double>(array.values.size())};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = array[r * cols + c];
  }
  return out;
}

// llama.cpp's permute(): within each head, HF row j * D/2 + i (rotate-half pair member j of
// pair i) moves to row 2 i + j, so that interleaved RoPE on the result equals rotate-half
// RoPE on the original.
HostArray permute_for_interleaved_rope(const HostArray& array, int64_t heads) {
  const int64_t rows = array.shape[0];
  const int64_t cols = array.shape[1];
  const int64_t head_dim = rows / heads;
  const int64_t half = head_dim / 2;
  HostArray out{array.shape, std::vector<double>(array.values.size())};
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t from = h * head_dim + j * half + i;
        const int64_t to = h * head_dim + 2 * i + j;
        for (int64_t c = 0; c < cols; ++c) out[to * cols + c] = array[from * cols + c];
      }
    }
  }
  return out;
}

const char* gguf_arch(Architecture architecture) {
  switch (architecture) {
    case Architecture::Qwen2:
      return "qwen2";
    case Architecture::Qwen3:
      return "qwen3";
    case Architecture::Gpt2:
      return "gpt2";
    default:
      return "llama";  // the converter writes Mistral as llama too
  }
}

void set_gguf_metadata(io::GgufWriter& writer, const TinySpec& spec) {
  using W = io::GgufWriter;
  const std::string a = gguf_arch(spec.architecture);
  auto u32 = [](int64_t value) { return W::u32(static_cast<uint32_t>(value)); };
  writer.set("general.architecture", W::string(a));
  writer.set(a + ".block_count", u32(spec.layers));
  writer.set(a + ".context_length", u32(spec.max_position));
  writer.set(a + ".embedding_length", u32(spec.hidden));
  writer.set(a + ".feed_forward_length", u32(spec.intermediate));
  writer.set(a + ".attention.head_count", u32(spec.heads));
  if (spec.gpt2()) {
    writer.set(a + ".attention.layer_norm_epsilon", W::f32(static_cast<float>(spec.norm_eps)));
  } else {
    writer.set(a + ".attention.head_count_kv", u32(spec.kv_heads));
    writer.set(a + ".rope.freq_base", W::f32(static_cast<float>(spec.rope_base)));
    writer.set(a + ".rope.dimension_count", u32(spec.head_dim));
    writer.set(a + ".attention.layer_norm_rms_epsilon", W::f32(static_cast<float>(spec.norm_eps)));
  }
  if (spec.head_dim * spec.heads != spec.hidden) {
    writer.set(a + ".attention.key_length", u32(spec.head_dim));
    writer.set(a + ".attention.value_length", u32(spec.head_dim));
  }
  if (spec.sliding_window > 0) writer.set(a + ".attention.sliding_window", u32(spec.sliding_window));
  io::GgufArray tokens{io::GgufType::String, {}};
  for (int64_t t = 0; t < spec.vocab; ++t) tokens.items.push_back(W::string("tok" + std::to_string(t)));
  writer.set("tokenizer.ggml.tokens", io::GgufValue{io::GgufType::Array, tokens});
  writer.set("tokenizer.ggml.bos_token_id", u32(1));
  writer.set("tokenizer.ggml.eos_token_id", u32(2));
}

// HF name -> GGUF name for the llama family ("" when the converter drops it).
std::string llama_gguf_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> kParts = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.", "attn_q."},
      {"self_attn.k_proj.", "attn_k."},
      {"self_attn.v_proj.", "attn_v."},
      {"self_attn.o_proj.", "attn_output."},
      {"self_attn.q_norm.", "attn_q_norm."},
      {"self_attn.k_norm.", "attn_k_norm."},
      {"post_attention_layernorm.", "ffn_norm."},
      {"mlp.gate_proj.", "ffn_gate."},
      {"mlp.up_proj.", "ffn_up."},
      {"mlp.down_proj.", "ffn_down."}};
  if (name == "model.embed_tokens.weight") return "token_embd.weight";
  if (name == "model.norm.weight") return "output_norm.weight";
  if (name == "lm_head.weight") return "output.weight";
  std::string out = name;
  out.replace(0, std::string("model.layers.").size(), "blk.");
  for (const auto& [from, to] : kParts) {
    const size_t at = out.find(from);
    if (at != std::string::npos) return out.replace(at, from.size(), to);
  }
  return out;
}

std::string gpt2_gguf_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> kParts = {
      {"ln_1.", "attn_norm."}, {"attn.c_attn.", "attn_qkv."}, {"attn.c_proj.", "attn_output."},
      {"ln_2.", "ffn_norm."},  {"mlp.c_fc.", "ffn_up."},      {"mlp.c_proj.", "ffn_down."}};
  if (name == "transformer.wte.weight") return "token_embd.weight";
  if (name == "transformer.wpe.weight") return "position_embd.weight";
  if (name.starts_with("transformer.ln_f.")) return "output_norm." + name.substr(name.rfind('.') + 1);
  std::string out = name;
  out.replace(0, std::string("transformer.h.").size(), "blk.");
  for (const auto& [from, to] : kParts) {
    const size_t at = out.find(from);
    if (at != std::string::npos) return out.replace(at, from.size(), to);
  }
  return out;
}

// The weight as the converter stores it: Q/K permuted (llama arch), Conv1D transposed (GPT-2).
HostArray gguf_layout(const TinySpec& spec, const std::string& name, const HostArray& array) {
  const bool llama_arch = spec.architecture == Architecture::Llama || spec.architecture == Architecture::Mistral;
  if (llama_arch && name.ends_with("q_proj.weight")) return permute_for_interleaved_rope(array, spec.heads);
  if (llama_arch && name.ends_with("k_proj.weight")) return permute_for_interleaved_rope(array, spec.kv_heads);
  if (spec.gpt2() && array.shape.size() == 2 && name.find(".h.") != std::string::npos) return transposed(array);
  return array;
}

}  // namespace

std::string hf_config_json(const TinySpec& spec) {
  nlohmann::json config;
  if (spec.gpt2()) {
    config = {{"architectures", {"GPT2LMHeadModel"}},
              {"model_type", "gpt2"},
              {"vocab_size", spec.vocab},
              {"n_embd", spec.hidden},
              {"n_layer", spec.layers},
              {"n_head", spec.heads},
              {"n_positions", spec.max_position},
              {"n_inner", nullptr},
              {"layer_norm_epsilon", spec.norm_eps},
              {"activation_function", "gelu_new"},
              {"bos_token_id", 1},
              {"eos_token_id", 2}};
    return config.dump(2);
  }
  const char* names[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  config = {{"architectures", {names[static_cast<int>(spec.architecture)]}},
            {"vocab_size", spec.vocab},
            {"hidden_size", spec.hidden},
            {"intermediate_size", spec.intermediate},
            {"num_hidden_layers", spec.layers},
            {"num_attention_heads", spec.heads},
            {"num_key_value_heads", spec.kv_heads},
            {"head_dim", spec.head_dim},
            {"max_position_embeddings", spec.max_position},
            {"rms_norm_eps", spec.norm_eps},
            {"rope_theta", spec.rope_base},
            {"rope_scaling", nullptr},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", spec.tied},
            {"bos_token_id", 1},
            {"eos_token_id", {2, 3}},
            {"torch_dtype", "float32"}};
  if (spec.llama3_factor > 0.0) {
    config["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", spec.llama3_factor},
                              {"low_freq_factor", spec.llama3_low_freq_factor},
                              {"high_freq_factor", spec.llama3_high_freq_factor},
                              {"original_max_position_embeddings", spec.llama3_original_max_position}};
  }
  if (spec.architecture == Architecture::Mistral) {
    config["sliding_window"] = spec.sliding_window > 0 ? nlohmann::json(spec.sliding_window) : nlohmann::json();
  }
  if (spec.architecture == Architecture::Qwen2) {  // Qwen2 lists a window it does not use
    config["use_sliding_window"] = false;
    config["sliding_window"] = 4;
  }
  return config.dump(2);
}

void write_hf_checkpoint(const std::string& folder, const TinySpec& spec, const TinyWeights& weights) {
  std::filesystem::create_directories(folder);
  std::ofstream(folder + "/config.json") << hf_config_json(spec);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, array] : weights) tensors.emplace_back(name, to_tensor(array));
  io::write_safetensors(folder + "/model.safetensors", tensors, {{"format", "pt"}});
}

void write_gguf_checkpoint(const std::string& path, const TinySpec& spec, const TinyWeights& weights,
                           DType matrix_dtype) {
  io::GgufWriter writer;
  set_gguf_metadata(writer, spec);
  for (const auto& [name, array] : weights) {
    const std::string gguf_name = spec.gpt2() ? gpt2_gguf_name(name) : llama_gguf_name(name);
    const HostArray stored = gguf_layout(spec, name, array);
    writer.add_tensor(gguf_name, to_tensor(stored, stored.shape.size() == 2 ? matrix_dtype : DType::F32));
  }
  if (spec.llama3_factor > 0.0) {  // the converter's generate_extra_tensors
    HostArray divisors{{spec.head_dim / 2}, {}};
    for (int64_t i = 0; i < spec.head_dim / 2; ++i) divisors.values.push_back(llama3_frequency_divisor(spec, i));
    writer.add_tensor("rope_freqs.weight", to_tensor(divisors));
  }
  writer.write(path);
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  root_ = (std::filesystem::temp_directory_path() /
           ("anvil_model_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" +
            (info != nullptr ? std::string(info->name()) : std::string("test"))))
              .string();
  std::filesystem::create_directories(root_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

std::string TempDir::path(const std::string& name) const { return name.empty() ? root_ : root_ + "/" + name; }

}  // namespace anvil::testing
