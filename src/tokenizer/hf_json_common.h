#pragma once
// Pieces of tokenizer.json parsing shared by the byte-level BPE and SentencePiece loaders.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "added_tokens.h"

namespace anvil::tokenizer {
class BpeTokenizer;
class SpmTokenizer;
}  // namespace anvil::tokenizer

namespace anvil::tokenizer::hf_json {

using nlohmann::json;

// Errors name the file and the JSON path of the offending field.
struct Context {
  const std::string& source;
  [[noreturn]] void fail(const std::string& where, const std::string& message) const;
  const json& field(const json& object, const std::string& where, const char* key) const;
  std::string string_field(const json& object, const std::string& where, const char* key) const;
  // A boolean field, `fallback` when absent or null.
  bool flag(const json& object, const char* key, bool fallback) const;
};

// What the post-processor adds around a single sequence.
struct PostProcessing {
  std::optional<int32_t> bos;  // the special token a TemplateProcessing puts first
  std::optional<int32_t> eos;  // ... and last
};

// Parses `json_text`; throws anvil::Error naming `name` when it is not JSON.
json parse(std::string_view json_text, const std::string& name);
// The contents of the file at `path`; throws anvil::Error when it cannot be read.
std::string read_text_file(const std::string& path);
// root.added_tokens with their flags (missing flags take HF's AddedToken defaults).
std::vector<AddedToken> read_added_tokens(const Context& context, const json& root);

// model.vocab's ids by text, and the vocabulary size they and the added tokens span. Every id
// must be a non-negative integer below a bound derived from the entry counts: ids are dense
// in practice, and the bound stops a corrupt file from sizing tables without limit.
struct VocabIds {
  std::unordered_map<std::string, int32_t> ids;
  int64_t size = 0;
};
VocabIds read_vocab_ids(const Context& context, const json& root, const std::vector<AddedToken>& added);
// One merge of model.merges by token ids: left + right -> merged.
struct MergeIds {
  int32_t left;
  int32_t right;
  int32_t merged;
};
// model.merges ("a b" strings or ["a", "b"] pairs) in rank order, resolved against the
// vocabulary's ids by token text; fails naming a merge whose tokens are not in it.
std::vector<MergeIds> read_merge_ids(const Context& context, const json& model,
                                     const std::unordered_map<std::string, int32_t>& ids);
// BOS / EOS from a TemplateProcessing post-processor (possibly inside a Sequence).
PostProcessing read_post_processor(const json& node);
// Throws unless model.type is BPE without dropout, subword prefix or word suffix.
void check_plain_bpe(const Context& context, const json& model);

// The loaders, from parsed JSON (load_tokenizer parses once, then picks one).
BpeTokenizer bpe_tokenizer_from_json(const json& root, const std::string& name);
SpmTokenizer spm_tokenizer_from_json(const json& root, const std::string& name);
// Whether `root` describes SentencePiece-style BPE: byte fallback, a Metaspace pre-tokenizer or
// a normalizer that writes spaces as "▁".
bool is_sentencepiece_style(const json& root);

}  // namespace anvil::tokenizer::hf_json
