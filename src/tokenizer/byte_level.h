#pragma once
// GPT-2's byte-level alphabet: every byte has a printable stand-in character (printable
// Latin-1 bytes stand for themselves, the others map to U+0100..U+0143), so byte-level
// vocabularies store token bytes as text: " the" is "Ġthe".
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace anvil::tokenizer {

namespace detail {
constexpr bool byte_is_printable(unsigned byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}
constexpr std::array<uint16_t, 256> make_byte_to_code_point() {
  std::array<uint16_t, 256> table{};
  uint16_t next = 256;
  for (unsigned byte = 0; byte < 256; ++byte) {
    table[byte] = byte_is_printable(byte) ? static_cast<uint16_t>(byte) : next++;
  }
  return table;
}
}  // namespace detail

inline constexpr std::array<uint16_t, 256> kByteToCodePoint = detail::make_byte_to_code_point();

// The bytes a byte-level token text stands for, or nullopt when a character of `text` is
// not in the alphabet (or `text` is not well-formed UTF-8).
std::optional<std::string> byte_level_decode(std::string_view text);
// The byte-level text of `bytes` ("Ġthe" for " the").
std::string byte_level_encode(std::string_view bytes);

}  // namespace anvil::tokenizer
