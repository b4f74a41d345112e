// StopStringFilter: text streamed through it, however it is cut, equals the text before the
// stop string that completes first, and no byte of that match is ever released.
#include <gtest/gtest.h>

#include "anvil/infer/stop_strings.h"
#include "support/op_harness.h"

namespace anvil::infer {
namespace {

// Feeds `pieces`; returns what was released, in calls, plus the finish() text.
std::vector<std::string> stream(StopStringFilter& filter, const std::vector<std::string>& pieces) {
  std::vector<std::string> released;
  for (const std::string& piece : pieces) released.push_back(filter.push(piece));
  released.push_back(filter.finish());
  return released;
}

TEST(StopStrings, HoldsBackOnlyPossibleStartsOfAStopString) {
  StopStringFilter filter({"</s>", "STOP"});
  EXPECT_EQ(stream(filter, {"hello <", "/", "x> ST", "OR", "E"}),
            (std::vector<std::string>{"hello ", "", "</x> ", "STOR", "E", ""}));
  EXPECT_FALSE(filter.stopped());
}

TEST(StopStrings, StopsAtTheEarliestMatchAcrossPieces) {
  StopStringFilter filter({"STOP", "OP!", "ab"});
  EXPECT_EQ(stream(filter, {"xx S", "TO", "P! tail", "more"}), (std::vector<std::string>{"xx ", "", "", "", ""}));
  EXPECT_TRUE(filter.stopped());
  EXPECT_EQ(filter.matched(), "STOP");
}

TEST(StopStrings, TheMatchCompletedFirstWinsHoweverTheTextIsCut) {
  for (const auto& pieces : {std::vector<std::string>{"xaacc"}, std::vector<std::string>{"x", "a", "a", "c", "c"}}) {
    StopStringFilter filter({"aacc", "ac"});
    std::string out;
    for (const std::string& piece : stream(filter, pieces)) out += piece;
    EXPECT_EQ(out, "xa");
    EXPECT_EQ(filter.matched(), "ac");
  }
}

TEST(StopStrings, NoStopStringsPassEverything) {
  StopStringFilter filter({"", ""});
  EXPECT_EQ(stream(filter, {"a", "", "bc"}), (std::vector<std::string>{"a", "", "bc", ""}));
}

// Random texts over a small alphabet cut at random points, against a plain search.
TEST(StopStrings, RandomStreamsEqualTheTextBeforeTheFirstMatch) {
  testing::Rng rng(testing::test_seed());
  for (int round = 0; round < 500; ++round) {
    const auto random_text = [&](size_t length) {
      std::string text;
      for (size_t i = 0; i < length; ++i) text.push_back(static_cast<char>('a' + rng() % 3));
      return text;
    };
    const std::vector<std::string> stops = {random_text(1 + rng() % 4), random_text(1 + rng() % 4)};
    const std::string text = random_text(rng() % 30);
    // Reference: the first end position at which a stop string ends; the longest of those.
    size_t first = std::string::npos;
    for (size_t end = 1; end <= text.size() && first == std::string::npos; ++end) {
      for (const std::string& stop : stops) {
        if (stop.size() <= end && text.compare(end - stop.size(), stop.size(), stop) == 0) {
          first = std::min(first, end - stop.size());
        }
      }
    }
    StopStringFilter filter(stops);
    std::string out;
    for (size_t begin = 0; begin < text.size();) {
      const size_t length = std::min(text.size() - begin, static_cast<size_t>(rng() % 4));
      out += filter.push(text.substr(begin, length));
      // Never more than the text before the match, and never a completed stop string.
      ASSERT_LE(out.size(), std::min(first, text.size())) << text << " stops " << stops[0] << ", " << stops[1];
      begin += length;
    }
    out += filter.finish();
    EXPECT_EQ(out, text.substr(0, first)) << "text " << text << " stops " << stops[0] << ", " << stops[1];
    EXPECT_EQ(filter.stopped(), first != std::string::npos);
  }
}

}  // namespace
}  // namespace anvil::infer
