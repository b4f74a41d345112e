#include "anvil/tokenizer/spm_tokenizer.h"

#include <array>
#include <unordered_map>

#include "added_tokens.h"
#include "anvil/core/error.h"
#include "bpe_word_merger.h"
#include "merge_table.h"
#include "spm_spec.h"
#include "utf8.h"
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

std::vector<AddedToken> added_tokens_where(const std::vector<AddedToken>& tokens, bool normalized) {
  std::vector<AddedToken> selected;
  for (const AddedToken& token : tokens) {
    if (token.normalized == normalized) selected.push_back(token);
  }
  return selected;
}

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
  void encode_raw_segment(std::string_view text, bool at_text_start, const EncodeOptions& options,
                          EncodeScratch& scratch, std::vector<int32_t>& out) const;
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
  [[nodiscard]] std::string_view bytes_of(int32_t id) const {
    const auto index = static_cast<size_t>(id);
    return std::string_view(token_arena).substr(token_offsets[index], token_offsets[index + 1] - token_offsets[index]);
  }
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size)
      throw make_error("tokenizer ", source, ": token id ", id, " out of range [0, ", vocab_size, ")");
  }

  std::string source;
  int32_t vocab_size = 0;
  std::string token_arena;              // every token's bytes back to back
  std::vector<uint32_t> token_offsets;  // (vocab_size + 1): token i is arena[offsets[i], offsets[i+1])
  std::vector<TokenKind> token_kinds;
  std::unordered_map<std::string, int32_t> ids_by_bytes;  // for find_token
  std::unordered_map<std::string, int32_t> ids_by_text;   // BPE vocabulary by stored text (ignore_merges)
  std::unordered_map<std::string, int32_t> added_ids_by_content;
  std::array<int32_t, 128> ascii_tokens{};                 // single-character tokens, by code point
  std::unordered_map<uint32_t, int32_t> character_tokens;  // ... the others
  int32_t space_mark_token = -1;                           // the token "▁"
  std::array<int32_t, 256> byte_tokens{};                  // <0xXX> per byte, -1 when missing
  MergeTable merges;
  AddedTokenMatcher raw_added;
  AddedTokenMatcher normalized_added;
  size_t added_count = 0;
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
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  int32_t unknown = -1;
  bool add_bos = false;
  bool add_eos = false;
  std::string merge_order;
  mutable WordCache cache{kCachedWords};
};

