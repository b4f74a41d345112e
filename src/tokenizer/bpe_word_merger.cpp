#include "bpe_word_merger.h"

#include <algorithm>

namespace anvil::tokenizer {
namespace {

// Min-heap order for std::push_heap: lowest rank first, then leftmost.
bool later(const auto& a, const auto& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); }

}  // namespace

void BpeWordMerger::push_candidate(int32_t left, const MergeTable& merges) {
  const Symbol& symbol = symbols_[static_cast<size_t>(left)];
  if (symbol.next < 0) return;
  const int32_t right_token = symbols_[static_cast<size_t>(symbol.next)].token;
  const MergeRule* rule = merges.find(symbol.token, right_token);
  if (rule == nullptr) return;
  heap_.push_back({rule->rank, left, symbol.token, right_token, rule->merged});
  std::push_heap(heap_.begin(), heap_.end(), later<Candidate, Candidate>);
}

void BpeWordMerger::push_symbol(int32_t token) {
  const auto index = static_cast<int32_t>(symbols_.size());
  symbols_.push_back({token, index - 1, -1});
  if (index > 0) symbols_[static_cast<size_t>(index - 1)].next = index;
}

void BpeWordMerger::merge(std::string_view word, const int32_t* byte_tokens, int32_t unknown_token,
                          const MergeTable& merges, std::vector<int32_t>& out) {
  symbols_.clear();
  for (const char byte : word) {
    int32_t token = byte_tokens[static_cast<unsigned char>(byte)];
    if (token < 0) token = unknown_token;
    if (token >= 0) push_symbol(token);
  }
  merge_pushed(merges, out);
}

void BpeWordMerger::merge_symbols(std::span<const int32_t> tokens, const MergeTable& merges,
                                  std::vector<int32_t>& out) {
  symbols_.clear();
  for (const int32_t token : tokens) push_symbol(token);
  merge_pushed(merges, out);
}

void BpeWordMerger::merge_pushed(const MergeTable& merges, std::vector<int32_t>& out) {
  heap_.clear();
  for (int32_t index = 0; index + 1 < static_cast<int32_t>(symbols_.size()); ++index) push_candidate(index, merges);

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later<Candidate, Candidate>);
    const Candidate top = heap_.back();
    heap_.pop_back();
    Symbol& left = symbols_[static_cast<size_t>(top.left)];
    // Stale when either side has changed since the candidate was pushed: symbols only grow,
    // so an unchanged token id means an unchanged symbol.
    if (left.token != top.left_token || left.next < 0) continue;
    Symbol& right = symbols_[static_cast<size_t>(left.next)];
    if (right.token != top.right_token) continue;
    left.token = top.merged;
    right.token = -1;
    left.next = right.next;
    if (right.next >= 0) symbols_[static_cast<size_t>(right.next)].prev = top.left;
    if (left.prev >= 0) push_candidate(left.prev, merges);
    push_candidate(top.left, merges);
  }
  // The first symbol is never merged away (it has no left neighbour), so the list starts there.
  for (int32_t index = symbols_.empty() ? -1 : 0; index >= 0; index = symbols_[static_cast<size_t>(index)].next) {
    out.push_back(symbols_[static_cast<size_t>(index)].token);
  }
}

}  // namespace anvil::tokenizer
