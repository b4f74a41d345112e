#include "word_cache.h"

#include <functional>

namespace anvil::tokenizer {

WordCache::WordCache(size_t max_words) : max_words_(max_words) {
  size_t capacity = 16;
  while (capacity < max_words * 2) capacity *= 2;
  slots_.resize(capacity);
}

uint64_t WordCache::hash_of(std::string_view word) { return std::hash<std::string_view>{}(word) | 1U; }

size_t WordCache::find_slot(std::string_view word, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t index = static_cast<size_t>(hash) & mask;; index = (index + 1) & mask) {
    const Slot& slot = slots_[index];
    if (slot.hash == 0) return index;
    if (slot.hash == hash && std::string_view(keys_).substr(slot.key_offset, slot.key_length) == word) return index;
  }
}

bool WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxWordBytes) return false;
  const uint64_t hash = hash_of(word);
  const std::lock_guard<std::mutex> lock(mutex_);
  const Slot& slot = slots_[find_slot(word, hash)];
  if (slot.hash == 0) return false;
  const int32_t* ids = ids_.data() + slot.ids_offset;
  out.insert(out.end(), ids, ids + slot.id_count);
  return true;
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t count) {
  if (word.size() > kMaxWordBytes || count > kMaxWordBytes) return;
  const uint64_t hash = hash_of(word);
  const std::lock_guard<std::mutex> lock(mutex_);
  if (words_ >= max_words_) return;
  Slot& slot = slots_[find_slot(word, hash)];
  if (slot.hash != 0) return;  // another thread got there first
  slot = {hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()),
          static_cast<uint16_t>(word.size()), static_cast<uint16_t>(count)};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + count);
  ++words_;
}

}  // namespace anvil::tokenizer
