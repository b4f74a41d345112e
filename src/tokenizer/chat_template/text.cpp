#include "text.h"

#include <algorithm>

namespace anvil::tokenizer::jinja::text {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: byte b >= 0x80 <-> U+DC00 + b

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

char32_t decode_one(std::string_view s, size_t& pos) {
  const auto byte = static_cast<unsigned char>(s[pos]);
  if (byte < 0x80) {
    ++pos;
    return byte;
  }
  size_t extra = 0;
  char32_t value = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (byte >= 0xC2 && byte <= 0xDF) {
    extra = 1;
    value = byte & 0x1F;
  } else if (byte >= 0xE0 && byte <= 0xEF) {
    extra = 2;
    value = byte & 0x0F;
    if (byte == 0xE0) low = 0xA0;
    if (byte == 0xED) high = 0x9F;
  } else if (byte >= 0xF0 && byte <= 0xF4) {
    extra = 3;
    value = byte & 0x07;
    if (byte == 0xF0) low = 0x90;
    if (byte == 0xF4) high = 0x8F;
  }
  if (extra == 0 || pos + extra >= s.size()) {  // a bad lead byte, or the text ends mid-sequence
    ++pos;
    return kEscapeBase + byte;
  }
  const auto second = static_cast<unsigned char>(s[pos + 1]);
  if (second < low || second > high) {
    ++pos;
    return kEscapeBase + byte;
  }
  for (size_t i = 2; i <= extra; ++i) {
    if (!is_continuation(static_cast<unsigned char>(s[pos + i]))) {
      ++pos;
      return kEscapeBase + byte;
    }
  }
  for (size_t i = 1; i <= extra; ++i) value = (value << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  pos += extra + 1;
  return value;
}

namespace {

struct CasePair {
  char32_t upper;
  char32_t lower;
};

// Ranges where upper and lower case differ by a fixed offset.
struct CaseRange {
  char32_t first_upper;
  char32_t last_upper;
  char32_t offset;  // lower = upper + offset
};
constexpr CaseRange kOffsetRanges[] = {
    {0x41, 0x5A, 0x20},   {0xC0, 0xD6, 0x20},   {0xD8, 0xDE, 0x20},   {0x391, 0x3A1, 0x20}, {0x3A3, 0x3A9, 0x20},
    {0x388, 0x38A, 0x25}, {0x38E, 0x38F, 0x3F}, {0x410, 0x42F, 0x20}, {0x400, 0x40F, 0x50},
};
constexpr CasePair kSinglePairs[] = {{0x386, 0x3AC}, {0x38C, 0x3CC}, {0x178, 0xFF}};

// Latin Extended-A: alternating upper/lower pairs.
bool alternating_upper(char32_t c) {
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c % 2 == 0;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 1;
  return false;
}
bool alternating_lower(char32_t c) {
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c % 2 == 1;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 0;
  return false;
}

char32_t lower_of(char32_t c) {
  for (const CaseRange& range : kOffsetRanges) {
    if (c >= range.first_upper && c <= range.last_upper) return c + range.offset;
  }
  for (const CasePair& pair : kSinglePairs) {
    if (c == pair.upper) return pair.lower;
  }
  if (alternating_upper(c)) return c + 1;
  return c;
}

char32_t upper_of(char32_t c) {
  for (const CaseRange& range : kOffsetRanges) {
    if (c >= range.first_upper + range.offset && c <= range.last_upper + range.offset) return c - range.offset;
  }
  for (const CasePair& pair : kSinglePairs) {
    if (c == pair.lower) return pair.upper;
  }
  if (alternating_lower(c)) return c - 1;
  if (c == 0xB5) return 0x39C;   // micro sign
  if (c == 0x3C2) return 0x3A3;  // final sigma
  if (c == 0x131) return 'I';    // dotless i
  if (c == 0x17F) return 'S';    // long s
  return c;
}

bool is_upper_char(char32_t c) { return lower_of(c) != c; }
bool is_lower_char(char32_t c) { return upper_of(c) != c || c == 0xDF; }
bool is_cased(char32_t c) { return is_upper_char(c) || is_lower_char(c); }

void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "SS";
  } else {
    append_utf8(out, upper_of(c));
  }
}
void append_lower(std::string& out, char32_t c) {
  if (c == 0x130) {
    out += "i\xCC\x87";  // Python: U+0130 lowers to "i" + combining dot above
  } else {
    append_utf8(out, lower_of(c));
  }
}

bool is_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return is_cased(c) || c == 0xAA || c == 0xBA || (c >= 0x3040 && c <= 0x30FF) || (c >= 0x4E00 && c <= 0x9FFF) ||
         (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0x5D0 && c <= 0x5EA) || (c >= 0x620 && c <= 0x64A);
}
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

bool in_set(char32_t c, const std::u32string& set) { return set.find(c) != std::u32string::npos; }

}  // namespace

std::u32string decode(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  size_t pos = 0;
  while (pos < utf8.size()) out.push_back(decode_one(utf8, pos));
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c >= kEscapeBase + 0x80 && c <= kEscapeBase + 0xFF) {
    out.push_back(static_cast<char>(c - kEscapeBase));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    c = std::min<char32_t>(c, 0x10FFFF);
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t c : code_points) append_utf8(out, c);
  return out;
}

