#pragma once
// The interface every tokenizer implements: byte-level BPE (BpeTokenizer: GPT-2, Llama 3,
// Qwen2, SmolLM2...) and SentencePiece-style BPE with byte fallback (SpmTokenizer: Llama 2,
// Mistral...), and load_tokenizer, which picks the right one for a GGUF file or a tokenizer.json.
// Tokenizers are immutable and safe to use from many threads at once.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::tokenizer {

// What encode does with ill-formed UTF-8 in its input (HF's Python API cannot even take it).
enum class InvalidUtf8 : uint8_t {
  // Keep the bytes: each maximal ill-formed subpart counts as one character that is neither
  // letter, number nor space and is encoded as its raw bytes (byte-level BPE merges them,
  // SentencePiece emits byte-fallback tokens), so decode(encode(x)) == x for any bytes x when
  // the vocabulary has a token for every byte (bytes without one are dropped, or become <unk>).
  PassThrough,
  // Replace each maximal ill-formed subpart by U+FFFD first, as Python's
  // bytes.decode("utf-8", errors="replace") does; the ids then equal HF's for that string.
  Replace,
};

struct EncodeOptions {
  bool add_bos = false;       // prepend the BOS token (see Tokenizer::add_bos_by_default)
  bool add_eos = false;       // append the EOS token (see Tokenizer::add_eos_by_default)
  bool parse_special = true;  // match special tokens in the text; false encodes their text like any other
  InvalidUtf8 invalid_utf8 = InvalidUtf8::PassThrough;
};

struct DecodeOptions {
  bool skip_special = false;  // leave out special (control) tokens
};

enum class TokenKind : uint8_t {
  Normal,       // a vocabulary token that BPE produces
  Special,      // control token (BOS, EOS, <|im_start|>, <unk>...): matched in text only with parse_special
  UserDefined,  // added token that is not special: always matched in text
  Unused,       // an id with no token (gap in the vocabulary, padding entry)
  Byte,         // SentencePiece byte-fallback token <0xXX>: stands for one raw byte
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`.
  [[nodiscard]] std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends the token ids of `text` to `ids`.
  virtual void encode_append(std::string_view text, std::vector<int32_t>& ids,
                             const EncodeOptions& options = {}) const = 0;
  // The bytes the tokens stand for, concatenated (not necessarily valid UTF-8: a character may
  // be split across tokens; StreamingDecoder or replace-on-decode handles that). SentencePiece
  // tokenizers drop the space they put in front of the text (see strips_leading_space).
  [[nodiscard]] virtual std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const = 0;

  [[nodiscard]] virtual int32_t vocab_size() const = 0;
  // The bytes token `id` decodes to; throws anvil::Error for an id outside [0, vocab_size).
  [[nodiscard]] virtual std::string_view token_bytes(int32_t id) const = 0;
  [[nodiscard]] virtual TokenKind token_kind(int32_t id) const = 0;
  // The id of the added token with this content, else of the vocabulary token with these bytes.
  [[nodiscard]] virtual std::optional<int32_t> find_token(std::string_view bytes) const = 0;
  [[nodiscard]] virtual std::optional<int32_t> bos_id() const = 0;
  [[nodiscard]] virtual std::optional<int32_t> eos_id() const = 0;
  // Whether the model expects BOS first (GGUF add_bos_token, or HF's TemplateProcessing post-processor).
  [[nodiscard]] virtual bool add_bos_by_default() const = 0;
  // Whether the model expects EOS last (GGUF add_eos_token, or the post-processor).
  [[nodiscard]] virtual bool add_eos_by_default() const = 0;
  // Whether decode drops one space at the start of the decoded text: SentencePiece tokenizers
  // put a space in front of the text when encoding ("Hi" -> "▁Hi") and take it off again.
  [[nodiscard]] virtual bool strips_leading_space() const = 0;
  // One line for logs: source, kind, vocabulary and merge counts, pre-processing.
  [[nodiscard]] virtual std::string describe() const = 0;
  // A heap copy of this handle (tokenizers share their immutable tables, so this is cheap).
  [[nodiscard]] virtual std::shared_ptr<const Tokenizer> clone() const = 0;

 protected:
  // Copying is for the concrete handles only (no slicing through the interface).
  Tokenizer() = default;
  Tokenizer(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;
};

// Loads the tokenizer of a model: a GGUF file (tokenizer.ggml.model "gpt2" -> byte-level BPE,
// "llama" -> SentencePiece BPE), a tokenizer.json, or a folder holding a tokenizer.json (HF
// byte-level BPE, or SentencePiece-style BPE: byte_fallback / Metaspace / "▁" normalizer).
// Throws anvil::Error naming the path for anything missing or unsupported.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path);

}  // namespace anvil::tokenizer
