// StopStringFilter: stop strings found in streamed text without leaking partial matches.
#include "anvil/infer/stop_strings.h"

#include <algorithm>

namespace anvil::infer {

StopStringFilter::StopStringFilter(std::vector<std::string> stop_strings) {
  for (std::string& stop : stop_strings) {
    if (!stop.empty()) stop_strings_.push_back(std::move(stop));
  }
}

std::string StopStringFilter::push(std::string_view text) {
  if (stopped_) return "";
  held_.append(text);
  // The stop string completed first (the earliest end; of those, the longest), as if the
  // text had arrived one byte at a time. No match can start in text already emitted: that
  // text was no prefix of any stop string.
  size_t first = std::string::npos;
  size_t first_end = std::string::npos;
  const std::string* first_stop = nullptr;
  for (const std::string& stop : stop_strings_) {
    const size_t at = held_.find(stop);
    if (at == std::string::npos) continue;
    const size_t end = at + stop.size();
    if (end < first_end || (end == first_end && stop.size() > first_stop->size())) {
      first = at;
      first_end = end;
      first_stop = &stop;
    }
  }
  if (first_stop != nullptr) {
    stopped_ = true;
    matched_ = *first_stop;
    std::string before = held_.substr(0, first);
    held_.clear();
    return before;
  }
  const size_t keep = partial_match_length();
  std::string ready = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return ready;
}

std::string StopStringFilter::finish() {
  std::string rest;
  rest.swap(held_);
  return rest;
}

size_t StopStringFilter::partial_match_length() const {
  size_t longest = 0;
  for (const std::string& stop : stop_strings_) {
    const size_t limit = std::min(stop.size() - 1, held_.size());
    for (size_t length = limit; length > longest; --length) {
      if (std::string_view(held_).substr(held_.size() - length) == std::string_view(stop).substr(0, length)) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

}  // namespace anvil::infer
