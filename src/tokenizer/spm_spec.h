#pragma once
// What the SentencePiece loaders (GGUF, tokenizer.json) extract from their file: everything an
// SpmTokenizer is built from, already resolved to ids.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "added_tokens.h"
#include "anvil/tokenizer/spm_tokenizer.h"

namespace anvil::tokenizer {

// Where the "▁" that stands for a leading space goes (Metaspace pre-tokenizer's prepend_scheme).
enum class MetaspacePrepend : uint8_t {
  Never,
  First,   // only before the piece at the very start of the text, unless it starts with "▁" already
  Always,  // before every piece that does not start with "▁"
};

struct SpmSpec {
  struct Merge {
    int32_t left;
    int32_t right;
    int32_t merged;
    int32_t rank;  // lower merges first; equal ranks merge leftmost first
  };

  std::string source;                    // file name, for messages
  std::vector<std::string> token_texts;  // per id, as stored: "▁the", "<0x41>", "<s>"
  std::vector<TokenKind> token_kinds;    // per id (Byte for the <0xXX> tokens)
  std::vector<uint8_t> in_bpe_vocab;     // per id: a character may start as it / ignore_merges may emit it
  std::vector<Merge> merges;
  std::vector<AddedToken> added_tokens;
  // Normalizer: Prepend("▁") to every stretch of text between (raw) added tokens (GGUF
  // add_space_prefix, as llama.cpp after BOS and every special token), and Replace(" ", "▁").
  bool prepend_space = false;
  bool escape_spaces = false;
  // Metaspace pre-tokenizer: writes spaces as "▁", prepends one per `prepend`, and with `split`
  // starts a new piece at every "▁".
  bool metaspace = false;
  MetaspacePrepend metaspace_prepend = MetaspacePrepend::Never;
  bool metaspace_split = false;
  bool strip_leading_space = false;  // decode drops one space at the start (HF's Strip decoder)
  bool byte_fallback = true;         // characters without a token become <0xXX> tokens
  bool fuse_unknown = true;          // a run of characters without any token becomes one <unk>
  bool ignore_merges = false;        // a piece that is a whole vocabulary token is emitted as is
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<int32_t> unknown;
  bool add_bos = false;
  bool add_eos = false;
  std::string merge_order;  // "score" or "rank", for describe()
};

// Builds the tokenizer; throws anvil::Error (naming spec.source) for inconsistent specs.
SpmTokenizer build_spm_tokenizer(SpmSpec spec);

// The byte a token text "<0xXX>" (two upper- or lower-case hex digits) stands for, or -1.
int parse_byte_token(std::string_view text);

}  // namespace anvil::tokenizer
