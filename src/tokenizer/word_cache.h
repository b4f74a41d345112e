#pragma once
// Memo of BPE results per pre-token: natural text repeats the same words, and a hash
// lookup is far cheaper than merging. Thread-safe (one mutex); bounded: once full it stops
// taking new words (like HF's cache), so memory stays fixed and results never change.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace anvil::tokenizer {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;  // longer words are rare and not cached

  explicit WordCache(size_t max_words) : max_words_(max_words) {}

  // Appends the ids cached for `word` to `out` and returns true, or returns false.
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;
  // Remembers `ids` (the tail of a vector) for `word` while there is room.
  void insert(std::string_view word, const int32_t* ids, size_t count);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  struct Span {
    uint32_t offset;
    uint32_t count;
  };

  size_t max_words_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Span, Hash, std::equal_to<>> index_;
  std::vector<int32_t> ids_;  // all cached ids back to back
};

}  // namespace anvil::tokenizer
