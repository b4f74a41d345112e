// BpeTokenizer::from_gguf: the tokenizer.ggml.* metadata llama.cpp's converter writes for
// byte-level BPE models (tokenizer.ggml.model == "gpt2").
#include <string>
#include <unordered_map>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "byte_level.h"
#include "tokenizer_spec.h"

namespace anvil::tokenizer {
namespace {

// llama_token_type values in tokenizer.ggml.token_type.
enum GgufTokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::optional<int32_t> optional_id(const io::GgufFile& file, const std::string& key) {
  const io::GgufValue* value = file.find(key);
  if (value == nullptr) return std::nullopt;
  return static_cast<int32_t>(value->as_int());
}

// Pre-tokenizer families that also carry HF settings beyond the split pattern.
bool ignores_merges(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "falcon3";
}
bool uses_nfc(std::string_view pre) { return pre == "qwen2" || pre == "deepseek-r1-qwen"; }

// Fills the per-id vectors of `spec` and returns the token texts as stored (for the merges).
std::vector<std::string> read_tokens(const io::GgufFile& file, TokenizerSpec& spec) {
  const io::GgufArray& tokens = file.get("tokenizer.ggml.tokens").as_array();
  const io::GgufValue* types_value = file.find("tokenizer.ggml.token_type");
  const io::GgufArray* types = types_value != nullptr ? &types_value->as_array() : nullptr;
  if (types != nullptr && types->items.size() != tokens.items.size()) {
    throw make_error("tokenizer ", file.path(), ": tokenizer.ggml.token_type has ", types->items.size(),
                     " entries for ", tokens.items.size(), " tokens");
  }
  std::vector<std::string> texts;
  texts.reserve(tokens.items.size());
  for (size_t id = 0; id < tokens.items.size(); ++id) {
    const std::string& text = texts.emplace_back(tokens.items[id].as_string());
    const int64_t type = types != nullptr ? types->items[id].as_int() : kNormal;
    TokenKind kind = TokenKind::Normal;
    if (type == kControl) kind = TokenKind::Special;
    if (type == kUserDefined) kind = TokenKind::UserDefined;
    if (type == kUnused) kind = TokenKind::Unused;
    std::optional<std::string> bytes = byte_level_decode(text);
    const bool added = kind == TokenKind::Special || kind == TokenKind::UserDefined;
    if (added || !bytes) {
      spec.token_bytes.push_back(text);  // added tokens are stored as plain text
    } else {
      spec.token_bytes.push_back(std::move(*bytes));
    }
    spec.token_kinds.push_back(kind);
    spec.in_bpe_vocab.push_back(kind != TokenKind::Unused && bytes.has_value() ? 1 : 0);
    if (added) {
      spec.added_tokens.push_back({static_cast<int32_t>(id), text, kind == TokenKind::Special});
    }
  }
  return texts;
}

void read_merges(const io::GgufFile& file, const std::vector<std::string>& token_texts, TokenizerSpec& spec) {
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(token_texts.size());
  for (size_t id = 0; id < token_texts.size(); ++id) ids.try_emplace(token_texts[id], static_cast<int32_t>(id));
  const io::GgufArray& merges = file.get("tokenizer.ggml.merges").as_array();
  spec.merges.reserve(merges.items.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.items.size(); ++rank) {
    const std::string& merge = merges.items[rank].as_string();
    const size_t space = merge.find(' ', 1);
    const auto left = ids.find(std::string_view(merge).substr(0, space));
    const auto right = space == std::string::npos ? ids.end() : ids.find(std::string_view(merge).substr(space + 1));
    joined = space == std::string::npos ? merge : merge.substr(0, space) + merge.substr(space + 1);
    const auto merged = ids.find(joined);
    if (left == ids.end() || right == ids.end() || merged == ids.end()) {
      throw make_error("tokenizer ", file.path(), ": tokenizer.ggml.merges[", rank, "] = '", merge,
                       "' names a token that is not in the vocabulary");
    }
    spec.merges.push_back({left->second, right->second, merged->second});
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_gguf(const io::GgufFile& file) {
  const std::string& model = file.get("tokenizer.ggml.model").as_string();
  if (model != "gpt2") {
    throw make_error("tokenizer ", file.path(), ": tokenizer.ggml.model '", model,
                     "' is not supported (only 'gpt2', byte-level BPE)");
  }
  const io::GgufValue* pre_value = file.find("tokenizer.ggml.pre");
  const std::string pre = pre_value != nullptr ? pre_value->as_string() : "default";
  TokenizerSpec spec;
  spec.source = file.path();
  try {
    spec.pre_tokenizer = PreTokenizer::from_gguf_name(pre);
  } catch (const Error& error) {
    throw error.with("file", file.path());
  }
  spec.normalizer = uses_nfc(pre) ? Normalizer::Nfc : Normalizer::None;
  spec.ignore_merges = ignores_merges(pre);
  const std::vector<std::string> texts = read_tokens(file, spec);
  read_merges(file, texts, spec);
  spec.bos = optional_id(file, "tokenizer.ggml.bos_token_id");
  spec.eos = optional_id(file, "tokenizer.ggml.eos_token_id");
  const io::GgufValue* add_bos = file.find("tokenizer.ggml.add_bos_token");
  spec.add_bos = add_bos != nullptr && add_bos->as_bool();
  const io::GgufValue* add_eos = file.find("tokenizer.ggml.add_eos_token");
  spec.add_eos = add_eos != nullptr && add_eos->as_bool();
  // tokenizer.ggml.unknown_token_id is not used: byte-level BPE drops bytes it has no token
  // for (as HF and llama.cpp do) rather than emitting <unk>.
  return build_tokenizer(std::move(spec));
}

BpeTokenizer BpeTokenizer::from_gguf_file(const std::string& path) { return from_gguf(io::GgufFile::open(path)); }

}  // namespace anvil::tokenizer
