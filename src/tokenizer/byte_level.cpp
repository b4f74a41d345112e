#include "byte_level.h"

#include "utf8.h"

namespace anvil::tokenizer {
namespace {

constexpr size_t kAlphabetEnd = 0x144;  // one past the largest stand-in code point

constexpr std::array<int16_t, kAlphabetEnd> make_code_point_to_byte() {
  std::array<int16_t, kAlphabetEnd> table{};
  for (auto& entry : table) entry = -1;
  for (unsigned byte = 0; byte < 256; ++byte) table[kByteToCodePoint[byte]] = static_cast<int16_t>(byte);
  return table;
}
constexpr std::array<int16_t, kAlphabetEnd> kCodePointToByte = make_code_point_to_byte();

}  // namespace

std::optional<std::string> byte_level_decode(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char c = decode_utf8(text.data() + pos, text.size() - pos);
    if (c.code_point >= kAlphabetEnd || kCodePointToByte[c.code_point] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(kCodePointToByte[c.code_point]));
    pos += c.length;
  }
  return bytes;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (const char byte : bytes) append_utf8(text, kByteToCodePoint[static_cast<unsigned char>(byte)]);
  return text;
}

}  // namespace anvil::tokenizer
