// TextTokenizer: bytes, or a BPE tokenizer from tokenizer.json / GGUF.
#include "anvil/train/text_tokenizer.h"

#include "anvil/core/error.h"
#include "anvil/tokenizer/bpe_tokenizer.h"

namespace anvil::train {

namespace {

class ByteTokenizer final : public TextTokenizer {
 public:
  void encode_append(std::string_view text, std::vector<int32_t>& ids) const override {
    for (const char c : text) ids.push_back(static_cast<uint8_t>(c));
  }
  [[nodiscard]] std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (const int32_t id : ids) {
      if (id >= 0 && id < 256) text.push_back(static_cast<char>(id));
    }
    return text;
  }
  [[nodiscard]] int64_t vocab_size() const override { return 257; }
  [[nodiscard]] int32_t eos_id() const override { return 256; }
  [[nodiscard]] std::string name() const override { return "bytes"; }
};

class BpeTextTokenizer final : public TextTokenizer {
 public:
  BpeTextTokenizer(tokenizer::BpeTokenizer bpe, std::string path) : bpe_(std::move(bpe)), path_(std::move(path)) {
    std::optional<int32_t> eos = bpe_.eos_id();
    // tokenizer.json names no EOS (HF keeps it in tokenizer_config.json): the usual names.
    for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<eos>"}) {
      if (!eos.has_value()) eos = bpe_.find_token(name);
    }
    ANVIL_CHECK(eos.has_value(), "tokenizer '", path_, "' has no end-of-sequence token to separate documents");
    eos_ = *eos;
  }
  void encode_append(std::string_view text, std::vector<int32_t>& ids) const override {
    tokenizer::EncodeOptions options;
    options.parse_special = false;  // corpus text that looks like a control token is text
    bpe_.encode_append(text, ids, options);
  }
  [[nodiscard]] std::string decode(const std::vector<int32_t>& ids) const override { return bpe_.decode(ids); }
  [[nodiscard]] int64_t vocab_size() const override { return bpe_.vocab_size(); }
  [[nodiscard]] int32_t eos_id() const override { return eos_; }
  [[nodiscard]] std::string name() const override { return path_; }

 private:
  tokenizer::BpeTokenizer bpe_;
  std::string path_;
  int32_t eos_ = 0;
};

}  // namespace

std::unique_ptr<TextTokenizer> make_text_tokenizer(const std::string& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  if (spec.ends_with(".gguf")) {
    return std::make_unique<BpeTextTokenizer>(tokenizer::BpeTokenizer::from_gguf_file(spec), spec);
  }
  ANVIL_CHECK(spec.ends_with(".json"), "tokenizer '", spec, "': expected \"bytes\", a tokenizer.json or a .gguf file");
  return std::make_unique<BpeTextTokenizer>(tokenizer::BpeTokenizer::from_hf_json_file(spec), spec);
}

}  // namespace anvil::train
