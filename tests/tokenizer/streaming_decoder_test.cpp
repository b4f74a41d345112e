// Decoding: raw bytes and HF's lossy text for random id sequences (fixture), and the streaming
// decoder against a maximal-subpart U+FFFD reference written here, token by token.
#include "anvil/tokenizer/streaming_decoder.h"

#include <gtest/gtest.h>

#include "fixture.h"
#include "support/op_harness.h"

namespace anvil::tokenizer {
namespace {

using testing::escaped;
using testing::fixture_tokenizer;
using Ids = std::vector<int32_t>;

// Reference UTF-8 validation / replacement, written from Unicode Table 3-7 independently of
// the library: returns the length of the well-formed character at `pos`, or the length of the
// maximal ill-formed subpart as a negative number.
int reference_char_length(const std::string& bytes, size_t pos) {
  struct Row {
    unsigned char lead_low, lead_high, second_low, second_high;
    int length;
  };
  static const Row kRows[] = {{0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3},
                              {0xE1, 0xEC, 0x80, 0xBF, 3}, {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
                              {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4}};
  const auto at = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  for (const Row& row : kRows) {
    if (at(pos) < row.lead_low || at(pos) > row.lead_high) continue;
    for (int k = 1; k < row.length; ++k) {
      if (pos + static_cast<size_t>(k) >= bytes.size()) return -k;
      const unsigned char low = k == 1 ? row.second_low : 0x80;
      const unsigned char high = k == 1 ? row.second_high : 0xBF;
      if (at(pos + static_cast<size_t>(k)) < low || at(pos + static_cast<size_t>(k)) > high) return -k;
    }
    return row.length;
  }
  return -1;
}

std::string reference_lossy(const std::string& bytes) {
  std::string text;
  for (size_t pos = 0; pos < bytes.size();) {
    const int length = reference_char_length(bytes, pos);
    if (length > 0) {
      text += bytes.substr(pos, static_cast<size_t>(length));
      pos += static_cast<size_t>(length);
    } else {
      text += "\xEF\xBF\xBD";
      pos += static_cast<size_t>(-length);
    }
  }
  return text;
}

bool reference_valid(const std::string& text) {
  return reference_lossy(text) == text && text.find("\xEF\xBF\xBD") == std::string::npos;
}

TEST(Decode, MatchesHfTokenizers) {
  const BpeTokenizer& tokenizer = fixture_tokenizer("smollm2.json");
  for (const nlohmann::json& item : testing::cases().at("decode")) {
    const Ids ids = item.at("ids").get<Ids>();
    const std::string bytes = testing::from_hex(item.at("bytes_hex").get<std::string>());
    const std::string hf_text = item.at("text").get<std::string>();
    EXPECT_EQ(tokenizer.decode(ids), bytes);
    EXPECT_EQ(reference_lossy(bytes), hf_text);  // the test's reference agrees with HF
    StreamingDecoder stream(tokenizer);
    std::string text;
    for (const int32_t id : ids) text += stream.push(id);
    text += stream.finish();
    EXPECT_EQ(text, hf_text) << escaped(bytes);
  }
}

TEST(StreamingDecoder, HoldsBackASplitCharacter) {
  const BpeTokenizer& tokenizer = fixture_tokenizer("small_gpt2.json");
  const int32_t c3 = *tokenizer.find_token("\xc3");
  const int32_t a9 = *tokenizer.find_token("\xa9");
  const int32_t e2 = *tokenizer.find_token("\xe2");
  StreamingDecoder stream(tokenizer);
  EXPECT_EQ(stream.push(c3), "");
  EXPECT_EQ(stream.pending_bytes(), 1U);
  EXPECT_EQ(stream.push(a9), "\xc3\xa9");
  EXPECT_EQ(stream.pending_bytes(), 0U);
  EXPECT_EQ(stream.push(e2), "");
  EXPECT_EQ(stream.push(*tokenizer.find_token("a")),
            "\xEF\xBF\xBD"
            "a");  // \xe2 then 'a' is ill-formed
  EXPECT_EQ(stream.push(e2), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // unfinished at the end
  EXPECT_EQ(stream.finish(), "");
  EXPECT_THROW((void)stream.push(-5), Error);
}

TEST(StreamingDecoder, SkipsSpecialTokensOnRequest) {
  const BpeTokenizer& tokenizer = fixture_tokenizer("smollm2.json");
  const Ids ids = tokenizer.encode("<|im_start|>héllo<|im_end|>");
  StreamingDecoder keep(tokenizer);
  StreamingDecoder skip(tokenizer, {.skip_special = true});
  std::string kept;
  std::string skipped;
  for (const int32_t id : ids) {
    kept += keep.push(id);
    skipped += skip.push(id);
  }
  EXPECT_EQ(kept, "<|im_start|>héllo<|im_end|>");
  EXPECT_EQ(skipped, "héllo");
}

// Random id streams rich in partial-UTF-8 tokens: every push returns valid UTF-8, the stream
// never holds more than 3 bytes, and the whole output is the lossy decoding of all bytes.
TEST(StreamingDecoder, RandomStreamsMatchLossyDecoding) {
  const BpeTokenizer& tokenizer = fixture_tokenizer("smollm2.json");
  Ids partial;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const std::string bytes(tokenizer.token_bytes(id));
    if (!reference_valid(bytes)) partial.push_back(id);
  }
  ASSERT_GT(partial.size(), 100U);
  anvil::testing::Rng rng(anvil::testing::test_seed());
  for (int trial = 0; trial < 300; ++trial) {
    Ids ids(rng() % 20);
    for (int32_t& id : ids) {
      id = rng() % 3 != 0 ? partial[rng() % partial.size()] : static_cast<int32_t>(rng() % tokenizer.vocab_size());
    }
    StreamingDecoder stream(tokenizer);
    std::string text;
    for (const int32_t id : ids) {
      const std::string piece = stream.push(id);
      ASSERT_EQ(reference_lossy(piece), piece) << "push returned ill-formed UTF-8";
      ASSERT_LE(stream.pending_bytes(), 3U);
      text += piece;
    }
    text += stream.finish();
    EXPECT_EQ(text, reference_lossy(tokenizer.decode(ids))) << escaped(tokenizer.decode(ids));
  }
}

}  // namespace
}  // namespace anvil::tokenizer
