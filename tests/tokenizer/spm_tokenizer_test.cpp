// SpmTokenizer: token ids identical to sentencepiece itself and to Hugging Face `tokenizers` on
// the fixture corpus (tools/gen_spm_tokenizer_fixtures.py: a SentencePiece BPE with byte fallback
// trained there, as GGUF, a Llama-2-style tokenizer.json and a Metaspace tokenizer.json, plus
// variants); decoding; round trips; ill-formed UTF-8; load_tokenizer; bad files.
#include "anvil/tokenizer/spm_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "anvil/core/error.h"
#include "anvil/io/gguf_writer.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/tokenizer/streaming_decoder.h"
#include "fixture.h"
#include "support/op_harness.h"

namespace anvil::tokenizer {
namespace {

using testing::escaped;
using Ids = std::vector<int32_t>;

const nlohmann::json& spm_cases() {
  static const nlohmann::json kCases =
      nlohmann::json::parse(testing::read_file(testing::kFixtureDir + "spm_cases.json"));
  return kCases;
}

std::vector<std::string> spm_texts() { return spm_cases().at("texts").get<std::vector<std::string>>(); }

const SpmTokenizer& spm_fixture(const std::string& name) {
  static std::map<std::string, SpmTokenizer> loaded;
  auto found = loaded.find(name);
  if (found == loaded.end()) {
    const std::string path = testing::kFixtureDir + name;
    found = loaded
                .emplace(name, name.ends_with(".gguf") ? SpmTokenizer::from_gguf_file(path)
                                                       : SpmTokenizer::from_hf_json_file(path))
                .first;
  }
  return found->second;
}

bool contains_added_text(const std::string& text) {
  for (const char* added : {"<s>", "</s>", "<unk>", "<tool>"}) {
    if (text.find(added) != std::string::npos) return true;
  }
  return false;
}

// `text` with every "▁" as a space: SentencePiece reads "▁" in the text as a space.
std::string marks_as_spaces(std::string text) {
  for (size_t pos = text.find("▁"); pos != std::string::npos; pos = text.find("▁", pos + 1)) {
    text.replace(pos, std::string_view("▁").size(), " ");
  }
  return text;
}

// Every corpus text through `tokenizer`, compared with `expected` (one id list per text).
void expect_corpus_ids(const Tokenizer& tokenizer, const nlohmann::json& expected, const std::string& label) {
  const std::vector<std::string> texts = spm_texts();
  ASSERT_EQ(expected.size(), texts.size()) << label;
  for (size_t index = 0; index < texts.size(); ++index) {
    EXPECT_EQ(tokenizer.encode(texts[index]), expected[index].get<Ids>())
        << label << " text " << index << " '" << escaped(texts[index]) << "'";
  }
}

TEST(SpmTokenizer, MatchesSentencePiece) {
  const nlohmann::json& reference = spm_cases().at("sentencepiece");
  const auto indices = reference.at("indices").get<std::vector<size_t>>();
  const auto expected = reference.at("ids").get<std::vector<Ids>>();
  ASSERT_GT(indices.size(), 300U);
  const std::vector<std::string> texts = spm_texts();
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json"}) {
    SCOPED_TRACE(spm_fixture(name).describe());
    for (size_t case_index = 0; case_index < indices.size(); ++case_index) {
      const std::string& text = texts[indices[case_index]];
      EXPECT_EQ(spm_fixture(name).encode(text), expected[case_index]) << name << " '" << escaped(text) << "'";
    }
  }
}

TEST(SpmTokenizer, MatchesHfTokenizers) {
  const nlohmann::json& encodings = spm_cases().at("encodings");
  for (const std::string name : {"small_spm_llama2.json", "small_spm_metaspace.json"}) {
    SCOPED_TRACE(spm_fixture(name).describe());
    expect_corpus_ids(spm_fixture(name), encodings.at(name), name);
  }
  // llama.cpp's rules for a GGUF (space prefix after every special token too) are HF's legacy ones.
  expect_corpus_ids(spm_fixture("small_spm.gguf"), encodings.at("small_spm_llama2.json"), "small_spm.gguf");
}

// Metaspace prepend_scheme "always" with split, ignore_merges, no byte fallback (<unk> runs).
TEST(SpmTokenizer, MatchesHfTokenizersOnVariants) {
  for (const auto& [name, variant] : spm_cases().at("variants").items()) {
    std::string json = testing::read_file(testing::kFixtureDir + variant.at("base").get<std::string>());
    for (const nlohmann::json& replacement : variant.at("replacements")) {
      const std::string from = replacement[0].get<std::string>();
      const size_t pos = json.find(from);
      ASSERT_NE(pos, std::string::npos) << name << ": " << from;
      json.replace(pos, from.size(), replacement[1].get<std::string>());
    }
    const SpmTokenizer tokenizer = SpmTokenizer::from_hf_json(json, name);
    SCOPED_TRACE(tokenizer.describe());
    expect_corpus_ids(tokenizer, variant.at("ids"), name);
  }
}

TEST(SpmTokenizer, BosEosAndDefaults) {
  const std::vector<std::string> texts = spm_texts();
  const auto expected = spm_cases().at("with_bos").at("small_spm_llama2.json").get<std::vector<Ids>>();
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json"}) {
    const SpmTokenizer& tokenizer = spm_fixture(name);
    EXPECT_TRUE(tokenizer.add_bos_by_default()) << name;
    EXPECT_FALSE(tokenizer.add_eos_by_default()) << name;
    EXPECT_EQ(tokenizer.bos_id(), std::optional<int32_t>(1)) << name;
    EXPECT_EQ(tokenizer.eos_id(), std::optional<int32_t>(2)) << name;
    for (size_t index = 0; index < expected.size(); ++index) {
      EXPECT_EQ(tokenizer.encode(texts[index], {.add_bos = true}), expected[index]) << name << " text " << index;
    }
    const Ids with_eos = tokenizer.encode("Hello", {.add_bos = true, .add_eos = true});
    ASSERT_GE(with_eos.size(), 3U);
    EXPECT_EQ(with_eos.front(), 1);
    EXPECT_EQ(with_eos.back(), 2);
  }
  // The Metaspace file (as transformers v5 writes it) has no BOS in its post-processor.
  EXPECT_FALSE(spm_fixture("small_spm_metaspace.json").add_bos_by_default());
  EXPECT_EQ(spm_fixture("small_spm_metaspace.json").bos_id(), std::optional<int32_t>(1));
}

