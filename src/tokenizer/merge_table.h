#pragma once
// BPE merge rules as an open-addressing hash table from an adjacent token pair to the
// merge's rank (priority: lower merges first) and the merged token. The hot lookup of BPE.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace anvil::tokenizer {

struct MergeRule {
  int32_t rank;
  int32_t merged;
};

class MergeTable {
 public:
  // Sizes the table for `count` rules.
  void reserve(size_t count);
  // Adds (left, right) -> merged at `rank`; a pair already present is overwritten (as in HF).
  void insert(int32_t left, int32_t right, int32_t rank, int32_t merged);
  // The rule for the adjacent pair (left, right), or null.
  [[nodiscard]] const MergeRule* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = make_key(left, right);
    for (size_t index = hash(key);; index = (index + 1) & mask_) {
      const Slot& slot = slots_[index];
      if (slot.key == key) return &slot.rule;
      if (slot.key == kEmpty) return nullptr;
    }
  }
  [[nodiscard]] size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    MergeRule rule{};
  };
  static uint64_t make_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  [[nodiscard]] size_t hash(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_) & mask_;
  }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t count_ = 0;
};

}  // namespace anvil::tokenizer
