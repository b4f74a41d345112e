#pragma once
// What the byte-level BPE and the SentencePiece tokenizers share: every token's bytes in one
// arena with its kind, the added tokens (found by content, and cut out of the text before
// and after normalization), BOS / EOS and whether they are added by default, and the frame
// of an encode call around a tokenizer's own encoder of the text between added tokens.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "added_tokens.h"
#include "anvil/tokenizer/tokenizer.h"
#include "utf8.h"

namespace anvil::tokenizer {

struct SpecialTokens {
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  bool add_bos = false;  // by default (EncodeOptions are the caller's)
  bool add_eos = false;
};

class Vocabulary {
 public:
  // token_bytes and kinds per id. Throws anvil::Error naming `source` for an empty, oversized
  // or inconsistent vocabulary, or an added token or special outside it.
  Vocabulary(std::string source, const std::vector<std::string>& token_bytes, std::vector<TokenKind> kinds,
             const std::vector<AddedToken>& added, SpecialTokens specials);
  // bytes_of views stay valid for the vocabulary's life: it never moves.
  Vocabulary(const Vocabulary&) = delete;
  Vocabulary& operator=(const Vocabulary&) = delete;

  [[nodiscard]] const std::string& source() const { return source_; }
  [[nodiscard]] int32_t size() const { return static_cast<int32_t>(kinds_.size()); }
  // Throws anvil::Error naming the source for an id outside [0, size()).
  void check_id(int32_t id) const;
  // Unchecked (id in range).
  [[nodiscard]] std::string_view bytes_of(int32_t id) const {
    const auto index = static_cast<size_t>(id);
    return std::string_view(arena_).substr(offsets_[index], offsets_[index + 1] - offsets_[index]);
  }
  [[nodiscard]] TokenKind kind_of(int32_t id) const { return kinds_[static_cast<size_t>(id)]; }
  [[nodiscard]] std::optional<int32_t> find_added(std::string_view content) const;
  [[nodiscard]] size_t added_count() const { return added_count_; }
  [[nodiscard]] const SpecialTokens& specials() const { return specials_; }
  // The ids' bytes back to back (each id checked), special tokens left out when asked.
  [[nodiscard]] std::string decode(std::span<const int32_t> ids, const DecodeOptions& options) const;

  // One encode call: ill-formed UTF-8 replaced when the options say so, BOS / EOS checked and
  // added, the raw added tokens cut out; encode_raw(text, at_text_start) encodes every
  // stretch between them (never an empty text). `segments` is the caller's scratch.
  template <typename EncodeRaw>
  void encode(std::string_view text, const EncodeOptions& options, std::vector<TextSegment>& segments,
              std::vector<int32_t>& out, EncodeRaw&& encode_raw) const;
  // Cuts the normalized added tokens out of a normalized stretch; encode_piece(piece,
  // at_text_start) encodes the rest. `segments` is the caller's scratch (not encode's).
  template <typename EncodePiece>
  void split_normalized(std::string_view text, bool at_text_start, const EncodeOptions& options,
                        std::vector<TextSegment>& segments, std::vector<int32_t>& out,
                        EncodePiece&& encode_piece) const;

 private:
  // Throws when the options ask for a BOS / EOS the vocabulary lacks.
  void check_specials(const EncodeOptions& options) const;
  // Cuts matcher's added tokens out of text (into out); stretch(text, begins_text) gets the rest.
  template <typename Stretch>
  static void split(const AddedTokenMatcher& matcher, std::string_view text, bool parse_special,
                    std::vector<TextSegment>& segments, std::vector<int32_t>& out, Stretch&& stretch);

  std::string source_;
  std::string arena_;              // every token's bytes back to back
  std::vector<uint32_t> offsets_;  // (size + 1): token i is arena_[offsets_[i], offsets_[i + 1])
  std::vector<TokenKind> kinds_;
  std::unordered_map<std::string, int32_t> added_ids_by_content_;
  AddedTokenMatcher raw_added_;         // matched in the text as given
  AddedTokenMatcher normalized_added_;  // matched in the normalized text between raw matches
  size_t added_count_ = 0;
  SpecialTokens specials_;
};

template <typename EncodeRaw>
void Vocabulary::encode(std::string_view text, const EncodeOptions& options, std::vector<TextSegment>& segments,
                        std::vector<int32_t>& out, EncodeRaw&& encode_raw) const {
  std::string replaced;
  if (options.invalid_utf8 == InvalidUtf8::Replace && !is_valid_utf8(text)) {
    replaced = replace_invalid_utf8(text);
    text = replaced;
  }
  check_specials(options);
  if (options.add_bos) out.push_back(*specials_.bos);
  if (raw_added_.empty()) {
    if (!text.empty()) encode_raw(text, true);
  } else {
    split(raw_added_, text, options.parse_special, segments, out, encode_raw);
  }
  if (options.add_eos) out.push_back(*specials_.eos);
}

template <typename EncodePiece>
void Vocabulary::split_normalized(std::string_view text, bool at_text_start, const EncodeOptions& options,
                                  std::vector<TextSegment>& segments, std::vector<int32_t>& out,
                                  EncodePiece&& encode_piece) const {
  if (normalized_added_.empty()) {
    encode_piece(text, at_text_start);
    return;
  }
  split(normalized_added_, text, options.parse_special, segments, out,
        [&](std::string_view piece, bool begins_text) { encode_piece(piece, at_text_start && begins_text); });
}

template <typename Stretch>
void Vocabulary::split(const AddedTokenMatcher& matcher, std::string_view text, bool parse_special,
                       std::vector<TextSegment>& segments, std::vector<int32_t>& out, Stretch&& stretch) {
  segments.clear();
  matcher.split(text, parse_special, segments);
  for (const TextSegment& segment : segments) {
    if (segment.token >= 0) {
      out.push_back(segment.token);
    } else {
      stretch(text.substr(segment.begin, segment.end - segment.begin), segment.begin == 0);
    }
  }
}

}  // namespace anvil::tokenizer
