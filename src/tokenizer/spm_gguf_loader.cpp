// SpmTokenizer::from_gguf: the tokenizer.ggml.* metadata llama.cpp's converter writes for
// SentencePiece models (tokenizer.ggml.model == "llama"). Merges are not stored: as llama.cpp
// and sentencepiece, two adjacent symbols merge when their concatenation is a token, the token
// with the highest score first. The pair table is derived here once from the vocabulary.
#include <algorithm>
#include <numeric>
#include <string>
#include <unordered_map>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/tokenizer/spm_tokenizer.h"
#include "spm_spec.h"

namespace anvil::tokenizer {
namespace {

// llama_token_type values in tokenizer.ggml.token_type.
enum GgufTokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::optional<int32_t> optional_id(const io::GgufFile& file, const std::string& key) {
  const io::GgufValue* value = file.find(key);
  if (value == nullptr) return std::nullopt;
  return static_cast<int32_t>(value->as_int());
}

bool optional_flag(const io::GgufFile& file, const std::string& key, bool fallback) {
  const io::GgufValue* value = file.find(key);
  return value != nullptr ? value->as_bool() : fallback;
}

TokenKind kind_of(int64_t type) {
  switch (type) {
    case kUnknown:
    case kControl:
      return TokenKind::Special;
    case kUserDefined:
      return TokenKind::UserDefined;
    case kUnused:
      return TokenKind::Unused;
    case kByte:
      return TokenKind::Byte;
    default:
      return TokenKind::Normal;
  }
}

// Fills the per-id vectors of `spec` and returns the scores (0 when the file has none).
std::vector<double> read_tokens(const io::GgufFile& file, SpmSpec& spec) {
  const io::GgufArray& tokens = file.get("tokenizer.ggml.tokens").as_array();
  const io::GgufValue* types = file.find("tokenizer.ggml.token_type");
  const io::GgufValue* scores = file.find("tokenizer.ggml.scores");
  for (const auto& [value, key] : {std::pair{types, "token_type"}, std::pair{scores, "scores"}}) {
    if (value != nullptr && value->as_array().items.size() != tokens.items.size()) {
      throw make_error("tokenizer ", file.path(), ": tokenizer.ggml.", key, " has ", value->as_array().items.size(),
                       " entries for ", tokens.items.size(), " tokens");
    }
  }
  std::vector<double> token_scores(tokens.items.size(), 0.0);
  for (size_t id = 0; id < tokens.items.size(); ++id) {
    const std::string& text = spec.token_texts.emplace_back(tokens.items[id].as_string());
    const TokenKind kind = kind_of(types != nullptr ? types->as_array().items[id].as_int() : kNormal);
    spec.token_kinds.push_back(kind);
    // sentencepiece starts from and merges into normal and user-defined pieces only.
    spec.in_bpe_vocab.push_back(kind == TokenKind::Normal || kind == TokenKind::UserDefined ? 1 : 0);
    if (scores != nullptr) token_scores[id] = scores->as_array().items[id].as_float();
    if (kind == TokenKind::Special || kind == TokenKind::UserDefined) {
      spec.added_tokens.push_back({static_cast<int32_t>(id), text, kind == TokenKind::Special});
    }
  }
  return token_scores;
}

// Every (left, right) -> merged pair of tokens whose texts concatenate to a mergeable token, ranked
// by the merged token's score (best first; equal scores share a rank).
void derive_merges(const std::vector<double>& scores, SpmSpec& spec) {
  std::unordered_map<std::string_view, int32_t> ids;
  for (size_t id = 0; id < spec.token_texts.size(); ++id) {
    if (spec.in_bpe_vocab[id] != 0) ids.try_emplace(spec.token_texts[id], static_cast<int32_t>(id));
  }
  std::vector<int32_t> order(spec.token_texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return scores[static_cast<size_t>(a)] > scores[static_cast<size_t>(b)];
  });
  int32_t rank = -1;
  for (size_t position = 0; position < order.size(); ++position) {
    const int32_t merged = order[position];
    if (position == 0 || scores[static_cast<size_t>(merged)] != scores[static_cast<size_t>(order[position - 1])])
      ++rank;
    const std::string_view text = spec.token_texts[static_cast<size_t>(merged)];
    if (spec.in_bpe_vocab[static_cast<size_t>(merged)] == 0 || ids.at(text) != merged) continue;
    for (size_t cut = 1; cut < text.size(); ++cut) {
      if ((static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const auto left = ids.find(text.substr(0, cut));
      const auto right = ids.find(text.substr(cut));
      if (left != ids.end() && right != ids.end()) spec.merges.push_back({left->second, right->second, merged, rank});
    }
  }
}

}  // namespace

SpmTokenizer SpmTokenizer::from_gguf(const io::GgufFile& file) {
  const std::string& model = file.get("tokenizer.ggml.model").as_string();
  if (model != "llama") {
    throw make_error("tokenizer ", file.path(), ": tokenizer.ggml.model '", model,
                     "' is not SentencePiece BPE ('llama'); use load_tokenizer to pick the tokenizer");
  }
  SpmSpec spec;
  spec.source = file.path();
  const std::vector<double> scores = read_tokens(file, spec);
  derive_merges(scores, spec);
  spec.merge_order = "score";
  // llama.cpp: a space goes before the text and after every special token (add_space_prefix,
  // default true), spaces become "▁", and detokenizing drops the first space again.
  spec.prepend_space = optional_flag(file, "tokenizer.ggml.add_space_prefix", true);
  spec.escape_spaces = true;
  spec.strip_leading_space = spec.prepend_space;
  spec.bos = optional_id(file, "tokenizer.ggml.bos_token_id");
  spec.eos = optional_id(file, "tokenizer.ggml.eos_token_id");
  spec.unknown = optional_id(file, "tokenizer.ggml.unknown_token_id");
  spec.add_bos = optional_flag(file, "tokenizer.ggml.add_bos_token", true);
  spec.add_eos = optional_flag(file, "tokenizer.ggml.add_eos_token", false);
  if (spec.add_bos && !spec.bos) spec.add_bos = false;
  if (spec.add_eos && !spec.eos) spec.add_eos = false;
  return build_spm_tokenizer(std::move(spec));
}

SpmTokenizer SpmTokenizer::from_gguf_file(const std::string& path) { return from_gguf(io::GgufFile::open(path)); }

}  // namespace anvil::tokenizer
