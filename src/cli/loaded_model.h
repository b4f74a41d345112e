#pragma once
// What the generation commands load from a model path: the model, its tokenizer, its chat
// template (if it ships one) and the tokens that end a turn.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anvil/model/causal_lm.h"
#include "anvil/tokenizer/tokenizer.h"

namespace anvil::cli {

struct LoadedModel {
  std::unique_ptr<model::CausalLM> model;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::optional<std::string> chat_template;  // Jinja source, when the files carry one
  std::vector<int32_t> end_of_generation;    // EOS and end-of-turn ids found in the vocabulary
};

// Loads a GGUF file, a safetensors file with config.json and tokenizer.json beside it, or a
// Hugging Face folder; prints what it loaded and how long it took to stderr. Throws
// anvil::Error naming the path when something is missing or malformed. `device` is "cpu"
// or "cuda" (the first GPU; a clear error when this build or machine has none).
LoadedModel load_model(Ctx& ctx, const std::string& path, const std::string& device = "cpu");

// The context size to use: `requested` when > 0, else min(max_position, 4096); throws when
// `requested` is larger than the model's max_position.
int64_t context_size(const model::ModelConfig& config, int64_t requested);

}  // namespace anvil::cli
