#include "added_tokens.h"

#include <algorithm>

#include "unicode_class.h"

namespace anvil::tokenizer {
namespace {

struct CharBefore {
  uint32_t code_point;  // kInvalidCodePoint when the bytes before `end` are not a well-formed character
  size_t begin;
};

// The character that ends at byte `end` of `text` (end > 0).
CharBefore char_before(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && end - begin < 4 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  const Utf8Char c = decode_utf8(text.data() + begin, end - begin);
  if (begin + c.length != end) return {kInvalidCodePoint, end - 1};
  return {c.code_point, begin};
}

// Start of the whitespace run that ends at `end`.
size_t whitespace_start_before(std::string_view text, size_t end) {
  while (end > 0) {
    const CharBefore c = char_before(text, end);
    if (c.code_point == kInvalidCodePoint || !is_whitespace(c.code_point)) break;
    end = c.begin;
  }
  return end;
}

// End of the whitespace run that starts at `begin`.
size_t whitespace_end_after(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    const TextChar c = char_at(text.data(), begin, text.size());
    if (c.cls != CharClass::Space) break;
    begin += c.length;
  }
  return begin;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& token) { return token.content.empty(); });
  for (size_t index = 0; index < tokens_.size(); ++index) {
    by_first_byte_[static_cast<unsigned char>(tokens_[index].content[0])].push_back(static_cast<uint32_t>(index));
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

AddedTokenMatcher::Match AddedTokenMatcher::find(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (const uint32_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& content = tokens_[index].content;
      if (text.compare(pos, content.size(), content) == 0) return {pos, pos + content.size(), &tokens_[index]};
    }
  }
  return {text.size(), text.size(), nullptr};
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const {
  size_t done = 0;  // end of the last token taken
  for (Match match = find(text, 0); match.token != nullptr; match = find(text, match.end)) {
    const AddedToken& token = *match.token;
    if (token.special && !parse_special) continue;
    if (token.single_word) {
      const bool word_before = match.begin > 0 && is_word_character(char_before(text, match.begin).code_point);
      const bool word_after =
          match.end < text.size() && is_word_character(char_at(text.data(), match.end, text.size()).code_point);
      if (word_before || word_after) continue;
    }
    size_t begin = std::max(match.begin, done);  // an rstrip may have run into this match
    size_t end = match.end;
    if (token.lstrip) begin = std::max(whitespace_start_before(text, begin), done);
    if (token.rstrip) end = whitespace_end_after(text, end);
    if (done < begin) out.push_back({done, begin, -1});
    out.push_back({begin, end, token.id});
    done = end;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
}

}  // namespace anvil::tokenizer