TEST(SpmTokenizer, DecodeMatchesHf) {
  const std::vector<std::string> texts = spm_texts();
  const auto expected = spm_cases().at("decode").at("small_spm_llama2.json").get<std::vector<std::string>>();
  ASSERT_EQ(expected.size(), texts.size());
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json"}) {
    const SpmTokenizer& tokenizer = spm_fixture(name);
    EXPECT_TRUE(tokenizer.strips_leading_space());
    for (size_t index = 0; index < texts.size(); ++index) {
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(texts[index], {.add_bos = true})), expected[index])
          << name << " '" << escaped(texts[index]) << "'";
    }
  }
}

// With a space prefix on every stretch of text, decode gives back exactly the text (added tokens
// aside: the stretch after one gets its own prefix; and "▁" comes back as a space).
TEST(SpmTokenizer, DecodeInvertsEncode) {
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json"}) {
    const SpmTokenizer& tokenizer = spm_fixture(name);
    for (const std::string& text : spm_texts()) {
      if (contains_added_text(text)) continue;
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), marks_as_spaces(text))
          << name << " '" << escaped(text) << "'";
    }
  }
}

TEST(SpmTokenizer, RandomBytesRoundTripByteForByte) {
  const SpmTokenizer& tokenizer = spm_fixture("small_spm.gguf");
  anvil::testing::Rng rng(anvil::testing::test_seed());
  const std::vector<std::string> pieces = {
      "a", "the", " ", "  ", "\n", "7", "▁", "é", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\xe2\x82", "\xff"};
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes;
    const size_t length = rng() % 48;
    for (size_t i = 0; i < length; ++i) {
      if (rng() % 3 == 0) {
        bytes.push_back(static_cast<char>(rng() % 256));
      } else {
        bytes += pieces[rng() % pieces.size()];
      }
    }
    if (contains_added_text(bytes)) continue;
    const Ids ids = tokenizer.encode(bytes);
    EXPECT_EQ(tokenizer.decode(ids), marks_as_spaces(bytes)) << escaped(bytes);
  }
}

