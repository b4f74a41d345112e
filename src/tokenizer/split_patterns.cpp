#include "split_patterns.h"

#include "unicode_class.h"

namespace anvil::tokenizer {
namespace {

bool is_newline(uint32_t code_point) { return code_point == '\r' || code_point == '\n'; }

// End of the run of characters of class `cls` that starts at `pos`.
size_t run_end(const char* text, size_t pos, size_t end, CharClass cls) {
  while (pos < end) {
    const TextChar c = char_at(text, pos, end);
    if (c.cls != cls) break;
    pos += c.length;
  }
  return pos;
}

// Byte length of a contraction ('s 't 're 've 'm 'll 'd) after the apostrophe at `pos`, or 0.
// Case-insensitive matching follows Oniguruma's case folding, where U+017F (long s) is an s.
size_t contraction_length(const char* text, size_t pos, size_t end, bool ignore_case) {
  if (pos >= end) return 0;
  const auto lower = [&](size_t index) {
    const char c = text[index];
    return ignore_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  };
  const char first = lower(pos);
  if (first == 's' || first == 't' || first == 'm' || first == 'd') return 1;
  if (end - pos < 2) return 0;
  if (ignore_case && text[pos] == '\xC5' && text[pos + 1] == '\xBF') return 2;  // U+017F
  const char second = lower(pos + 1);
  if ((first == 'r' || first == 'v') && second == 'e') return 2;
  if (first == 'l' && second == 'l') return 2;
  return 0;
}

// \s+(?!\S)|\s+ at the whitespace character at `begin`: a run of whitespace, less its last
// character when a non-space follows (that character then joins the next piece), unless the
// run is that one character.
size_t whitespace_end(const char* text, size_t begin, size_t end) {
  size_t pos = begin;
  size_t last = begin;  // start of the run's last character
  while (pos < end) {
    const TextChar c = char_at(text, pos, end);
    if (c.cls != CharClass::Space) break;
    last = pos;
    pos += c.length;
  }
  if (pos == end || last == begin) return pos;
  return last;
}

// \s*[\r\n]+|\s+(?!\S)|\s+ : as whitespace_end, but a run containing CR/LF ends after its last one.
size_t whitespace_end_at_newline(const char* text, size_t begin, size_t end) {
  size_t pos = begin;
  size_t last = begin;
  size_t after_newline = 0;
  while (pos < end) {
    const TextChar c = char_at(text, pos, end);
    if (c.cls != CharClass::Space) break;
    if (is_newline(c.code_point)) after_newline = pos + 1;
    last = pos;
    pos += c.length;
  }
  if (after_newline != 0) return after_newline;
  if (pos == end || last == begin) return pos;
  return last;
}

}  // namespace

size_t match_gpt2(const char* text, size_t begin, size_t end) {
  const TextChar c = char_at(text, begin, end);
  if (c.code_point == '\'') {
    if (const size_t length = contraction_length(text, begin + 1, end, false); length != 0) return begin + 1 + length;
  }
  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional space, then a run of one class.
  size_t run_begin = begin;
  TextChar first = c;
  if (c.code_point == ' ' && begin + 1 < end) {
    const TextChar next = char_at(text, begin + 1, end);
    if (next.cls != CharClass::Space) {
      run_begin = begin + 1;
      first = next;
    }
  }
  if (first.cls != CharClass::Space) return run_end(text, run_begin + first.length, end, first.cls);
  return whitespace_end(text, begin, end);
}

size_t match_llama3(const char* text, size_t begin, size_t end, size_t max_digits) {
  const TextChar c = char_at(text, begin, end);
  if (c.code_point == '\'') {
    if (const size_t length = contraction_length(text, begin + 1, end, true); length != 0) return begin + 1 + length;
  }
  const size_t next_pos = begin + c.length;
  if (c.cls == CharClass::Letter) return run_end(text, next_pos, end, CharClass::Letter);
  const bool has_next = next_pos < end;
  const TextChar next = has_next ? char_at(text, next_pos, end) : TextChar{0, 0, CharClass::Space};
  // [^\r\n\p{L}\p{N}]?\p{L}+ with the optional character present.
  if (c.cls != CharClass::Number && !is_newline(c.code_point) && has_next && next.cls == CharClass::Letter) {
    return run_end(text, next_pos + next.length, end, CharClass::Letter);
  }
  if (c.cls == CharClass::Number) {  // \p{N}{1,max_digits}
    size_t pos = next_pos;
    for (size_t count = 1; count < max_digits && pos < end; ++count) {
      const TextChar digit = char_at(text, pos, end);
      if (digit.cls != CharClass::Number) break;
      pos += digit.length;
    }
    return pos;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  if (c.cls == CharClass::Other || (c.code_point == ' ' && has_next && next.cls == CharClass::Other)) {
    size_t pos = run_end(text, c.cls == CharClass::Other ? next_pos : next_pos + next.length, end, CharClass::Other);
    while (pos < end && (text[pos] == '\r' || text[pos] == '\n')) ++pos;
    return pos;
  }
  return whitespace_end_at_newline(text, begin, end);
}

size_t match_digits(const char* text, size_t begin, size_t end, bool individual) {
  const TextChar c = char_at(text, begin, end);
  if (c.cls == CharClass::Number) {
    return individual ? begin + c.length : run_end(text, begin + c.length, end, CharClass::Number);
  }
  size_t pos = begin + c.length;
  while (pos < end) {
    const TextChar next = char_at(text, pos, end);
    if (next.cls == CharClass::Number) break;
    pos += next.length;
  }
  return pos;
}

}  // namespace anvil::tokenizer
