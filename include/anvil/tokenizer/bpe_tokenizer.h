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
#include "anvil/tokenizer/tokenizer.h"

namespace anvil::io {
class GgufFile;
}

namespace anvil::tokenizer {

class BpeTokenizer final : public Tokenizer {
 public:
  // Reads tokenizer.ggml.{model,pre,tokens,token_type,merges,bos_token_id,eos_token_id,
  // add_bos_token}. Throws anvil::Error naming the file and key for anything missing or unsupported.
  static BpeTokenizer from_gguf(const io::GgufFile& file);
  static BpeTokenizer from_gguf_file(const std::string& path);
  // Reads a tokenizer.json; `name` is used in errors.
  static BpeTokenizer from_hf_json(std::string_view json_text, const std::string& name = "tokenizer.json");
  static BpeTokenizer from_hf_json_file(const std::string& path);

  void encode_append(std::string_view text, std::vector<int32_t>& ids,
                     const EncodeOptions& options = {}) const override;
  [[nodiscard]] std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const override;

  [[nodiscard]] int32_t vocab_size() const override;
  [[nodiscard]] std::string_view token_bytes(int32_t id) const override;
  [[nodiscard]] TokenKind token_kind(int32_t id) const override;
  [[nodiscard]] std::optional<int32_t> find_token(std::string_view bytes) const override;
  [[nodiscard]] std::optional<int32_t> bos_id() const override;
  [[nodiscard]] std::optional<int32_t> eos_id() const override;
  [[nodiscard]] bool add_bos_by_default() const override;
  [[nodiscard]] bool add_eos_by_default() const override;
  [[nodiscard]] bool strips_leading_space() const override { return false; }
  // One line for logs: source, vocabulary and merge counts, pre-tokenizer, normalizer.
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] std::shared_ptr<const Tokenizer> clone() const override;
  [[nodiscard]] const PreTokenizer& pre_tokenizer() const;

  // Internal: the loaders build tokenizers through this.
  struct Impl;
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace anvil::tokenizer
