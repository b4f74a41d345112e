#pragma once
// Export of a training model in Hugging Face layout: config.json + model.safetensors (f32)
// with LlamaForCausalLM or GPT2LMHeadModel names (GPT-2's q/k/v fused into c_attn and its
// linear weights transposed to Conv1D's (in, out)), loadable by load_causal_lm and by
// transformers.
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "anvil/train/train_model.h"

namespace anvil::train {

// The config.json of the model.
nlohmann::json hf_config_json(const model::ModelConfig& config);
// The model's tensors under their Hugging Face names, in HF layout (host copies).
std::vector<std::pair<std::string, Tensor>> hf_tensors(const TrainModel& model);
// Writes folder/config.json and folder/model.safetensors; `tokenizer` ("bytes", a
// tokenizer.json path, or empty for none) adds folder/tokenizer.json.
void export_hf(const TrainModel& model, const std::string& folder, const std::string& tokenizer = "");
// tokenizer.json text of the bytes tokenizer (byte b is token b, end-of-document 256): a
// byte-level BPE without merges.
std::string byte_tokenizer_json();

}  // namespace anvil::train
