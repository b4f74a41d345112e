#pragma once
// Added (special and user-defined) tokens are cut out of the text before pre-tokenisation,
// as HF's AddedVocabulary::find_matches: leftmost-longest non-overlapping matches, then per
// token: `single_word` drops a match touching a word character, `lstrip`/`rstrip` absorb the
// whitespace before/after it, and special tokens are skipped (left as text) when not parsed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace anvil::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = true;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched in the normalized text (after the normalizer) rather than the raw text
};

// A stretch of the text: plain text (token < 0) or one added token.
struct TextSegment {
  size_t begin;
  size_t end;
  int32_t token;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  [[nodiscard]] bool empty() const { return tokens_.empty(); }
  // Appends the segments of `text` (they tile it; text segments are never empty).
  void split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const;

 private:
  struct Match {
    size_t begin;
    size_t end;
    const AddedToken* token;
  };
  // The leftmost-longest match starting at or after `from`, or token == nullptr.
  [[nodiscard]] Match find(std::string_view text, size_t from) const;

  // A byte trie of the contents: matching at a position walks it once, so the cost does not
  // grow with the number of tokens (Llama 3 has 256 special tokens, all starting with "<|").
  struct TrieNode {
    int32_t token = -1;                                        // index into tokens_ of the content ending here
    std::vector<std::pair<unsigned char, uint32_t>> children;  // (byte, node)
  };
  [[nodiscard]] uint32_t child(uint32_t node, unsigned char byte) const;  // 0 when none

  std::vector<AddedToken> tokens_;
  std::vector<TrieNode> trie_;  // node 0 is the root
  std::array<uint32_t, 256> root_children_{};
};

}  // namespace anvil::tokenizer
