#include "word_cache.h"

namespace anvil::tokenizer {

bool WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxWordBytes) return false;
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto found = index_.find(word);
  if (found == index_.end()) return false;
  const int32_t* ids = ids_.data() + found->second.offset;
  out.insert(out.end(), ids, ids + found->second.count);
  return true;
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t count) {
  if (word.size() > kMaxWordBytes) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  if (index_.size() >= max_words_) return;
  const auto [entry, inserted] = index_.try_emplace(std::string(word), Span{0, 0});
  if (!inserted) return;
  entry->second = {static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
  ids_.insert(ids_.end(), ids, ids + count);
}

}  // namespace anvil::tokenizer
