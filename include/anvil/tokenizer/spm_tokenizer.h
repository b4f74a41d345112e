#pragma once
// SentencePiece-style BPE tokenizer with byte fallback (Llama 2, Mistral, ...), loaded from GGUF
// metadata (tokenizer.ggml.model == "llama") or a Hugging Face tokenizer.json of that family
// (LlamaTokenizerFast: normalizer Prepend("▁") + Replace(" ", "▁") or a Metaspace pre-tokenizer,
// model BPE with byte_fallback). Encoding: added/special tokens are cut out first; each stretch of
// text between them gets the "▁" prefix (per the file's rule) and has its spaces written as "▁";
// then, starting from one symbol per character, the adjacent pair whose merge ranks best is merged
// until none is left (GGUF: the merged token's score, as llama.cpp and sentencepiece; tokenizer.json:
// the merge list's order, as HF), leftmost first among equals. Characters without a token become
// their UTF-8 bytes' <0xXX> tokens. The ids equal sentencepiece's, llama.cpp's and HF's.
// A tokenizer is an immutable shared handle: cheap to copy, safe to use from many threads.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anvil/tokenizer/tokenizer.h"

namespace anvil::io {
class GgufFile;
}

namespace anvil::tokenizer {

class SpmTokenizer final : public Tokenizer {
 public:
  // Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,
  // unknown_token_id,add_bos_token,add_eos_token,add_space_prefix}. Throws anvil::Error naming the
  // file and key for anything missing or unsupported.
  static SpmTokenizer from_gguf(const io::GgufFile& file);
  static SpmTokenizer from_gguf_file(const std::string& path);
  // Reads a tokenizer.json; `name` is used in errors.
  static SpmTokenizer from_hf_json(std::string_view json_text, const std::string& name = "tokenizer.json");
  static SpmTokenizer from_hf_json_file(const std::string& path);

  void encode_append(std::string_view text, std::vector<int32_t>& ids,
                     const EncodeOptions& options = {}) const override;
  [[nodiscard]] std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const override;

  [[nodiscard]] int32_t vocab_size() const override;
  // " the" for "▁the", the byte itself for <0xXX>, the text of added tokens.
  [[nodiscard]] std::string_view token_bytes(int32_t id) const override;
  [[nodiscard]] TokenKind token_kind(int32_t id) const override;
  [[nodiscard]] std::optional<int32_t> find_token(std::string_view bytes) const override;
  [[nodiscard]] std::optional<int32_t> bos_id() const override;
  [[nodiscard]] std::optional<int32_t> eos_id() const override;
  [[nodiscard]] bool add_bos_by_default() const override;
  [[nodiscard]] bool add_eos_by_default() const override;
  [[nodiscard]] bool strips_leading_space() const override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] std::shared_ptr<const Tokenizer> clone() const override;

  // Internal: the loaders build tokenizers through this.
  struct Impl;
  explicit SpmTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace anvil::tokenizer
