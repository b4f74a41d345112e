#include "lexer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "anvil/core/error.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

enum class TagKind { Variable, Block, Comment };

// Operators, longest first so that "//" wins over "/".
constexpr std::array<std::string_view, 26> kOperators = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                                         "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                         ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(const SourceMap& map) : map_(map), s_(map.source()) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) lex_root();
    push(TokenType::End, "", s_.size());
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t offset, const std::string& message) const {
    const SourcePos at = map_.position(offset);
    throw make_error("chat template syntax error at ", at.line, ":", at.column, ": ", message);
  }

  void push(TokenType type, std::string text, size_t offset) {
    Token token;
    token.type = type;
    token.text = std::move(text);
    token.offset = offset;
    tokens_.push_back(std::move(token));
  }

  // Length of the whitespace run (Python's \s) starting at `pos`.
  size_t space_run(size_t pos) const {
    size_t end = pos;
    while (end < s_.size()) {
      size_t next = end;
      if (!text::is_space(text::decode_one(s_, next))) break;
      end = next;
    }
    return end - pos;
  }

  bool starts_with(size_t pos, std::string_view what) const { return s_.compare(pos, what.size(), what) == 0; }

  // jinja2's OptionalLStrip: whitespace control on the text before a tag.
  std::string strip_before_tag(std::string text, char sign, bool lstrip_allowed) const {
    if (sign == '-') return text::strip(text, std::nullopt, false, true);
    if (sign == '+' || !lstrip_allowed) return text;
    const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (line_start == 0 && !line_starting_) return text;
    const std::string tail = text.substr(line_start);
    if (!tail.empty() && text::strip(tail, std::nullopt, true, true).empty()) text.resize(line_start);
    return text;
  }

  void emit_data(std::string text, size_t offset) {
    if (!text.empty()) push(TokenType::Data, std::move(text), offset);
  }

  // Moves past a tag end: "-" eats following whitespace, "+" nothing, else one newline (trim_blocks).
  void finish_tag_end(size_t end, char sign, bool trim_newline) {
    if (sign == '-') {
      end += space_run(end);
    } else if (sign != '+' && trim_newline && end < s_.size() && s_[end] == '\n') {
      ++end;
    }
    line_starting_ = end > 0 && s_[end - 1] == '\n';
    pos_ = end;
  }

  void lex_root() {
    size_t tag = pos_;
    TagKind kind = TagKind::Variable;
    while (true) {
      tag = s_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= s_.size()) {
        emit_data(s_.substr(pos_), pos_);
        pos_ = s_.size();
        return;
      }
      const char next = s_[tag + 1];
      if (next == '{' || next == '%' || next == '#') {
        kind = next == '{' ? TagKind::Variable : (next == '%' ? TagKind::Block : TagKind::Comment);
        break;
      }
      ++tag;
    }
    size_t body = tag + 2;
    char sign = 0;
    if (body < s_.size() && (s_[body] == '-' || s_[body] == '+')) sign = s_[body++];
    size_t raw_end = 0;
    const bool raw = kind == TagKind::Block && match_raw_begin(body, raw_end);
    emit_data(strip_before_tag(s_.substr(pos_, tag - pos_), sign, kind != TagKind::Variable), pos_);
    if (kind == TagKind::Comment) return lex_comment(tag, body);
    if (raw) return lex_raw(tag, raw_end);
    push(kind == TagKind::Variable ? TokenType::VariableBegin : TokenType::BlockBegin, "", tag);
    pos_ = body;
    line_starting_ = false;
    lex_tag(kind, tag);
  }

  // `{% raw %}` (or `{%- raw -%}`): sets `end` past the tag.
  bool match_raw_begin(size_t body, size_t& end) const {
    size_t p = body + space_run(body);
    if (!starts_with(p, "raw")) return false;
    p += 3;
    const size_t spaces = space_run(p);
    if (spaces == 0 && !(starts_with(p, "-%}") || starts_with(p, "%}"))) return false;
    p += spaces;
    if (starts_with(p, "-%}")) {
      end = p + 3 + space_run(p + 3);
      return true;
    }
    if (starts_with(p, "%}")) {
      end = p + 2;
      return true;
    }
    return false;
  }

  void lex_comment(size_t tag, size_t body) {
    const size_t close = s_.find("#}", body);
    if (close == std::string::npos) fail(tag, "missing end of comment tag");
    char sign = 0;
    if (close > body && (s_[close - 1] == '-' || s_[close - 1] == '+')) sign = s_[close - 1];
    finish_tag_end(close + 2, sign, true);
  }

  void lex_raw(size_t tag, size_t content_begin) {
    line_starting_ = content_begin > 0 && s_[content_begin - 1] == '\n';
    size_t search = content_begin;
    while (true) {
      const size_t open = s_.find("{%", search);
      if (open == std::string::npos) fail(tag, "missing end of raw directive");
      size_t p = open + 2;
      char sign = 0;
      if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
      p += space_run(p);
      if (!starts_with(p, "endraw")) {
        search = open + 2;
        continue;
      }
      p += 6;
      p += space_run(p);
      char end_sign = 0;
      if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) end_sign = s_[p++];
      if (!starts_with(p, "%}")) {
        search = open + 2;
        continue;
      }
      emit_data(strip_before_tag(s_.substr(content_begin, open - content_begin), sign, true), content_begin);
      finish_tag_end(p + 2, end_sign, true);
      return;
    }
  }

  // Tries the end of the current tag at pos_ (only outside brackets).
  bool try_tag_end(TagKind kind) {
    const std::string_view close = kind == TagKind::Variable ? "}}" : "%}";
    const TokenType type = kind == TagKind::Variable ? TokenType::VariableEnd : TokenType::BlockEnd;
    const bool plus_allowed = kind == TagKind::Block;
    if (s_[pos_] == '-' || (plus_allowed && s_[pos_] == '+')) {
      if (!starts_with(pos_ + 1, close)) return false;
      push(type, "", pos_);
      finish_tag_end(pos_ + 3, s_[pos_], kind == TagKind::Block);
      return true;
    }
    if (!starts_with(pos_, close)) return false;
    push(type, "", pos_);
    finish_tag_end(pos_ + 2, 0, kind == TagKind::Block);
    return true;
  }

  void lex_tag(TagKind kind, size_t tag) {
    std::vector<char> brackets;
    while (true) {
      if (pos_ >= s_.size()) {
        fail(tag, kind == TagKind::Variable ? "unclosed '{{' (expected '}}')" : "unclosed '{%' (expected '%}')");
      }
      if (brackets.empty() && try_tag_end(kind)) return;
      const size_t spaces = space_run(pos_);
      if (spaces > 0) {
        pos_ += spaces;
        continue;
      }
      lex_token(brackets);
    }
  }

  void lex_token(std::vector<char>& brackets) {
    const char c = s_[pos_];
    if (is_digit(c)) return lex_number();
    if (is_name_start(c)) {
      size_t end = pos_;
      while (end < s_.size() && is_name_char(s_[end])) ++end;
      push(TokenType::Name, s_.substr(pos_, end - pos_), pos_);
      pos_ = end;
      return;
    }
    if (c == '\'' || c == '"') return lex_string();
    for (std::string_view op : kOperators) {
      if (!starts_with(pos_, op)) continue;
      track_bracket(op[0], brackets);
      push(TokenType::Operator, std::string(op), pos_);
      pos_ += op.size();
      return;
    }
    fail(pos_, "unexpected character '" + std::string(1, c) + "'");
  }

  void track_bracket(char c, std::vector<char>& brackets) const {
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(pos_, std::string("unexpected '") + c + "'");
      if (brackets.back() != c) fail(pos_, std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      brackets.pop_back();
    }
  }

  // Digits with optional "_" separators; returns the end.
  size_t digit_run(size_t p) const {
    while (p < s_.size() && (is_digit(s_[p]) || (s_[p] == '_' && p + 1 < s_.size() && is_digit(s_[p + 1])))) ++p;
    return p;
  }

  // 0x.., 0o.., 0b.. integer literals.
  bool lex_prefixed_integer() {
    if (s_[pos_] != '0' || pos_ + 2 >= s_.size()) return false;
    const char prefix = static_cast<char>(s_[pos_ + 1] | 0x20);
    const int base = prefix == 'x' ? 16 : (prefix == 'o' ? 8 : (prefix == 'b' ? 2 : 0));
    if (base == 0) return false;
    std::string digits;
    size_t end = pos_ + 2;
    while (end < s_.size() && (std::isxdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) {
      if (s_[end] != '_') digits.push_back(s_[end]);
      ++end;
    }
    if (digits.empty()) return false;
    Token token;
    token.type = TokenType::Integer;
    token.offset = pos_;
    char* parsed_end = nullptr;
    errno = 0;
    token.integer = std::strtoll(digits.c_str(), &parsed_end, base);
    if (errno == ERANGE || *parsed_end != '\0') fail(pos_, "bad integer literal");
    tokens_.push_back(std::move(token));
    pos_ = end;
    return true;
  }

  void lex_number() {
    if (lex_prefixed_integer()) return;
    const size_t start = pos_;
    size_t end = digit_run(pos_);
    bool is_float = false;
    const bool after_dot = start > 0 && s_[start - 1] == '.';
    if (!after_dot && end + 1 < s_.size() && s_[end] == '.' && is_digit(s_[end + 1])) {
      end = digit_run(end + 1);
      is_float = true;
    }
    if (!after_dot && end < s_.size() && (s_[end] == 'e' || s_[end] == 'E')) {
      size_t p = end + 1;
      if (p < s_.size() && (s_[p] == '+' || s_[p] == '-')) ++p;
      if (p < s_.size() && is_digit(s_[p])) {
        end = digit_run(p);
        is_float = true;
      }
    }
    std::string digits;
    for (size_t i = start; i < end; ++i) {
      if (s_[i] != '_') digits.push_back(s_[i]);
    }
    Token token;
    token.offset = start;
    token.text = digits;
    errno = 0;
    if (is_float) {
      token.type = TokenType::Float;
      token.real = std::strtod(digits.c_str(), nullptr);
    } else {
      token.type = TokenType::Integer;
      token.integer = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(start, "integer literal too large");
    }
    tokens_.push_back(std::move(token));
    pos_ = end;
  }

  void lex_string() {
    const size_t start = pos_;
    const char quote = s_[pos_];
    std::string value;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= s_.size()) fail(start, "unterminated string literal");
      const char c = s_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) fail(start, "unterminated string literal");
      p = unescape(p + 1, value, start);
    }
    push(TokenType::String, std::move(value), start);
    pos_ = p + 1;
  }

  // Decodes the escape whose letter is at `p` (Python's unicode-escape); returns the next position.
  size_t unescape(size_t p, std::string& value, size_t literal_start) const {
    const char c = s_[p];
    switch (c) {
      case '\n':
        return p + 1;  // line continuation
      case '\\':
      case '\'':
      case '"':
        value.push_back(c);
        return p + 1;
      case 'n':
        value.push_back('\n');
        return p + 1;
      case 't':
        value.push_back('\t');
        return p + 1;
      case 'r':
        value.push_back('\r');
        return p + 1;
      case 'a':
        value.push_back('\a');
        return p + 1;
      case 'b':
        value.push_back('\b');
        return p + 1;
      case 'f':
        value.push_back('\f');
        return p + 1;
      case 'v':
        value.push_back('\v');
        return p + 1;
      case 'x':
        return hex_escape(p + 1, 2, value, literal_start);
      case 'u':
        return hex_escape(p + 1, 4, value, literal_start);
      case 'U':
        return hex_escape(p + 1, 8, value, literal_start);
      case 'N':
        fail(literal_start, "\\N{...} escapes are not supported");
      default:
        break;
    }
    if (c >= '0' && c <= '7') {
      uint32_t code = 0;
      size_t end = p;
      while (end < s_.size() && end < p + 3 && s_[end] >= '0' && s_[end] <= '7') code = code * 8 + (s_[end++] - '0');
      text::append_utf8(value, code);
      return end;
    }
    value.push_back('\\');  // unknown escapes stay as written
    return p;
  }

  size_t hex_escape(size_t p, size_t digits, std::string& value, size_t literal_start) const {
    uint32_t code = 0;
    for (size_t i = 0; i < digits; ++i) {
      const char h = p + i < s_.size() ? s_[p + i] : '\0';
      int digit = -1;
      if (h >= '0' && h <= '9') digit = h - '0';
      if (h >= 'a' && h <= 'f') digit = h - 'a' + 10;
      if (h >= 'A' && h <= 'F') digit = h - 'A' + 10;
      if (digit < 0) fail(literal_start, "truncated \\x, \\u or \\U escape in string literal");
      code = code * 16 + static_cast<uint32_t>(digit);
    }
    if (code > 0x10FFFF) fail(literal_start, "escape is not a valid code point");
    text::append_utf8(value, code);
    return p + digits;
  }

  const SourceMap& map_;
  const std::string& s_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

SourceMap::SourceMap(std::string source) : source_(std::move(source)) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source_.size(); ++i) {
    if (source_[i] == '\n') line_starts_.push_back(i + 1);
  }
}

SourcePos SourceMap::position(size_t offset) const {
  offset = std::min(offset, source_.size());
  const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line = static_cast<size_t>(it - line_starts_.begin());
  const size_t start = line_starts_[line - 1];
  const std::string_view prefix(source_.data() + start, offset - start);
  return SourcePos{static_cast<int>(line), static_cast<int>(text::length(prefix)) + 1};
}

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> tokenize(const SourceMap& source) { return Lexer(source).run(); }

}  // namespace anvil::tokenizer::jinja
