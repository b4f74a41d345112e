#pragma once
// Incremental detokenisation for generation: tokens arrive one at a time and a UTF-8
// character may be split across them (byte-level BPE tokens are arbitrary byte strings).
// The decoder emits only complete, well-formed UTF-8: it holds back the bytes of a character
// still being completed, and replaces ill-formed sequences by U+FFFD exactly as decoding the
// whole byte string at once with Python's errors="replace" (or HF's decode) would. For
// SentencePiece tokenizers it drops the space at the start of the stream, as decode does.
#include <cstdint>
#include <memory>
#include <string>

#include "anvil/tokenizer/tokenizer.h"

namespace anvil::tokenizer {

class StreamingDecoder {
 public:
  // Keeps its own handle on `tokenizer` (tokenizers are shared, immutable handles).
  explicit StreamingDecoder(const Tokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(tokenizer.clone()), options_(options) {}

  // Adds token `id`; returns the text it completes (possibly empty). Throws for a bad id.
  std::string push(int32_t id);
  // Ends the stream: returns U+FFFD for a character left unfinished (or ""), and resets
  // (the next token starts a new stream).
  std::string finish();
  // Bytes held back waiting for the rest of a character (at most 3).
  [[nodiscard]] size_t pending_bytes() const { return pending_.size(); }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  DecodeOptions options_;
  std::string pending_;
  bool at_start_ = true;  // nothing emitted or held back yet
};

}  // namespace anvil::tokenizer
