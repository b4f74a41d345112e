// load_model: model + tokenizer + chat template from any of the supported layouts.
#include "loaded_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"

namespace anvil::cli {
namespace {

namespace fs = std::filesystem;

// Tokens that end generation besides EOS, by their text (as llama.cpp finds EOT/EOG tokens).
constexpr const char* kEndOfTurnTexts[] = {"<|im_end|>",    "<|eot_id|>", "<|end|>",         "<end_of_turn>",
                                           "<|endoftext|>", "<EOT>",      "<|end_of_text|>", "<|return|>"};

std::string read_text(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  ANVIL_CHECK(stream.good(), "cannot read '", path.string(), "'");
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

// The chat template of a Hugging Face folder: chat_template.jinja, else tokenizer_config.json's
// "chat_template" (a string, or a list of {name, template} where "default" is used).
std::optional<std::string> hf_chat_template(const fs::path& folder) {
  if (fs::exists(folder / "chat_template.jinja")) return read_text(folder / "chat_template.jinja");
  const fs::path config_path = folder / "tokenizer_config.json";
  if (!fs::exists(config_path)) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text(config_path));
  } catch (const nlohmann::json::exception& error) {
    throw make_error("'", config_path.string(), "' is not valid JSON: ", error.what());
  }
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  ANVIL_CHECK(found->is_array(), "'", config_path.string(), "': chat_template must be a string or a list");
  for (const auto& entry : *found) {
    if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
        entry["template"].is_string()) {
      return entry["template"].get<std::string>();
    }
  }
  return std::nullopt;
}

// The chat template beside the tokenizer: GGUF metadata, or the Hugging Face folder's files.
std::optional<std::string> chat_template_of(const fs::path& path) {
  if (fs::is_directory(path)) return hf_chat_template(path);
  if (path.extension() == ".safetensors") return hf_chat_template(path.parent_path());
  const io::GgufFile file = io::GgufFile::open(path.string());
  const io::GgufValue* chat_template = file.find("tokenizer.chat_template");
  return chat_template != nullptr ? std::optional<std::string>(chat_template->as_string()) : std::nullopt;
}

std::vector<int32_t> end_of_generation_tokens(const tokenizer::Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  const auto add = [&ids](std::optional<int32_t> id) {
    if (id && std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  };
  add(tokenizer.eos_id());
  for (const char* text : kEndOfTurnTexts) {
    const std::optional<int32_t> id = tokenizer.find_token(text);
    // Only control tokens: a plain vocabulary entry spelling "<|end|>" is ordinary text.
    if (id && tokenizer.token_kind(*id) != tokenizer::TokenKind::Normal) add(id);
  }
  return ids;
}

}  // namespace

LoadedModel load_model(Ctx& ctx, const std::string& path, const std::string& device) {
  ANVIL_CHECK(fs::exists(path), "model '", path, "' does not exist");
  ANVIL_CHECK(device == "cpu" || ctx.has_cuda(), "--device ", device,
              ": no CUDA device is available (this build has no CUDA, or the machine has no usable GPU)");
  const Device target = device == "cpu" ? Device::cpu() : Device::cuda(0);
  const auto start = std::chrono::steady_clock::now();
  std::fprintf(stderr, "anvil: loading %s on %s\n", path.c_str(), device_string(target).c_str());
  std::unique_ptr<model::CausalLM> lm = model::load_causal_lm(ctx, path, target);
  const fs::path tokenizer_path =
      fs::path(path).extension() == ".safetensors" ? fs::path(path).parent_path() : fs::path(path);
  LoadedModel loaded{std::move(lm), tokenizer::load_tokenizer(tokenizer_path.string()), chat_template_of(path), {}};
  ANVIL_CHECK(loaded.tokenizer->vocab_size() <= loaded.model->config().vocab_size, "'", path, "': the tokenizer has ",
              loaded.tokenizer->vocab_size(), " tokens, more than the model's vocabulary of ",
              loaded.model->config().vocab_size);
  loaded.end_of_generation = end_of_generation_tokens(*loaded.tokenizer);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const model::ModelConfig& config = loaded.model->config();
  std::fprintf(stderr,
               "anvil: loaded %s in %.2f s: %lld layers, hidden %lld, %lld/%lld heads, vocab %lld, context %lld; "
               "chat template: %s\n",
               model::architecture_name(config.architecture), seconds, static_cast<long long>(config.num_layers),
               static_cast<long long>(config.hidden_size), static_cast<long long>(config.num_heads),
               static_cast<long long>(config.num_kv_heads), static_cast<long long>(config.vocab_size),
               static_cast<long long>(config.max_position), loaded.chat_template ? "yes" : "no");
  return loaded;
}

int64_t context_size(const model::ModelConfig& config, int64_t requested) {
  constexpr int64_t kDefaultContext = 4096;
  ANVIL_CHECK(requested >= 0, "--ctx-size must be >= 0, got ", requested);
  ANVIL_CHECK(requested <= config.max_position, "--ctx-size ", requested, " is larger than the model's context of ",
              config.max_position, " tokens");
  return requested > 0 ? requested : std::min(config.max_position, kDefaultContext);
}

}  // namespace anvil::cli
