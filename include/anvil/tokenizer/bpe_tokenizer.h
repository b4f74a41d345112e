#pragma once
// Byte-level BPE tokenizer of the GPT-2 family (GPT-2, Llama 3, Qwen2, SmolLM2, StarCoder...),
// loaded from GGUF metadata (tokenizer.ggml.model == "gpt2") or a Hugging Face tokenizer.json
// (model.type "BPE" with a ByteLevel pre-tokenizer). Encoding reproduces HF `tokenizers`
// token for token: added/special tokens are cut out first, the rest is normalized (NFC for
// Qwen2), pre-tokenized by the family's split pattern, and each piece is BPE-merged by rank.
// A tokenizer is an immutable shared handle: cheap to copy, safe to use from many threads.
// Character classes come from utf8proc (Unicode 15.0 in Debian 12's libutf8proc 2.8): text with
// characters assigned by later Unicode versions may split differently from HF.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anvil/tokenizer/pre_tokenizer.h"

namespace anvil::io {
class GgufFile;
}

namespace anvil::tokenizer {

// What encode does with ill-formed UTF-8 in its input (HF's Python API cannot even take it).
enum class InvalidUtf8 : uint8_t {
  // Keep the bytes: each maximal ill-formed subpart counts as one character that is neither
  // letter, number nor space, and BPE encodes its raw bytes, so decode(encode(x)) == x for any
  // bytes x (when the vocabulary has a token for every byte; bytes without one are dropped).
  PassThrough,
  // Replace each maximal ill-formed subpart by U+FFFD first, as Python's
  // bytes.decode("utf-8", errors="replace") does; the ids then equal HF's for that string.
  Replace,
};

struct EncodeOptions {
  bool add_bos = false;       // prepend the BOS token (see BpeTokenizer::add_bos_by_default)
  bool parse_special = true;  // match special tokens in the text; false encodes their text like any other
  InvalidUtf8 invalid_utf8 = InvalidUtf8::PassThrough;
};

struct DecodeOptions {
  bool skip_special = false;  // leave out special (control) tokens
};

enum class TokenKind : uint8_t {
  Normal,       // a BPE vocabulary token
  Special,      // control token (BOS, EOS, <|im_start|>...): matched in text only with parse_special
  UserDefined,  // added token that is not special: always matched in text
  Unused,       // an id with no token (gap in the vocabulary, padding entry)
};

class BpeTokenizer {
 public:
  // Reads tokenizer.ggml.{model,pre,tokens,token_type,merges,bos_token_id,eos_token_id,
  // add_bos_token}. Throws anvil::Error naming the file and key for anything missing or unsupported.
  static BpeTokenizer from_gguf(const io::GgufFile& file);
  static BpeTokenizer from_gguf_file(const std::string& path);
  // Reads a tokenizer.json; `name` is used in errors.
  static BpeTokenizer from_hf_json(std::string_view json_text, const std::string& name = "tokenizer.json");
  static BpeTokenizer from_hf_json_file(const std::string& path);

  // Token ids of `text`.
  [[nodiscard]] std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends the token ids of `text` to `ids`.
  void encode_append(std::string_view text, std::vector<int32_t>& ids, const EncodeOptions& options = {}) const;
  // The bytes the tokens stand for, concatenated (not necessarily valid UTF-8: a character may
  // be split across tokens; StreamingDecoder or replace-on-decode handles that).
  [[nodiscard]] std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const;

  [[nodiscard]] int32_t vocab_size() const;
  // The bytes token `id` decodes to; throws anvil::Error for an id outside [0, vocab_size).
  [[nodiscard]] std::string_view token_bytes(int32_t id) const;
  [[nodiscard]] TokenKind token_kind(int32_t id) const;
  // The id of the added token with this content, else of the vocabulary token with these bytes.
  [[nodiscard]] std::optional<int32_t> find_token(std::string_view bytes) const;
  [[nodiscard]] std::optional<int32_t> bos_id() const;
  [[nodiscard]] std::optional<int32_t> eos_id() const;
  // Whether the model expects BOS first (GGUF add_bos_token, or HF's TemplateProcessing post-processor).
  [[nodiscard]] bool add_bos_by_default() const;
  [[nodiscard]] const PreTokenizer& pre_tokenizer() const;
  // One line for logs: source, vocabulary and merge counts, pre-tokenizer, normalizer.
  [[nodiscard]] std::string describe() const;

  // Internal: the loaders build tokenizers through this.
  struct Impl;
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace anvil::tokenizer