TEST(SpmTokenizer, IllFormedUtf8) {
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json"}) {
    const SpmTokenizer& tokenizer = spm_fixture(name);
    for (const nlohmann::json& item : spm_cases().at("invalid_utf8")) {
      const std::string text = testing::from_hex(item.at("hex").get<std::string>());
      EXPECT_EQ(tokenizer.encode(text, {.invalid_utf8 = InvalidUtf8::Replace}), item.at("replace").get<Ids>())
          << name << " " << escaped(text);
      // PassThrough: each ill-formed byte becomes its byte token.
      const Ids ids = tokenizer.encode(text);
      EXPECT_EQ(tokenizer.decode(ids), text) << name << " " << escaped(text);
    }
  }
}

TEST(SpmTokenizer, StreamingDecoderMatchesDecode) {
  const SpmTokenizer& tokenizer = spm_fixture("small_spm_llama2.json");
  for (const std::string& text : spm_texts()) {
    const Ids ids = tokenizer.encode(text, {.add_bos = true});
    for (const bool skip : {false, true}) {
      StreamingDecoder stream(tokenizer, {.skip_special = skip});
      std::string streamed;
      for (const int32_t id : ids) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, tokenizer.decode(ids, {.skip_special = skip})) << escaped(text);
    }
  }
}

// The word cache and threads must not change results.
TEST(SpmTokenizer, ResultsDoNotDependOnCacheOrThreads) {
  const SpmTokenizer tokenizer = SpmTokenizer::from_gguf_file(testing::kFixtureDir + "small_spm.gguf");
  const std::vector<std::string> texts = spm_texts();
  const auto expected = spm_cases().at("encodings").at("small_spm_llama2.json").get<std::vector<Ids>>();
  testing::expect_independent_of_cache_and_threads(tokenizer, texts, expected);
}

TEST(SpmTokenizer, Accessors) {
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json", "small_spm_metaspace.json"}) {
    const SpmTokenizer& tokenizer = spm_fixture(name);
    EXPECT_EQ(tokenizer.vocab_size(), 2000) << name;
    EXPECT_EQ(tokenizer.token_kind(0), TokenKind::Special) << name;
    EXPECT_EQ(tokenizer.token_kind(3), TokenKind::UserDefined) << name;
    const std::optional<int32_t> byte_a = tokenizer.find_token("\xff");
    ASSERT_TRUE(byte_a.has_value()) << name;
    EXPECT_EQ(tokenizer.token_kind(*byte_a), TokenKind::Byte) << name;
    EXPECT_EQ(tokenizer.find_token("<tool>"), std::optional<int32_t>(3)) << name;
    const std::optional<int32_t> the = tokenizer.find_token(" the");
    ASSERT_TRUE(the.has_value()) << name;
    EXPECT_EQ(tokenizer.token_bytes(*the), " the");
    EXPECT_EQ(tokenizer.token_kind(*the), TokenKind::Normal);
    const std::optional<int32_t> letter = tokenizer.find_token("e");
    ASSERT_TRUE(letter.has_value());
    EXPECT_EQ(tokenizer.token_kind(*letter), TokenKind::Normal) << "a text token is preferred to <0x65>";
    EXPECT_EQ(tokenizer.decode(Ids{1, *the, 2}), "<s> the</s>");
    EXPECT_EQ(tokenizer.decode(Ids{1, *the, 2}, {.skip_special = true}), "the");
    EXPECT_THROW((void)tokenizer.decode(Ids{2000}), Error);
    EXPECT_THROW((void)tokenizer.token_bytes(-1), Error);
    EXPECT_TRUE(tokenizer.encode("").empty());
    EXPECT_NE(tokenizer.describe().find("SentencePiece"), std::string::npos);
  }
}

