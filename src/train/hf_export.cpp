// Export to Hugging Face layout (LlamaForCausalLM / GPT2LMHeadModel).
#include "anvil/train/hf_export.h"

#include <filesystem>

#include "../tokenizer/byte_level.h"
#include "anvil/core/error.h"
#include "anvil/io/safetensors.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

namespace fs = std::filesystem;

bool is_gpt2(const model::ModelConfig& config) { return config.architecture == model::Architecture::Gpt2; }

Tensor transposed(const Tensor& matrix) { return matrix.transpose(0, 1).contiguous(); }

// Rows stacked: (a; b; c) of equal widths.
Tensor stacked(const std::vector<Tensor>& parts) {
  int64_t rows = 0;
  for (const Tensor& part : parts) rows += part.size(0);
  const int64_t width = parts.front().dim() == 2 ? parts.front().size(1) : 1;
  Tensor out = Tensor::empty(parts.front().dim() == 2 ? Shape{rows, width} : Shape{rows}, DType::F32);
  float* cursor = out.data<float>();
  for (const Tensor& part : parts) {
    const Tensor dense = part.contiguous();
    std::copy_n(dense.data<const float>(), dense.numel(), cursor);
    cursor += dense.numel();
  }
  return out;
}

void add_gpt2_tensors(const TrainModel& m, std::vector<std::pair<std::string, Tensor>>& out) {
  const model::ModelConfig& c = m.config();
  out.emplace_back("transformer.wte.weight", m.param("wte.weight").clone());
  out.emplace_back("transformer.wpe.weight", m.param("wpe.weight").clone());
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    const std::string p = "h." + std::to_string(layer) + ".";
    const std::string hf = "transformer." + p;
    const auto w = [&](const std::string& name) { return m.param(p + name); };
    out.emplace_back(hf + "ln_1.weight", w("ln_1.weight").clone());
    out.emplace_back(hf + "ln_1.bias", w("ln_1.bias").clone());
    // Conv1D (in, out) = our (out, in) transposed; q, k, v side by side in c_attn's columns.
    out.emplace_back(hf + "attn.c_attn.weight",
                     transposed(stacked({w("attn.q_proj.weight"), w("attn.k_proj.weight"), w("attn.v_proj.weight")})));
    out.emplace_back(hf + "attn.c_attn.bias",
                     stacked({w("attn.q_proj.bias"), w("attn.k_proj.bias"), w("attn.v_proj.bias")}));
    out.emplace_back(hf + "attn.c_proj.weight", transposed(w("attn.c_proj.weight")));
    out.emplace_back(hf + "attn.c_proj.bias", w("attn.c_proj.bias").clone());
    out.emplace_back(hf + "ln_2.weight", w("ln_2.weight").clone());
    out.emplace_back(hf + "ln_2.bias", w("ln_2.bias").clone());
    out.emplace_back(hf + "mlp.c_fc.weight", transposed(w("mlp.c_fc.weight")));
    out.emplace_back(hf + "mlp.c_fc.bias", w("mlp.c_fc.bias").clone());
    out.emplace_back(hf + "mlp.c_proj.weight", transposed(w("mlp.c_proj.weight")));
    out.emplace_back(hf + "mlp.c_proj.bias", w("mlp.c_proj.bias").clone());
  }
  out.emplace_back("transformer.ln_f.weight", m.param("ln_f.weight").clone());
  out.emplace_back("transformer.ln_f.bias", m.param("ln_f.bias").clone());
}

}  // namespace

nlohmann::json hf_config_json(const model::ModelConfig& c) {
  nlohmann::json json;
  if (is_gpt2(c)) {
    json = {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"vocab_size", c.vocab_size},
            {"n_embd", c.hidden_size},
            {"n_layer", c.num_layers},
            {"n_head", c.num_heads},
            {"n_inner", c.intermediate_size},
            {"n_positions", c.max_position},
            {"n_ctx", c.max_position},
            {"layer_norm_epsilon", c.norm_eps},
            {"activation_function", "gelu_new"},
            {"resid_pdrop", 0.0},
            {"embd_pdrop", 0.0},
            {"attn_pdrop", 0.0},
            {"tie_word_embeddings", c.tied_embeddings}};
  } else {
    json = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_layers},
            {"num_attention_heads", c.num_heads},
            {"num_key_value_heads", c.num_kv_heads},
            {"head_dim", c.head_dim},
            {"max_position_embeddings", c.max_position},
            {"rms_norm_eps", c.norm_eps},
            {"rope_theta", c.rope.base},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"mlp_bias", false},
            {"tie_word_embeddings", c.tied_embeddings}};
  }
  json["torch_dtype"] = "float32";
  if (c.eos_token_id >= 0) json["eos_token_id"] = c.eos_token_id;
  if (c.bos_token_id >= 0) json["bos_token_id"] = c.bos_token_id;
  return json;
}

std::vector<std::pair<std::string, Tensor>> hf_tensors(const TrainModel& m) {
  std::vector<std::pair<std::string, Tensor>> out;
  if (is_gpt2(m.config())) {
    add_gpt2_tensors(m, out);
  } else {
    for (const ParamEntry& entry : m.table().entries()) {
      if (entry.name != "lm_head.weight") out.emplace_back(entry.name, m.param(entry.name).clone());
    }
  }
  if (!m.config().tied_embeddings) out.emplace_back("lm_head.weight", m.param("lm_head.weight").clone());
  return out;
}

std::string byte_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int byte = 0; byte < 256; ++byte) {
    vocab[tokenizer::byte_level_encode(std::string(1, static_cast<char>(byte)))] = byte;
  }
  const nlohmann::json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  const nlohmann::json json = {{"version", "1.0"},
                               {"truncation", nullptr},
                               {"padding", nullptr},
                               {"added_tokens",
                                {{{"id", 256},
                                  {"content", "<|endoftext|>"},
                                  {"single_word", false},
                                  {"lstrip", false},
                                  {"rstrip", false},
                                  {"normalized", false},
                                  {"special", true}}}},
                               {"normalizer", nullptr},
                               {"pre_tokenizer", byte_level},
                               {"post_processor", nullptr},
                               {"decoder", byte_level},
                               {"model",
                                {{"type", "BPE"},
                                 {"dropout", nullptr},
                                 {"unk_token", nullptr},
                                 {"continuing_subword_prefix", nullptr},
                                 {"end_of_word_suffix", nullptr},
                                 {"fuse_unk", false},
                                 {"byte_fallback", false},
                                 {"ignore_merges", false},
                                 {"vocab", vocab},
                                 {"merges", nlohmann::json::array()}}}};
  return json.dump(1) + "\n";
}

void export_hf(const TrainModel& model, const std::string& folder, const std::string& tokenizer) {
  fs::create_directories(folder);
  io::write_safetensors((fs::path(folder) / "model.safetensors").string(), hf_tensors(model), {{"format", "pt"}});
  detail::write_file_atomically((fs::path(folder) / "config.json").string(),
                                hf_config_json(model.config()).dump(2) + "\n");
  const fs::path tokenizer_path = fs::path(folder) / "tokenizer.json";
  if (tokenizer == "bytes") {
    detail::write_file_atomically(tokenizer_path.string(), byte_tokenizer_json());
  } else if (tokenizer.ends_with(".json")) {
    fs::copy_file(tokenizer, tokenizer_path, fs::copy_options::overwrite_existing);
  }
}

}  // namespace anvil::train
