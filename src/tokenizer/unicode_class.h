#pragma once
// The character classes the split patterns distinguish, from Unicode general categories
// (utf8proc): \p{L} letters, \p{N} numbers, \s whitespace, and everything else.
#include <array>
#include <cstddef>
#include <cstdint>

#include "utf8.h"

namespace anvil::tokenizer {

enum class CharClass : uint8_t { Letter, Number, Space, Other };

// Class of a non-ASCII code point (kInvalidCodePoint, an ill-formed byte sequence, is Other).
CharClass classify_non_ascii(uint32_t code_point);

namespace detail {
constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> classes{};
  for (size_t c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      classes[c] = CharClass::Letter;
    } else if (c >= '0' && c <= '9') {
      classes[c] = CharClass::Number;
    } else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) {  // U+001C..001F are not White_Space
      classes[c] = CharClass::Space;
    } else {
      classes[c] = CharClass::Other;
    }
  }
  return classes;
}
inline constexpr std::array<CharClass, 128> kAsciiClasses = make_ascii_classes();
}  // namespace detail

inline CharClass classify(uint32_t code_point) {
  return code_point < 128 ? detail::kAsciiClasses[code_point] : classify_non_ascii(code_point);
}

// Unicode White_Space (what \s matches in Oniguruma and Rust's regex and char::is_whitespace).
inline bool is_whitespace(uint32_t code_point) { return classify(code_point) == CharClass::Space; }

// Approximately Rust regex's Unicode \w: letters, marks, decimal and letter numbers,
// connector punctuation, ZWNJ and ZWJ (Other_Alphabetic symbols such as circled letters are not included).
bool is_word_character(uint32_t code_point);

// One decoded character of a text: code point (kInvalidCodePoint for an ill-formed
// subpart, which counts as Other), its byte length and class.
struct TextChar {
  uint32_t code_point;
  uint32_t length;
  CharClass cls;
};

// The character starting at byte `pos` of `text` (pos < end).
inline TextChar char_at(const char* text, size_t pos, size_t end) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  if (byte < 0x80) return {byte, 1, detail::kAsciiClasses[byte]};
  const Utf8Char c = decode_utf8_slow(reinterpret_cast<const unsigned char*>(text) + pos, end - pos);
  return {c.code_point, c.length,
          c.code_point == kInvalidCodePoint ? CharClass::Other : classify_non_ascii(c.code_point)};
}

}  // namespace anvil::tokenizer