TEST(LoadTokenizer, PicksTheImplementation) {
  const auto is_spm = [](const std::shared_ptr<const Tokenizer>& tokenizer) {
    return dynamic_cast<const SpmTokenizer*>(tokenizer.get()) != nullptr;
  };
  const auto is_bpe = [](const std::shared_ptr<const Tokenizer>& tokenizer) {
    return dynamic_cast<const BpeTokenizer*>(tokenizer.get()) != nullptr;
  };
  for (const std::string name : {"small_spm.gguf", "small_spm_llama2.json", "small_spm_metaspace.json"}) {
    EXPECT_TRUE(is_spm(load_tokenizer(testing::kFixtureDir + name))) << name;
  }
  for (const std::string name : {"small_qwen2.gguf", "small_qwen2.json", "smollm2.json", "small_llama3.json"}) {
    EXPECT_TRUE(is_bpe(load_tokenizer(testing::kFixtureDir + name))) << name;
  }
  // A model folder with a tokenizer.json.
  const std::filesystem::path folder = std::filesystem::path(::testing::TempDir()) / "anvil_spm_model";
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(testing::kFixtureDir + "small_spm_llama2.json", folder / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  const std::shared_ptr<const Tokenizer> from_folder = load_tokenizer(folder.string());
  EXPECT_TRUE(is_spm(from_folder));
  const std::vector<std::string> texts = spm_texts();
  EXPECT_EQ(from_folder->encode(texts[5]), spm_fixture("small_spm_llama2.json").encode(texts[5]));
  std::filesystem::remove(folder / "tokenizer.json");
  EXPECT_THROW((void)load_tokenizer(folder.string()), Error);
  std::filesystem::remove(folder);
  EXPECT_THROW((void)load_tokenizer(testing::kFixtureDir + "missing.gguf"), Error);
  EXPECT_THROW((void)load_tokenizer(testing::kFixtureDir + "spm_cases.json"), Error);
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const size_t pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return pos == std::string::npos ? text : text.replace(pos, from.size(), to);
}

TEST(SpmTokenizer, RejectsUnsupportedOrBrokenJson) {
  const std::string good = testing::read_file(testing::kFixtureDir + "small_spm_llama2.json");
  const std::string metaspace = testing::read_file(testing::kFixtureDir + "small_spm_metaspace.json");
  EXPECT_NO_THROW((void)SpmTokenizer::from_hf_json(good));
  EXPECT_THROW((void)SpmTokenizer::from_hf_json("{not json"), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json("{}"), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json("[1, 2]"), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("type":"Prepend")", R"("type":"NFKC")")), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("content":"▁")", R"("content":"_")")), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("type":"BPE")", R"("type":"Unigram")")), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("dropout":null)", R"("dropout":0.1)")), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("merges":[)", R"("merges":["zzqq xxww",)")),
               Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(replace_once(good, R"("<0x41>":)", R"("<0x41>":99999999,"x":)")),
               Error);
  EXPECT_THROW(
      (void)SpmTokenizer::from_hf_json(replace_once(metaspace, R"("replacement":"▁")", R"("replacement":"_")")), Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json(
                   replace_once(metaspace, R"("prepend_scheme":"first")", R"("prepend_scheme":"sometimes")")),
               Error);
  EXPECT_THROW(
      (void)SpmTokenizer::from_hf_json(replace_once(metaspace, R"("type":"Metaspace")", R"("type":"Whitespace")")),
      Error);
  EXPECT_THROW((void)SpmTokenizer::from_hf_json_file(testing::kFixtureDir + "missing.json"), Error);
}

io::GgufValue string_array(const std::vector<std::string>& strings) {
  io::GgufArray array{io::GgufType::String, {}};
  for (const std::string& text : strings) array.items.push_back(io::GgufWriter::string(text));
  return {io::GgufType::Array, std::move(array)};
}

io::GgufValue int_array(const std::vector<int32_t>& values) {
  io::GgufArray array{io::GgufType::I32, {}};
  for (const int32_t value : values) array.items.push_back(io::GgufWriter::i32(value));
  return {io::GgufType::Array, std::move(array)};
}

