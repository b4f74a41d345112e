#pragma once
// `anvil info FILE_OR_DIR`: what a model file holds.
#include <string>

namespace anvil::cli {

// Prints architecture, hyper-parameters, tokenizer summary and the tensor table of a
// GGUF file, a safetensors file, or a Hugging Face folder (config.json + safetensors).
int run_info(const std::string& path, bool all_tensors);

}  // namespace anvil::cli
