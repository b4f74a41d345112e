#pragma once
// Memo of BPE results per pre-token: natural text repeats the same words, and a hash
// lookup is far cheaper than merging. An open-addressing table over flat arenas (keys and
// ids back to back), so a lookup touches one or two cache lines and allocates nothing.
// Thread-safe (one mutex); bounded: once full it stops taking new words (like HF's cache),
// so memory stays fixed and results never change.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::tokenizer {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;  // longer words are rare and not cached

  explicit WordCache(size_t max_words);

  // Appends the ids cached for `word` to `out` and returns true, or returns false.
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;
  // Remembers `count` ids for `word` while there is room.
  void insert(std::string_view word, const int32_t* ids, size_t count);

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 marks an empty slot (real hashes are forced odd)
    uint32_t key_offset = 0;
    uint32_t ids_offset = 0;
    uint16_t key_length = 0;
    uint16_t id_count = 0;
  };
  static uint64_t hash_of(std::string_view word);
  // The slot holding `word`, or the empty slot where it would go.
  [[nodiscard]] size_t find_slot(std::string_view word, uint64_t hash) const;

  size_t max_words_;
  size_t words_ = 0;
  std::vector<Slot> slots_;   // power-of-two size, at most half full
  std::string keys_;          // all cached words back to back
  std::vector<int32_t> ids_;  // all cached ids back to back
  mutable std::mutex mutex_;
};

}  // namespace anvil::tokenizer
