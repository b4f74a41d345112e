#include "merge_table.h"

#include <utility>

namespace anvil::tokenizer {

void MergeTable::reserve(size_t count) {
  size_t capacity = 16;
  unsigned bits = 4;
  while (capacity < count * 2) {  // load factor <= 1/2 keeps probes short
    capacity *= 2;
    ++bits;
  }
  if (capacity <= slots_.size()) return;
  std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(capacity));
  mask_ = capacity - 1;
  shift_ = 64 - bits;
  count_ = 0;
  for (const Slot& slot : old) {
    if (slot.key != kEmpty) {
      insert(static_cast<int32_t>(slot.key >> 32), static_cast<int32_t>(slot.key & 0xFFFFFFFFU), slot.rule.rank,
             slot.rule.merged);
    }
  }
}

void MergeTable::grow() { reserve(count_ + 1 > 8 ? count_ * 2 : 16); }

void MergeTable::insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = make_key(left, right);
  for (size_t index = hash(key);; index = (index + 1) & mask_) {
    Slot& slot = slots_[index];
    if (slot.key == key) {
      slot.rule = {rank, merged};
      return;
    }
    if (slot.key == kEmpty) {
      slot = {key, {rank, merged}};
      ++count_;
      return;
    }
  }
}

}  // namespace anvil::tokenizer
