#pragma once
// Stop strings on streamed text: text is passed through as it arrives, except a tail that
// could still turn into a stop string, which is held back until it either completes one
// (then it and everything after it are dropped) or can no longer (then it is released).
// So a partial stop string never reaches the stream, and nothing else is delayed.
#include <string>
#include <string_view>
#include <vector>

namespace anvil::infer {

class StopStringFilter {
 public:
  // Empty strings in `stop_strings` are ignored.
  explicit StopStringFilter(std::vector<std::string> stop_strings);

  // Adds `text`; returns the text now safe to emit. When a stop string completes (the one
  // ending first; of those, the longest), returns the text before it and stopped() becomes
  // true; later calls return "". The result does not depend on how the text is cut.
  std::string push(std::string_view text);
  // Ends the stream: returns the held-back tail (empty after a stop).
  std::string finish();
  [[nodiscard]] bool stopped() const { return stopped_; }
  // The stop string that ended the stream, or "".
  [[nodiscard]] const std::string& matched() const { return matched_; }

 private:
  // Length of the longest suffix of held_ that is a proper prefix of a stop string.
  [[nodiscard]] size_t partial_match_length() const;

  std::vector<std::string> stop_strings_;
  std::string held_;  // text not yet emitted: only ever a possible start of a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace anvil::infer
