#include "anvil/tokenizer/streaming_decoder.h"

#include "utf8.h"

namespace anvil::tokenizer {

std::string StreamingDecoder::push(int32_t id) {
  std::string_view bytes = tokenizer_->token_bytes(id);
  if (options_.skip_special && tokenizer_->token_kind(id) == TokenKind::Special) return {};
  if (at_start_ && !bytes.empty()) {
    if (tokenizer_->strips_leading_space() && bytes[0] == ' ') bytes.remove_prefix(1);
    at_start_ = false;
  }
  pending_.append(bytes);
  std::string text;
  const size_t consumed = append_lossy_utf8(pending_, /*final=*/false, text);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamingDecoder::finish() {
  std::string text;
  append_lossy_utf8(pending_, /*final=*/true, text);
  pending_.clear();
  at_start_ = true;
  return text;
}

}  // namespace anvil::tokenizer