io::GgufValue float_array(const std::vector<float>& values) {
  io::GgufArray array{io::GgufType::F32, {}};
  for (const float value : values) array.items.push_back(io::GgufWriter::f32(value));
  return {io::GgufType::Array, std::move(array)};
}

// A vocabulary with a token that has "▁" after another character ("a▁") merges across word
// starts, so the text must not be cut into words there: "a b" -> "▁a▁b" -> ▁ a▁ b.
TEST(SpmTokenizer, MergesAcrossWordStartsWhenTheVocabularyDoes) {
  const std::string path = ::testing::TempDir() + "anvil_spm_across_words.gguf";
  io::GgufWriter writer;
  writer.set("tokenizer.ggml.model", io::GgufWriter::string("llama"));
  writer.set("tokenizer.ggml.tokens", string_array({"▁", "a", "b", "a▁", "▁b", "▁a"}));
  writer.set("tokenizer.ggml.scores", float_array({0, 0, 0, -1, -2, -3}));
  writer.set("tokenizer.ggml.token_type", int_array({1, 1, 1, 1, 1, 1}));
  writer.write(path);
  const SpmTokenizer tokenizer = SpmTokenizer::from_gguf_file(path);
  EXPECT_EQ(tokenizer.describe().find("word cache"), std::string::npos) << tokenizer.describe();
  EXPECT_EQ(tokenizer.encode("a b"), (Ids{0, 3, 2}));
  EXPECT_EQ(tokenizer.encode("b a"), (Ids{4, 5}));  // "▁b▁a": no "b▁", so ▁b then ▁a
  std::filesystem::remove(path);
}

TEST(SpmTokenizer, ReadsAndRejectsGguf) {
  const std::string path = ::testing::TempDir() + "anvil_spm_tokenizer_test.gguf";
  io::GgufWriter writer;
  writer.set("tokenizer.ggml.model", io::GgufWriter::string("gpt2"));
  writer.write(path);
  EXPECT_THROW((void)SpmTokenizer::from_gguf_file(path), Error);
  writer.set("tokenizer.ggml.model", io::GgufWriter::string("llama"));
  writer.write(path);
  EXPECT_THROW((void)SpmTokenizer::from_gguf_file(path), Error);  // no tokens
  // A tiny vocabulary without scores: ties merge leftmost first.
  writer.set("tokenizer.ggml.tokens", string_array({"<unk>", "<0x61>", "a", "aa", "▁", "▁a"}));
  writer.set("tokenizer.ggml.token_type", int_array({2, 6, 1, 1, 1, 1}));
  writer.set("tokenizer.ggml.unknown_token_id", io::GgufWriter::u32(0));
  writer.write(path);
  const SpmTokenizer tiny = SpmTokenizer::from_gguf_file(path);
  EXPECT_FALSE(tiny.add_bos_by_default());     // add_bos_token defaults to true, but there is no BOS
  EXPECT_EQ(tiny.encode("aaa"), (Ids{5, 3}));  // "▁aaa": ▁a first (leftmost), then aa
  EXPECT_EQ(tiny.encode("b"), (Ids{4, 0}));    // no token, no byte token for 'b': <unk>
  EXPECT_EQ(tiny.decode(Ids{5, 3}), "aaa");
  writer.set("tokenizer.ggml.token_type", int_array({2, 6, 1}));
  writer.write(path);
  EXPECT_THROW((void)SpmTokenizer::from_gguf_file(path), Error);  // token_type length
  writer.set("tokenizer.ggml.token_type", int_array({2, 6, 6, 1, 1, 1}));
  writer.write(path);
  EXPECT_THROW((void)SpmTokenizer::from_gguf_file(path), Error);  // "a" is no <0xXX>
  writer.set("tokenizer.ggml.token_type", int_array({2, 6, 1, 1, 1, 1}));
  writer.set("tokenizer.ggml.bos_token_id", io::GgufWriter::u32(6));
  writer.write(path);
  EXPECT_THROW((void)SpmTokenizer::from_gguf_file(path), Error);  // BOS out of range
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace anvil::tokenizer
