#pragma once
// The tokenizer `anvil data prepare` encodes with: "bytes" (one token per byte, 0..255,
// end-of-document 256, vocabulary 257: needs no vocabulary file) or a BPE tokenizer from
// a tokenizer.json or a GGUF file.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::train {

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // Appends the ids of `text` (no BOS/EOS). Safe to call from many threads at once.
  virtual void encode_append(std::string_view text, std::vector<int32_t>& ids) const = 0;
  // The bytes of the ids (for samples in the training log).
  [[nodiscard]] virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  [[nodiscard]] virtual int64_t vocab_size() const = 0;
  [[nodiscard]] virtual int32_t eos_id() const = 0;
  // "bytes" or the file it came from (recorded in the dataset's meta.json).
  [[nodiscard]] virtual std::string name() const = 0;
};

// "bytes", a tokenizer.json, or a .gguf file; throws anvil::Error when the file has no
// end-of-sequence token.
std::unique_ptr<TextTokenizer> make_text_tokenizer(const std::string& spec);

}  // namespace anvil::train
