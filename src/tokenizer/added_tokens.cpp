#include "added_tokens.h"

#include <algorithm>
#include <utility>

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
  trie_.emplace_back();
  for (size_t index = 0; index < tokens_.size(); ++index) {
    uint32_t node = 0;
    for (const char c : tokens_[index].content) {
      const auto byte = static_cast<unsigned char>(c);
      uint32_t next = node == 0 ? root_children_[byte] : child(node, byte);
      if (next == 0) {
        next = static_cast<uint32_t>(trie_.size());
        trie_.emplace_back();
        if (node == 0) root_children_[byte] = next;
        trie_[node].children.emplace_back(byte, next);
      }
      node = next;
    }
    if (trie_[node].token < 0) trie_[node].token = static_cast<int32_t>(index);  // first of duplicate contents
  }
}

uint32_t AddedTokenMatcher::child(uint32_t node, unsigned char byte) const {
  for (const auto& [edge, next] : trie_[node].children) {
    if (edge == byte) return next;
  }
  return 0;
}

AddedTokenMatcher::Match AddedTokenMatcher::find(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    uint32_t node = root_children_[static_cast<unsigned char>(text[pos])];
    Match longest{pos, pos, nullptr};
    for (size_t end = pos + 1; node != 0; ++end) {
      if (trie_[node].token >= 0) longest = {pos, end, &tokens_[static_cast<size_t>(trie_[node].token)]};
      if (end == text.size()) break;
      node = child(node, static_cast<unsigned char>(text[end]));
    }
    if (longest.token != nullptr) return longest;
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
