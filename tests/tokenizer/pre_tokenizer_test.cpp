// Pre-tokenizers: the hand-written split patterns against the pieces Hugging Face `tokenizers`
// (Oniguruma regexes) makes of the fixture corpus, a few readable cases, and random input.
#include "anvil/tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <map>

#include "anvil/core/error.h"
#include "fixture.h"
#include "support/op_harness.h"

namespace anvil::tokenizer {
namespace {

using testing::escaped;

std::vector<std::string> piece_strings(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> pieces;
  for (const std::string_view piece : pre.pieces(text)) pieces.emplace_back(piece);
  return pieces;
}

std::string joined(const std::vector<std::string_view>& pieces) {
  std::string text;
  for (const std::string_view piece : pieces) text += "[" + escaped(piece) + "]";
  return text;
}

TEST(PreTokenizer, MatchesHfTokenizersOnCorpus) {
  const std::map<std::string, PreTokenizer> patterns = {{"gpt2", PreTokenizer::gpt2()},
                                                        {"smollm", PreTokenizer::smollm()},
                                                        {"llama3", PreTokenizer::llama3()},
                                                        {"qwen2", PreTokenizer::qwen2()}};
  const std::vector<std::string> texts = testing::corpus();
  for (const auto& [name, pre] : patterns) {
    const auto expected = testing::cases().at("pieces").at(name).get<std::vector<std::vector<size_t>>>();
    ASSERT_EQ(expected.size(), texts.size());
    for (size_t index = 0; index < texts.size(); ++index) {
      const std::vector<std::string_view> pieces = pre.pieces(texts[index]);
      std::vector<size_t> lengths;
      for (const std::string_view piece : pieces) lengths.push_back(piece.size());
      EXPECT_EQ(lengths, expected[index])
          << name << " text " << index << " '" << escaped(texts[index]) << "' split as " << joined(pieces);
    }
  }
}

TEST(PreTokenizer, Gpt2KeepsOneLeadingSpaceAndContractions) {
  const PreTokenizer pre = PreTokenizer::gpt2();
  EXPECT_EQ(piece_strings(pre, "Hello world"), (std::vector<std::string>{"Hello", " world"}));
  EXPECT_EQ(piece_strings(pre, "I'm here"), (std::vector<std::string>{"I", "'m", " here"}));
  EXPECT_EQ(piece_strings(pre, "a  b"), (std::vector<std::string>{"a", " ", " b"}));
  EXPECT_EQ(piece_strings(pre, "x\t\ty"), (std::vector<std::string>{"x", "\t", "\t", "y"}));
  EXPECT_EQ(piece_strings(pre, "it's 2024!!"), (std::vector<std::string>{"it", "'s", " 2024", "!!"}));
  EXPECT_EQ(piece_strings(pre, "end  "), (std::vector<std::string>{"end", "  "}));
}

TEST(PreTokenizer, Llama3GroupsDigitsByThreeAndEndsWhitespaceAtNewlines) {
  const PreTokenizer pre = PreTokenizer::llama3();
  EXPECT_EQ(piece_strings(pre, "I'M here"), (std::vector<std::string>{"I", "'M", " here"}));
  EXPECT_EQ(piece_strings(pre, "12345678"), (std::vector<std::string>{"123", "456", "78"}));
  EXPECT_EQ(piece_strings(pre, "(hello) x"), (std::vector<std::string>{"(hello", ")", " x"}));
  EXPECT_EQ(piece_strings(pre, "a\n\n  b"), (std::vector<std::string>{"a", "\n\n", " ", " b"}));
  EXPECT_EQ(piece_strings(pre, "...\n\nx"), (std::vector<std::string>{"...\n\n", "x"}));
  EXPECT_EQ(piece_strings(pre, "a 1"), (std::vector<std::string>{"a", " ", "1"}));
  EXPECT_EQ(piece_strings(PreTokenizer::qwen2(), "12345"), (std::vector<std::string>{"1", "2", "3", "4", "5"}));
}

TEST(PreTokenizer, SmolLmIsolatesEachDigitFirst) {
  const PreTokenizer pre = PreTokenizer::smollm();
  EXPECT_EQ(piece_strings(pre, "abc123 4"), (std::vector<std::string>{"abc", "1", "2", "3", " ", "4"}));
  EXPECT_EQ(piece_strings(pre, "a 12"), (std::vector<std::string>{"a", " ", "1", "2"}));
  EXPECT_EQ(piece_strings(PreTokenizer().digits(false), "ab123c4"), (std::vector<std::string>{"ab", "123", "c", "4"}));
}

TEST(PreTokenizer, IllFormedUtf8CountsAsOneNonLetterCharacterPerSubpart) {
  // \xff and \xfe are two ill-formed subparts: a run of two "other" characters.
  EXPECT_EQ(piece_strings(PreTokenizer::gpt2(),
                          "ab\xff\xfe"
                          "cd"),
            (std::vector<std::string>{"ab", "\xff\xfe", "cd"}));
  // \xe2\x82 (a truncated 3-byte character) is one subpart: it prefixes letters in Llama 3.
  EXPECT_EQ(piece_strings(PreTokenizer::llama3(),
                          "1\xe2\x82"
                          "cd"),
            (std::vector<std::string>{"1",
                                      "\xe2\x82"
                                      "cd"}));
  EXPECT_EQ(piece_strings(PreTokenizer::gpt2(), " \xc3"), (std::vector<std::string>{" \xc3"}));
}

TEST(PreTokenizer, WithoutStepsTheTextIsOnePiece) {
  EXPECT_EQ(piece_strings(PreTokenizer(), "a b  c"), (std::vector<std::string>{"a b  c"}));
  EXPECT_TRUE(PreTokenizer::gpt2().pieces("").empty());
}

TEST(PreTokenizer, FromGgufName) {
  EXPECT_EQ(PreTokenizer::from_gguf_name("smollm"), PreTokenizer::smollm());
  EXPECT_EQ(PreTokenizer::from_gguf_name("llama-bpe"), PreTokenizer::llama3());
  EXPECT_EQ(PreTokenizer::from_gguf_name("qwen2"), PreTokenizer::qwen2());
  EXPECT_EQ(PreTokenizer::from_gguf_name("gpt-2"), PreTokenizer::gpt2());
  EXPECT_EQ(PreTokenizer::from_gguf_name("default"), PreTokenizer::gpt2());
  EXPECT_EQ(PreTokenizer::smollm().describe(), "Digits(individual) > Split(gpt2)");
  EXPECT_THROW((void)PreTokenizer::from_gguf_name("no-such-tokenizer"), Error);
}

// Random strings of characters from every class the patterns tell apart, and random bytes:
// the pieces are never empty and tile the text.
TEST(PreTokenizer, PiecesTileRandomText) {
  anvil::testing::Rng rng(anvil::testing::test_seed());
  const std::vector<std::string> alphabet = {"a",
                                             "Z",
                                             "7",
                                             " ",
                                             "  ",
                                             "\t",
                                             "\n",
                                             "\r",
                                             "'",
                                             "'s",
                                             "'LL",
                                             "!",
                                             "\xc2\xa0",
                                             "\xc3\xa9",
                                             "\xe4\xb8\xad",
                                             "\xd9\xa3",
                                             "\xf0\x9f\x98\x80",
                                             "\xcc\x81",
                                             "\xff",
                                             "\xe2\x82",
                                             "\xc5\xbf"};
  const std::vector<PreTokenizer> patterns = {PreTokenizer::gpt2(), PreTokenizer::smollm(), PreTokenizer::llama3(),
                                              PreTokenizer::qwen2(), PreTokenizer().digits(false)};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const size_t length = rng() % 40;
    for (size_t i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
    for (const PreTokenizer& pre : patterns) {
      std::string rebuilt;
      for (const std::string_view piece : pre.pieces(text)) {
        ASSERT_FALSE(piece.empty()) << pre.describe() << " on '" << escaped(text) << "'";
        rebuilt += piece;
      }
      ASSERT_EQ(rebuilt, text) << pre.describe();
    }
  }
}

}  // namespace
}  // namespace anvil::tokenizer
