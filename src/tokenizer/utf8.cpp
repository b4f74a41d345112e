#include "utf8.h"

namespace anvil::tokenizer {

Utf8Char decode_utf8_slow(const unsigned char* data, size_t size) {
  const unsigned char lead = data[0];
  // The lead byte fixes the length and the allowed range of the second byte.
  size_t continuation_count = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  uint32_t code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation_count = 1;
    code_point = lead & 0x1FU;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuation_count = 2;
    code_point = lead & 0x0FU;
    if (lead == 0xE0) low = 0xA0;   // no overlongs
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuation_count = 3;
    code_point = lead & 0x07U;
    if (lead == 0xF0) low = 0x90;   // no overlongs
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return {kInvalidCodePoint, 1, false};  // continuation byte, C0, C1 or F5..FF
  }
  for (size_t index = 1; index <= continuation_count; ++index) {
    if (index >= size) return {kInvalidCodePoint, static_cast<uint32_t>(index), true};
    const unsigned char byte = data[index];
    if (byte < low || byte > high) return {kInvalidCodePoint, static_cast<uint32_t>(index), false};
    code_point = (code_point << 6) | (byte & 0x3FU);
    low = 0x80;
    high = 0xBF;
  }
  return {code_point, static_cast<uint32_t>(continuation_count + 1), false};
}

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Utf8Char c = decode_utf8(text.data() + pos, text.size() - pos);
    if (c.code_point == kInvalidCodePoint) return false;
    pos += c.length;
  }
  return true;
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  append_lossy_utf8(text, /*final=*/true, out);
  return out;
}

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

size_t append_lossy_utf8(std::string_view bytes, bool final, std::string& out) {
  size_t pos = 0;
  size_t clean_begin = 0;  // start of the well-formed run not yet copied
  while (pos < bytes.size()) {
    if (static_cast<unsigned char>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Utf8Char c = decode_utf8(bytes.data() + pos, bytes.size() - pos);
    if (c.code_point != kInvalidCodePoint) {
      pos += c.length;
      continue;
    }
    out.append(bytes.substr(clean_begin, pos - clean_begin));
    if (c.truncated && !final) return pos;
    out.append(kReplacementCharacter);
    pos += c.length;
    clean_begin = pos;
  }
  out.append(bytes.substr(clean_begin, pos - clean_begin));
  return pos;
}

}  // namespace anvil::tokenizer
