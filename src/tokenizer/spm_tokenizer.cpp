#include "anvil/tokenizer/spm_tokenizer.h"

#include <array>
#include <unordered_map>

#include "added_tokens.h"
#include "anvil/core/error.h"
#include "bpe_word_merger.h"
#include "merge_table.h"
#include "spm_spec.h"
#include "utf8.h"
#include "vocabulary.h"
#include "word_cache.h"

namespace anvil::tokenizer {
namespace {

constexpr size_t kCachedWords = size_t{1} << 16;
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's stand-in for a space
constexpr uint32_t kSpaceMarkCodePoint = 0x2581;

// Buffers one encode call reuses for all its segments and words.
struct EncodeScratch {
  std::vector<TextSegment> raw_segments;
  std::vector<TextSegment> normalized_segments;
  std::string normalized;
  std::string pre_tokenized;
  std::vector<int32_t> symbols;
  BpeWordMerger merger;
};

// Appends `text` with every space written as "▁".
void append_escaped(std::string_view text, std::string& out) {
  for (const char c : text) {
    if (c == ' ') {
      out += kSpaceMark;
    } else {
      out.push_back(c);
    }
  }
}

std::string replace_space_marks(std::string_view text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    if (text.substr(pos, kSpaceMark.size()) == kSpaceMark) {
      out.push_back(' ');
      pos += kSpaceMark.size();
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

bool starts_with_mark(std::string_view text) { return text.substr(0, kSpaceMark.size()) == kSpaceMark; }

// Whether a "▁" at byte `pos` of `text` directly follows another one.
bool mark_follows_mark(std::string_view text, size_t pos) {
  return pos >= kSpaceMark.size() && text.substr(pos - kSpaceMark.size(), kSpaceMark.size()) == kSpaceMark;
}

// True when no token that merges produce has "▁" right after another character than "▁": then
// no symbol can ever span such a boundary, the text can be cut there and the words merged (and
// cached) on their own with the same result as merging the whole text at once.
bool merges_stay_within_words(const SpmSpec& spec) {
  for (const SpmSpec::Merge& merge : spec.merges) {
    const std::string_view text = spec.token_texts[static_cast<size_t>(merge.merged)];
    for (size_t pos = text.find(kSpaceMark, 1); pos != std::string_view::npos; pos = text.find(kSpaceMark, pos + 1)) {
      if (!mark_follows_mark(text, pos)) return false;
    }
  }
  return true;
}

// What each token decodes to: a <0xXX> byte token its byte, any other its text with "▁" as spaces.
std::vector<std::string> token_bytes_of(const SpmSpec& spec) {
  std::vector<std::string> bytes(spec.token_texts.size());
  for (size_t id = 0; id < bytes.size(); ++id) {
    const std::string& text = spec.token_texts[id];
    const bool byte_token = id < spec.token_kinds.size() && spec.token_kinds[id] == TokenKind::Byte;
    const int byte = byte_token ? parse_byte_token(text) : -1;
    ANVIL_CHECK(!byte_token || byte >= 0, "tokenizer ", spec.source, ": byte token ", id, " '", text,
                "' is not <0xXX>");
    bytes[id] = byte >= 0 ? std::string(1, static_cast<char>(byte)) : replace_space_marks(text);
  }
  return bytes;
}

}  // namespace

int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (const char c : text.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

struct SpmTokenizer::Impl {
  explicit Impl(SpmSpec spec);

  void encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, bool at_text_start, EncodeScratch& scratch,
                    std::vector<int32_t>& out) const;
  void encode_words(std::string_view piece, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  void push_character_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  [[nodiscard]] int32_t character_token(uint32_t code_point) const {
    if (code_point < ascii_tokens.size()) return ascii_tokens[code_point];
    if (code_point == kSpaceMarkCodePoint) return space_mark_token;
    const auto found = character_tokens.find(code_point);
    return found == character_tokens.end() ? -1 : found->second;
  }

  Vocabulary vocab;
  std::unordered_map<std::string, int32_t> ids_by_bytes;   // for find_token
  std::unordered_map<std::string, int32_t> ids_by_text;    // BPE vocabulary by stored text (ignore_merges)
  std::array<int32_t, 128> ascii_tokens{};                 // single-character tokens, by code point
  std::unordered_map<uint32_t, int32_t> character_tokens;  // ... the others
  int32_t space_mark_token = -1;                           // the token "▁"
  std::array<int32_t, 256> byte_tokens{};                  // <0xXX> per byte, -1 when missing
  MergeTable merges;
  bool prepend_space = false;
  bool escape_spaces = false;
  bool metaspace = false;
  MetaspacePrepend metaspace_prepend = MetaspacePrepend::Never;
  bool metaspace_split = false;
  bool split_words = false;  // cut before every "▁" that follows another character (see merges_stay_within_words)
  bool strip_leading_space = false;
  bool byte_fallback = true;
  bool fuse_unknown = true;
  bool ignore_merges = false;
  int32_t unknown = -1;
  std::string merge_order;
  mutable WordCache cache{kCachedWords};
};

SpmTokenizer::Impl::Impl(SpmSpec spec)
    : vocab(spec.source, token_bytes_of(spec), spec.token_kinds, spec.added_tokens,
            {spec.bos, spec.eos, spec.add_bos, spec.add_eos}),
      prepend_space(spec.prepend_space),
      escape_spaces(spec.escape_spaces),
      metaspace(spec.metaspace),
      metaspace_prepend(spec.metaspace_prepend),
      metaspace_split(spec.metaspace_split),
      split_words(merges_stay_within_words(spec)),
      strip_leading_space(spec.strip_leading_space),
      byte_fallback(spec.byte_fallback),
      fuse_unknown(spec.fuse_unknown),
      ignore_merges(spec.ignore_merges),
      unknown(spec.unknown.value_or(-1)),
      merge_order(std::move(spec.merge_order)) {
  const size_t count = spec.token_texts.size();
  ANVIL_CHECK(spec.in_bpe_vocab.size() == count, "tokenizer ", vocab.source(), ": inconsistent vocabulary");
  ascii_tokens.fill(-1);
  byte_tokens.fill(-1);
  for (size_t id = 0; id < count; ++id) {
    const std::string& text = spec.token_texts[id];
    if (vocab.kind_of(static_cast<int32_t>(id)) == TokenKind::Byte) {  // it decodes to its one byte
      const auto byte = static_cast<unsigned char>(vocab.bytes_of(static_cast<int32_t>(id))[0]);
      if (byte_tokens[byte] < 0) byte_tokens[byte] = static_cast<int32_t>(id);
    }
    if (spec.in_bpe_vocab[id] == 0) continue;
    ids_by_text.try_emplace(text, static_cast<int32_t>(id));
    const Utf8Char c = decode_utf8(text.data(), text.size());
    if (text.empty() || c.code_point == kInvalidCodePoint || c.length != text.size()) continue;
    if (c.code_point < ascii_tokens.size()) {
      if (ascii_tokens[c.code_point] < 0) ascii_tokens[c.code_point] = static_cast<int32_t>(id);
    } else {
      character_tokens.try_emplace(c.code_point, static_cast<int32_t>(id));
    }
  }
  if (const auto found = character_tokens.find(kSpaceMarkCodePoint); found != character_tokens.end()) {
    space_mark_token = found->second;
  }
  // find_token prefers the text tokens to the byte tokens with the same byte.
  for (const bool bytes : {false, true}) {
    for (int32_t id = 0; id < vocab.size(); ++id) {
      const TokenKind kind = vocab.kind_of(id);
      if (kind != TokenKind::Unused && (kind == TokenKind::Byte) == bytes)
        ids_by_bytes.try_emplace(std::string(vocab.bytes_of(id)), id);
    }
  }
  merges.reserve(spec.merges.size());
  for (const SpmSpec::Merge& merge : spec.merges) {
    for (const int32_t id : {merge.left, merge.right, merge.merged}) vocab.check_id(id);
    merges.insert(merge.left, merge.right, merge.rank, merge.merged);
  }
  if (unknown >= 0) vocab.check_id(unknown);
}

// The vocabulary's frame; each stretch between raw added tokens normalized (prefix, spaces as
// "▁"), then the normalized added tokens cut out.
void SpmTokenizer::Impl::encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const {
  EncodeScratch scratch;
  vocab.encode(text, options, scratch.raw_segments, out, [&](std::string_view raw, bool at_text_start) {
    if (prepend_space || escape_spaces) {
      scratch.normalized.clear();
      if (prepend_space) scratch.normalized += kSpaceMark;
      if (escape_spaces) {
        append_escaped(raw, scratch.normalized);
      } else {
        scratch.normalized += raw;
      }
      raw = scratch.normalized;
    }
    vocab.split_normalized(raw, at_text_start, options, scratch.normalized_segments, out,
                           [&](std::string_view piece, bool at_start) { encode_piece(piece, at_start, scratch, out); });
  });
}

// The Metaspace pre-tokenizer (when there is one), then BPE.
void SpmTokenizer::Impl::encode_piece(std::string_view piece, bool at_text_start, EncodeScratch& scratch,
                                      std::vector<int32_t>& out) const {
  if (metaspace) {
    scratch.pre_tokenized.clear();
    append_escaped(piece, scratch.pre_tokenized);
    const bool prepend = metaspace_prepend == MetaspacePrepend::Always ||
                         (metaspace_prepend == MetaspacePrepend::First && at_text_start);
    if (prepend && !starts_with_mark(scratch.pre_tokenized)) scratch.pre_tokenized.insert(0, kSpaceMark);
    piece = scratch.pre_tokenized;
  }
  if (ignore_merges && !metaspace_split) {
    if (const auto found = ids_by_text.find(std::string(piece)); found != ids_by_text.end()) {
      out.push_back(found->second);
      return;
    }
  }
  encode_words(piece, scratch, out);
}

// Cuts `piece` into words merged on their own: before every "▁" with Metaspace split (HF's
// MergedWithNext), else where merges_stay_within_words allows.
void SpmTokenizer::Impl::encode_words(std::string_view piece, EncodeScratch& scratch, std::vector<int32_t>& out) const {
  if (!metaspace_split && !split_words) {
    encode_word(piece, scratch, out);
    return;
  }
  size_t begin = 0;
  for (size_t pos = piece.find(kSpaceMark, 1); pos != std::string_view::npos;
       pos = piece.find(kSpaceMark, pos + kSpaceMark.size())) {
    if (!metaspace_split && mark_follows_mark(piece, pos)) continue;
    encode_word(piece.substr(begin, pos - begin), scratch, out);
    begin = pos;
  }
  encode_word(piece.substr(begin), scratch, out);
}

void SpmTokenizer::Impl::encode_word(std::string_view word, EncodeScratch& scratch, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (metaspace_split && ignore_merges) {
    if (const auto found = ids_by_text.find(std::string(word)); found != ids_by_text.end()) {
      out.push_back(found->second);
      return;
    }
  }
  if (cache.lookup(word, out)) return;
  scratch.symbols.clear();
  push_character_symbols(word, scratch.symbols);
  const size_t before = out.size();
  scratch.merger.merge_symbols(scratch.symbols, merges, out);
  cache.insert(word, out.data() + before, out.size() - before);
}

// One symbol per character: its token, else (byte fallback) its bytes' <0xXX> tokens, else <unk>
// (one for a whole run with fuse_unknown), else nothing, as HF's BPE::merge_word.
void SpmTokenizer::Impl::push_character_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  bool after_unknown = false;
  for (size_t pos = 0; pos < word.size();) {
    const Utf8Char c = decode_utf8(word.data() + pos, word.size() - pos);
    const int32_t token = c.code_point == kInvalidCodePoint ? -1 : character_token(c.code_point);
    const std::string_view bytes = word.substr(pos, c.length);
    pos += c.length;
    if (token >= 0) {
      symbols.push_back(token);
      after_unknown = false;
      continue;
    }
    bool all_bytes = byte_fallback;
    for (const char byte : bytes) all_bytes = all_bytes && byte_tokens[static_cast<unsigned char>(byte)] >= 0;
    if (all_bytes) {
      for (const char byte : bytes) symbols.push_back(byte_tokens[static_cast<unsigned char>(byte)]);
      after_unknown = false;
    } else if (unknown >= 0 && !(fuse_unknown && after_unknown)) {
      symbols.push_back(unknown);
      after_unknown = true;
    }
  }
}

SpmTokenizer build_spm_tokenizer(SpmSpec spec) {
  return SpmTokenizer(std::make_shared<const SpmTokenizer::Impl>(std::move(spec)));
}

void SpmTokenizer::encode_append(std::string_view text, std::vector<int32_t>& ids, const EncodeOptions& options) const {
  impl_->encode(text, options, ids);
}

std::string SpmTokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes = impl_->vocab.decode(ids, options);
  if (impl_->strip_leading_space && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
  return bytes;
}

int32_t SpmTokenizer::vocab_size() const { return impl_->vocab.size(); }

std::string_view SpmTokenizer::token_bytes(int32_t id) const {
  impl_->vocab.check_id(id);
  return impl_->vocab.bytes_of(id);
}

TokenKind SpmTokenizer::token_kind(int32_t id) const {
  impl_->vocab.check_id(id);
  return impl_->vocab.kind_of(id);
}

std::optional<int32_t> SpmTokenizer::find_token(std::string_view bytes) const {
  if (const std::optional<int32_t> added = impl_->vocab.find_added(bytes)) return added;
  if (const auto found = impl_->ids_by_bytes.find(std::string(bytes)); found != impl_->ids_by_bytes.end()) {
    return found->second;
  }
  return std::nullopt;
}

std::optional<int32_t> SpmTokenizer::bos_id() const { return impl_->vocab.specials().bos; }
std::optional<int32_t> SpmTokenizer::eos_id() const { return impl_->vocab.specials().eos; }
bool SpmTokenizer::add_bos_by_default() const { return impl_->vocab.specials().add_bos; }
bool SpmTokenizer::add_eos_by_default() const { return impl_->vocab.specials().add_eos; }
bool SpmTokenizer::strips_leading_space() const { return impl_->strip_leading_space; }
std::shared_ptr<const Tokenizer> SpmTokenizer::clone() const { return std::make_shared<const SpmTokenizer>(*this); }

std::string SpmTokenizer::describe() const {
  const Impl& impl = *impl_;
  std::string text = impl.vocab.source() + ": SentencePiece BPE, " + std::to_string(impl.vocab.size()) + " tokens, " +
                     std::to_string(impl.merges.size()) + " merges by " + impl.merge_order + ", " +
                     std::to_string(impl.vocab.added_count()) + " added tokens";
  if (impl.prepend_space) text += ", prepend '▁'";
  if (impl.escape_spaces) text += ", spaces as '▁'";
  if (impl.metaspace) {
    static constexpr std::array<const char*, 3> kPrepend = {"never", "first", "always"};
    text += std::string(", Metaspace(prepend ") + kPrepend[static_cast<size_t>(impl.metaspace_prepend)] +
            (impl.metaspace_split ? ", split)" : ")");
  }
  text += impl.byte_fallback ? ", byte fallback" : ", no byte fallback";
  if (impl.split_words) text += ", word cache";
  return text;
}

}  // namespace anvil::tokenizer
