#pragma once
// Unicode normalization of the text between added tokens (HF's "NFC" normalizer, used by Qwen2).
#include <string>
#include <string_view>

namespace anvil::tokenizer {

// Writes the NFC form of `text` to `out` (utf8proc). Ill-formed subparts are copied unchanged
// and the well-formed runs between them normalized on their own.
void normalize_nfc(std::string_view text, std::string& out);

}  // namespace anvil::tokenizer
