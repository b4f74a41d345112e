#pragma once
// What a loader (GGUF, tokenizer.json) extracts from its file: everything a BpeTokenizer is
// built from, already resolved to ids.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "added_tokens.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "anvil/tokenizer/pre_tokenizer.h"

namespace anvil::tokenizer {

enum class Normalizer : uint8_t { None, Nfc };

struct TokenizerSpec {
  struct Merge {
    int32_t left;
    int32_t right;
    int32_t merged;
  };

  std::string source;                    // file name, for messages
  std::vector<std::string> token_bytes;  // per id: the bytes it decodes to
  std::vector<TokenKind> token_kinds;    // per id
  std::vector<uint8_t> in_bpe_vocab;     // per id: BPE may produce it (byte tokens, whole-word lookups)
  std::vector<Merge> merges;             // in rank order
  std::vector<AddedToken> added_tokens;
  PreTokenizer pre_tokenizer;
  Normalizer normalizer = Normalizer::None;
  bool ignore_merges = false;  // a piece that is a whole vocabulary token is emitted as is (Llama 3)
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<int32_t> unknown;  // stands in for bytes without a token (else they are dropped)
  bool add_bos = false;
  bool add_eos = false;
};

// Builds the tokenizer; throws anvil::Error (naming spec.source) for inconsistent specs.
BpeTokenizer build_tokenizer(TokenizerSpec spec);

}  // namespace anvil::tokenizer