SpmTokenizer::Impl::Impl(SpmSpec spec)
    : source(std::move(spec.source)),
      token_kinds(std::move(spec.token_kinds)),
      raw_added(added_tokens_where(spec.added_tokens, false)),
      normalized_added(added_tokens_where(spec.added_tokens, true)),
      added_count(spec.added_tokens.size()),
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
      bos(spec.bos),
      eos(spec.eos),
      unknown(spec.unknown.value_or(-1)),
      add_bos(spec.add_bos),
      add_eos(spec.add_eos),
      merge_order(std::move(spec.merge_order)) {
  const size_t count = spec.token_texts.size();
  ANVIL_CHECK(
      count > 0 && count < (size_t{1} << 31) && token_kinds.size() == count && spec.in_bpe_vocab.size() == count,
      "tokenizer ", source, ": inconsistent vocabulary");
  vocab_size = static_cast<int32_t>(count);
  ascii_tokens.fill(-1);
  byte_tokens.fill(-1);
  token_offsets.reserve(count + 1);
  for (size_t id = 0; id < count; ++id) {
    const std::string& text = spec.token_texts[id];
    token_offsets.push_back(static_cast<uint32_t>(token_arena.size()));
    const int byte = token_kinds[id] == TokenKind::Byte ? parse_byte_token(text) : -1;
    ANVIL_CHECK(token_kinds[id] != TokenKind::Byte || byte >= 0, "tokenizer ", source, ": byte token ", id, " '", text,
                "' is not <0xXX>");
    if (byte >= 0) {
      token_arena.push_back(static_cast<char>(byte));
      if (byte_tokens[static_cast<size_t>(byte)] < 0) byte_tokens[static_cast<size_t>(byte)] = static_cast<int32_t>(id);
    } else {
      token_arena += replace_space_marks(text);
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
  token_offsets.push_back(static_cast<uint32_t>(token_arena.size()));
  if (const auto found = character_tokens.find(kSpaceMarkCodePoint); found != character_tokens.end()) {
    space_mark_token = found->second;
  }
  // find_token prefers the text tokens to the byte tokens with the same byte.
  for (const bool bytes : {false, true}) {
    for (int32_t id = 0; id < vocab_size; ++id) {
      const TokenKind kind = token_kinds[static_cast<size_t>(id)];
      if (kind != TokenKind::Unused && (kind == TokenKind::Byte) == bytes)
        ids_by_bytes.try_emplace(std::string(bytes_of(id)), id);
    }
  }
  for (const AddedToken& token : spec.added_tokens) {
    check_id(token.id);
    added_ids_by_content.try_emplace(token.content, token.id);
  }
  merges.reserve(spec.merges.size());
  for (const SpmSpec::Merge& merge : spec.merges) {
    for (const int32_t id : {merge.left, merge.right, merge.merged}) check_id(id);
    merges.insert(merge.left, merge.right, merge.rank, merge.merged);
  }
  for (const std::optional<int32_t>& id : {bos, eos}) {
    if (id) check_id(*id);
  }
  if (unknown >= 0) check_id(unknown);
}

void SpmTokenizer::Impl::encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const {
  std::string replaced;
  if (options.invalid_utf8 == InvalidUtf8::Replace && !is_valid_utf8(text)) {
    replaced = replace_invalid_utf8(text);
    text = replaced;
  }
  if (options.add_bos && !bos) throw make_error("tokenizer ", source, ": add_bos requested but there is no BOS token");
  if (options.add_eos && !eos) throw make_error("tokenizer ", source, ": add_eos requested but there is no EOS token");
  if (options.add_bos) out.push_back(*bos);
  EncodeScratch scratch;
  if (raw_added.empty()) {
    if (!text.empty()) encode_raw_segment(text, true, options, scratch, out);
  } else {
    raw_added.split(text, options.parse_special, scratch.raw_segments);
    for (const TextSegment& segment : scratch.raw_segments) {
      if (segment.token >= 0) {
        out.push_back(segment.token);
      } else {
        encode_raw_segment(text.substr(segment.begin, segment.end - segment.begin), segment.begin == 0, options,
                           scratch, out);
      }
    }
  }
  if (options.add_eos) out.push_back(*eos);
}

// Normalizes a stretch between raw added tokens (prefix, spaces as "▁"), then cuts out the
// normalized added tokens.
void SpmTokenizer::Impl::encode_raw_segment(std::string_view text, bool at_text_start, const EncodeOptions& options,
                                            EncodeScratch& scratch, std::vector<int32_t>& out) const {
  if (prepend_space || escape_spaces) {
    scratch.normalized.clear();
    if (prepend_space) scratch.normalized += kSpaceMark;
    if (escape_spaces) {
      append_escaped(text, scratch.normalized);
    } else {
      scratch.normalized += text;
    }
    text = scratch.normalized;
  }
  if (normalized_added.empty()) {
    encode_piece(text, at_text_start, scratch, out);
    return;
  }
  scratch.normalized_segments.clear();
  normalized_added.split(text, options.parse_special, scratch.normalized_segments);
  for (const TextSegment& segment : scratch.normalized_segments) {
    if (segment.token >= 0) {
      out.push_back(segment.token);
    } else {
      encode_piece(text.substr(segment.begin, segment.end - segment.begin), at_text_start && segment.begin == 0,
                   scratch, out);
    }
  }
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
  std::string bytes;
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (options.skip_special && impl_->token_kinds[static_cast<size_t>(id)] == TokenKind::Special) continue;
    bytes += impl_->bytes_of(id);
  }
  if (impl_->strip_leading_space && !bytes.empty() && bytes[0] == ' ') bytes.erase(0, 1);
  return bytes;
}

int32_t SpmTokenizer::vocab_size() const { return impl_->vocab_size; }

std::string_view SpmTokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id);
  return impl_->bytes_of(id);
}

TokenKind SpmTokenizer::token_kind(int32_t id) const {
  impl_->check_id(id);
  return impl_->token_kinds[static_cast<size_t>(id)];
}

std::optional<int32_t> SpmTokenizer::find_token(std::string_view bytes) const {
  if (const auto added = impl_->added_ids_by_content.find(std::string(bytes));
      added != impl_->added_ids_by_content.end()) {
    return added->second;
  }
  if (const auto found = impl_->ids_by_bytes.find(std::string(bytes)); found != impl_->ids_by_bytes.end()) {
    return found->second;
  }
  return std::nullopt;
}

std::optional<int32_t> SpmTokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> SpmTokenizer::eos_id() const { return impl_->eos; }
bool SpmTokenizer::add_bos_by_default() const { return impl_->add_bos; }
bool SpmTokenizer::add_eos_by_default() const { return impl_->add_eos; }
bool SpmTokenizer::strips_leading_space() const { return impl_->strip_leading_space; }
std::shared_ptr<const Tokenizer> SpmTokenizer::clone() const { return std::make_shared<const SpmTokenizer>(*this); }

std::string SpmTokenizer::describe() const {
  const Impl& impl = *impl_;
  std::string text = impl.source + ": SentencePiece BPE, " + std::to_string(impl.vocab_size) + " tokens, " +
                     std::to_string(impl.merges.size()) + " merges by " + impl.merge_order + ", " +
                     std::to_string(impl.added_count) + " added tokens";
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
