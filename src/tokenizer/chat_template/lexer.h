#pragma once
// Splits a Jinja template into tokens the way jinja2's lexer does with transformers'
// settings: trim_blocks and lstrip_blocks on, `{%-`/`-%}` whitespace control, `{% raw %}`,
// comments dropped, newlines normalised to "\n" and one trailing newline removed.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "value.h"

namespace anvil::tokenizer::jinja {

enum class TokenType {
  Data,           // template text outside tags
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,
  String,
  Integer,
  Float,
  Operator,
  End,
};

struct Token {
  TokenType type = TokenType::End;
  std::string text;  // Data text, name, decoded string literal or operator
  int64_t integer = 0;
  double real = 0.0;
  size_t offset = 0;  // into the normalised source
};

// Maps offsets of the normalised source to line:column (1-based, columns in code points).
class SourceMap {
 public:
  explicit SourceMap(std::string source);
  [[nodiscard]] SourcePos position(size_t offset) const;
  [[nodiscard]] const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<size_t> line_starts_;
};

// Normalises newlines ("\r\n" and "\r" become "\n") and drops one trailing newline.
std::string normalize_source(std::string_view source);

// Tokenises the normalised source; throws anvil::Error with line:column on a lexical error.
std::vector<Token> tokenize(const SourceMap& source);

}  // namespace anvil::tokenizer::jinja