size_t length(std::string_view utf8) {
  if (is_ascii(utf8)) return utf8.size();
  size_t count = 0;
  size_t pos = 0;
  while (pos < utf8.size()) {
    decode_one(utf8, pos);
    ++count;
  }
  return count;
}

bool is_ascii(std::string_view utf8) {
  return std::all_of(utf8.begin(), utf8.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) append_upper(out, c);
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) append_lower(out, c);
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  for (char32_t c : decode(s)) {
    if (previous_cased) {
      append_lower(out, c);
    } else if (c == 0xDF) {
      out += "Ss";
    } else {
      append_utf8(out, upper_of(c));
    }
    previous_cased = is_cased(c);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool first = true;
  for (char32_t c : decode(s)) {
    if (first && c == 0xDF) {
      out += "Ss";
    } else if (first) {
      append_utf8(out, upper_of(c));
    } else {
      append_lower(out, c);
    }
    first = false;
  }
  return out;
}

bool all_of_class(std::string_view s, std::string_view class_name) {
  const std::u32string chars = decode(s);
  if (chars.empty()) return false;
  if (class_name == "lower" || class_name == "upper") {
    bool any_cased = false;
    for (char32_t c : chars) {
      if (class_name == "lower" ? is_upper_char(c) : is_lower_char(c)) return false;
      any_cased = any_cased || is_cased(c);
    }
    return any_cased;
  }
  return std::all_of(chars.begin(), chars.end(), [&](char32_t c) {
    if (class_name == "alpha") return is_alpha(c);
    if (class_name == "digit") return is_digit(c);
    if (class_name == "alnum") return is_alpha(c) || is_digit(c);
    return is_space(c);
  });
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string code_points = decode(s);
  const std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t c) { return chars ? in_set(c, set) : is_space(c); };
  size_t begin = 0;
  size_t end = code_points.size();
  if (left) {
    while (begin < end && strippable(code_points[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strippable(code_points[end - 1])) --end;
  }
  return encode(std::u32string_view(code_points).substr(begin, end - begin));
}

namespace {

std::vector<std::string> split_whitespace(std::string_view s, int64_t max_split, bool from_right) {
  std::u32string chars = decode(s);
  if (from_right) std::reverse(chars.begin(), chars.end());
  std::vector<std::u32string> parts;
  size_t pos = 0;
  while (true) {
    while (pos < chars.size() && is_space(chars[pos])) ++pos;
    if (pos == chars.size()) break;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      size_t end = chars.size();
      while (end > pos && is_space(chars[end - 1])) --end;
      parts.push_back(chars.substr(pos, end - pos));
      break;
    }
    size_t end = pos;
    while (end < chars.size() && !is_space(chars[end])) ++end;
    parts.push_back(chars.substr(pos, end - pos));
    pos = end;
  }
  std::vector<std::string> out;
  for (auto& part : parts) {
    if (from_right) std::reverse(part.begin(), part.end());
    out.push_back(encode(part));
  }
  if (from_right) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& separator, int64_t max_split,
                               bool from_right) {
  if (!separator) return split_whitespace(s, max_split, from_right);
  const std::string& sep = *separator;
  std::vector<std::string> out;
  if (!from_right) {
    size_t pos = 0;
    while (max_split < 0 || static_cast<int64_t>(out.size()) < max_split) {
      const size_t hit = s.find(sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep.size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  size_t end = s.size();
  while (max_split < 0 || static_cast<int64_t>(out.size()) < max_split) {
    if (end < sep.size()) break;
    const size_t hit = s.rfind(sep, end - sep.size());
    if (hit == std::string_view::npos) break;
    out.emplace_back(s.substr(hit + sep.size(), end - hit - sep.size()));
    end = hit;
  }
  out.emplace_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keep_ends) {
  const std::u32string chars = decode(s);
  std::vector<std::string> out;
  size_t start = 0;
  size_t pos = 0;
  while (pos < chars.size()) {
    if (!is_line_break(chars[pos])) {
      ++pos;
      continue;
    }
    size_t end = pos + 1;
    if (chars[pos] == '\r' && end < chars.size() && chars[end] == '\n') ++end;
    out.push_back(encode(std::u32string_view(chars).substr(start, (keep_ends ? end : pos) - start)));
    start = pos = end;
  }
  if (start < chars.size()) out.push_back(encode(std::u32string_view(chars).substr(start)));
  return out;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (from.empty()) {
    const std::u32string chars = decode(s);
    for (char32_t c : chars) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      append_utf8(out, c);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t find(std::string_view s, std::string_view needle, bool from_right) {
  const size_t hit = from_right ? s.rfind(needle) : s.find(needle);
  if (hit == std::string_view::npos) return -1;
  return static_cast<int64_t>(length(s.substr(0, hit)));
}

int64_t count(std::string_view s, std::string_view needle) {
  if (needle.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t total = 0;
  size_t pos = 0;
  while ((pos = s.find(needle, pos)) != std::string_view::npos) {
    ++total;
    pos += needle.size();
  }
  return total;
}

}  // namespace anvil::tokenizer::jinja::text
