// Tokenizer::encode and load_tokenizer: picks byte-level or SentencePiece BPE for a model file.
#include <filesystem>
#include <fstream>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/tokenizer/spm_tokenizer.h"
#include "anvil/tokenizer/tokenizer.h"
#include "hf_json_common.h"

namespace anvil::tokenizer {
namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  char magic[4] = {};
  stream.read(magic, sizeof(magic));
  return stream.gcount() == 4 && std::string_view(magic, 4) == "GGUF";
}

std::shared_ptr<const Tokenizer> load_gguf(const std::string& path) {
  const io::GgufFile file = io::GgufFile::open(path);
  const std::string& model = file.get("tokenizer.ggml.model").as_string();
  if (model == "gpt2") return std::make_shared<const BpeTokenizer>(BpeTokenizer::from_gguf(file));
  if (model == "llama") return std::make_shared<const SpmTokenizer>(SpmTokenizer::from_gguf(file));
  throw make_error("tokenizer ", path, ": tokenizer.ggml.model '", model,
                   "' is not supported (supported: 'gpt2' byte-level BPE, 'llama' SentencePiece BPE)");
}

std::shared_ptr<const Tokenizer> load_json(const std::string& path) {
  const nlohmann::json root = hf_json::parse(hf_json::read_text_file(path), path);
  if (hf_json::is_sentencepiece_style(root)) {
    return std::make_shared<const SpmTokenizer>(hf_json::spm_tokenizer_from_json(root, path));
  }
  return std::make_shared<const BpeTokenizer>(hf_json::bpe_tokenizer_from_json(root, path));
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  encode_append(text, ids, options);
  return ids;
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    const std::string json_path = (std::filesystem::path(path) / "tokenizer.json").string();
    if (!std::filesystem::exists(json_path, error)) throw make_error("tokenizer: no tokenizer.json in ", path);
    return load_json(json_path);
  }
  if (!std::filesystem::exists(path, error)) throw make_error("tokenizer: no such file ", path);
  return has_gguf_magic(path) ? load_gguf(path) : load_json(path);
}

}  // namespace anvil::tokenizer
