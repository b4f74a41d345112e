#pragma once
// Byte-pair merging of one pre-token: start from one symbol per byte, then repeatedly merge
// the adjacent pair with the lowest merge rank (leftmost among equal ranks), as HF's
// `Word::merge_all`. A min-heap of candidate pairs over a doubly linked list of symbols
// makes it O(n log n); stale heap entries are skipped lazily. Buffers are reused across words.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "merge_table.h"

namespace anvil::tokenizer {

class BpeWordMerger {
 public:
  // Appends the token ids of `word` to `out`. `byte_tokens[b]` is the token of byte b, or -1
  // when the vocabulary lacks it: then `unknown_token` stands in for it, or (when -1) the
  // byte is dropped, as HF does without an unk_token.
  void merge(std::string_view word, const int32_t* byte_tokens, int32_t unknown_token, const MergeTable& merges,
             std::vector<int32_t>& out);
  // Appends the token ids that merging the symbol sequence `tokens` gives (SentencePiece-style
  // BPE starts from one token per character).
  void merge_symbols(std::span<const int32_t> tokens, const MergeTable& merges, std::vector<int32_t>& out);

 private:
  struct Symbol {
    int32_t token;  // -1 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;  // symbol index; stays the index of the merged symbol
    int32_t left_token;
    int32_t right_token;
    int32_t merged;
  };
  void push_symbol(int32_t token);
  void push_candidate(int32_t left, const MergeTable& merges);
  // Merges the symbols pushed so far and appends the result to `out`.
  void merge_pushed(const MergeTable& merges, std::vector<int32_t>& out);

  std::vector<Symbol> symbols_;
  std::vector<Candidate> heap_;
};

}  // namespace anvil::tokenizer
