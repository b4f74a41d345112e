#pragma once
// UTF-8 decoding by the Unicode well-formedness table (no overlongs, no surrogates, nothing
// above U+10FFFF). An ill-formed sequence is reported as its "maximal subpart" (Unicode 15,
// section 3.9), the unit that Python's errors="replace" and Rust's from_utf8_lossy turn into
// one U+FFFD, so our replacements match theirs byte for byte.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace anvil::tokenizer {

inline constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFFU;
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

struct Utf8Char {
  uint32_t code_point = kInvalidCodePoint;  // kInvalidCodePoint when ill-formed
  uint32_t length = 1;                      // bytes: the character, or the maximal ill-formed subpart (>= 1)
  bool truncated = false;                   // ill-formed only because the input ended mid-character
};

// Decodes the character at the start of `data` (size >= 1).
Utf8Char decode_utf8_slow(const unsigned char* data, size_t size);
inline Utf8Char decode_utf8(const char* data, size_t size) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  if (bytes[0] < 0x80) return {bytes[0], 1, false};
  return decode_utf8_slow(bytes, size);
}

// True when `text` is entirely well-formed UTF-8.
bool is_valid_utf8(std::string_view text);
// `text` with every maximal ill-formed subpart replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view text);
// Appends the UTF-8 encoding of `code_point` (<= U+10FFFF).
void append_utf8(std::string& out, uint32_t code_point);

// Appends the well-formed prefix of `bytes` to `out`, with ill-formed subparts replaced by
// U+FFFD, and returns how many bytes it consumed. Unless `final`, a character cut off by the
// end of `bytes` is left unconsumed (the caller keeps it for the next call); with `final`
// it becomes U+FFFD.
size_t append_lossy_utf8(std::string_view bytes, bool final, std::string& out);

}  // namespace anvil::tokenizer
