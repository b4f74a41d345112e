#pragma once
// Shared by the tokenizer tests: the fixtures written by tools/gen_tokenizer_fixtures.py
// with Hugging Face `tokenizers` (the reference), and small helpers.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/tokenizer/tokenizer.h"

namespace anvil::tokenizer::testing {

inline const std::string kFixtureDir = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/tokenizer/";
// The tokenizer.json fixtures whose encodings cases.json holds.
inline const std::vector<std::string> kJsonTokenizers = {"smollm2.json", "small_llama3.json", "small_qwen2.json",
                                                         "small_gpt2.json"};

inline std::string read_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

// cases.json: texts, pieces per split pattern, ids per tokenizer, invalid UTF-8 and decode cases.
inline const nlohmann::json& cases() {
  static const nlohmann::json kCases = nlohmann::json::parse(read_file(kFixtureDir + "cases.json"));
  return kCases;
}

inline std::vector<std::string> corpus() { return cases().at("texts").get<std::vector<std::string>>(); }

// One loaded tokenizer per fixture file for the whole test binary.
inline const BpeTokenizer& fixture_tokenizer(const std::string& name) {
  static std::map<std::string, BpeTokenizer> loaded;
  auto found = loaded.find(name);
  if (found == loaded.end()) found = loaded.emplace(name, BpeTokenizer::from_hf_json_file(kFixtureDir + name)).first;
  return found->second;
}

inline std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return bytes;
}

// `text` with control and non-ASCII bytes escaped, for failure messages.
inline std::string escaped(std::string_view text) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    }
  }
  return out;
}

// The word cache and threads must not change results: a fresh tokenizer encodes `texts`
// backwards (other words cached first), then three threads encode them at once.
inline void expect_independent_of_cache_and_threads(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                                                    const std::vector<std::vector<int32_t>>& expected) {
  for (size_t index = texts.size(); index-- > 0;) EXPECT_EQ(tokenizer.encode(texts[index]), expected[index]);
  std::vector<int> mismatches(3, 0);
  std::vector<std::thread> threads;
  for (size_t worker = 0; worker < mismatches.size(); ++worker) {
    threads.emplace_back([&, worker] {
      for (size_t index = worker; index < texts.size(); index += 2)
        mismatches[worker] += tokenizer.encode(texts[index]) != expected[index];
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(3, 0));
}

}  // namespace anvil::tokenizer::testing
