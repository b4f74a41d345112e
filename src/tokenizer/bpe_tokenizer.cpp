#include "anvil/tokenizer/bpe_tokenizer.h"

#include <array>
#include <unordered_map>

#include "added_tokens.h"
#include "anvil/core/error.h"
#include "bpe_word_merger.h"
#include "merge_table.h"
#include "normalize.h"
#include "tokenizer_spec.h"
#include "utf8.h"
#include "word_cache.h"

namespace anvil::tokenizer {
namespace {

constexpr size_t kCachedWords = size_t{1} << 16;

// Buffers one encode call reuses for all its segments and words.
struct EncodeScratch {
  std::vector<TextSegment> raw_segments;
  std::vector<TextSegment> normalized_segments;
  std::vector<size_t> piece_ends;
  std::string normalized;
  BpeWordMerger merger;
};

std::vector<AddedToken> added_tokens_where(const std::vector<AddedToken>& tokens, bool normalized) {
  std::vector<AddedToken> selected;
  for (const AddedToken& token : tokens) {
    if (token.normalized == normalized) selected.push_back(token);
  }
  return selected;
}

}  // namespace

struct BpeTokenizer::Impl {
  explicit Impl(TokenizerSpec spec);

  void encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const;
  void encode_raw_segment(std::string_view text, const EncodeOptions& options, EncodeScratch& scratch,
                          std::vector<int32_t>& out) const;
  void encode_pieces(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  [[nodiscard]] std::string_view bytes_of(int32_t id) const {
    return std::string_view(token_arena)
        .substr(token_offsets[static_cast<size_t>(id)],
                token_offsets[static_cast<size_t>(id) + 1] - token_offsets[static_cast<size_t>(id)]);
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
  std::unordered_map<std::string_view, int32_t> bpe_ids_by_bytes;  // BPE vocabulary, keys into the arena
  std::unordered_map<std::string, int32_t> added_ids_by_content;
  std::array<int32_t, 256> byte_tokens{};
  MergeTable merges;
  PreTokenizer pre_tokenizer;
  Normalizer normalizer = Normalizer::None;
  AddedTokenMatcher raw_added;         // matched in the text as given
  AddedTokenMatcher normalized_added;  // matched in the normalized text between raw matches
  size_t added_count = 0;
  bool ignore_merges = false;
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  int32_t unknown = -1;
  bool add_bos = false;
  bool add_eos = false;
  mutable WordCache cache{kCachedWords};
};

BpeTokenizer::Impl::Impl(TokenizerSpec spec)
    : source(std::move(spec.source)),
      token_kinds(std::move(spec.token_kinds)),
      pre_tokenizer(std::move(spec.pre_tokenizer)),
      normalizer(spec.normalizer),
      raw_added(added_tokens_where(spec.added_tokens, false)),
      normalized_added(added_tokens_where(spec.added_tokens, true)),
      added_count(spec.added_tokens.size()),
      ignore_merges(spec.ignore_merges),
      bos(spec.bos),
      eos(spec.eos),
      unknown(spec.unknown.value_or(-1)),
      add_bos(spec.add_bos),
      add_eos(spec.add_eos) {
  const size_t count = spec.token_bytes.size();
  ANVIL_CHECK(
      count > 0 && count < (size_t{1} << 31) && token_kinds.size() == count && spec.in_bpe_vocab.size() == count,
      "tokenizer ", source, ": inconsistent vocabulary");
  vocab_size = static_cast<int32_t>(count);
  token_offsets.reserve(count + 1);
  for (const std::string& bytes : spec.token_bytes) {
    token_offsets.push_back(static_cast<uint32_t>(token_arena.size()));
    token_arena += bytes;
  }
  token_offsets.push_back(static_cast<uint32_t>(token_arena.size()));
  byte_tokens.fill(-1);
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (spec.in_bpe_vocab[static_cast<size_t>(id)] == 0) continue;
    const std::string_view bytes = bytes_of(id);
    bpe_ids_by_bytes.try_emplace(bytes, id);
    if (bytes.size() == 1 && byte_tokens[static_cast<unsigned char>(bytes[0])] < 0) {
      byte_tokens[static_cast<unsigned char>(bytes[0])] = id;
    }
  }
  for (const AddedToken& token : spec.added_tokens) {
    check_id(token.id);
    added_ids_by_content.try_emplace(token.content, token.id);
  }
  merges.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const TokenizerSpec::Merge& merge = spec.merges[rank];
    merges.insert(merge.left, merge.right, static_cast<int32_t>(rank), merge.merged);
  }
  for (const std::optional<int32_t>& id : {bos, eos}) {
    if (id) check_id(*id);
  }
  if (unknown >= 0) check_id(unknown);
}

void BpeTokenizer::Impl::encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const {
  std::string replaced;
  if (options.invalid_utf8 == InvalidUtf8::Replace && !is_valid_utf8(text)) {
    replaced = replace_invalid_utf8(text);
    text = replaced;
  }
  if (options.add_bos) {
    if (!bos) throw make_error("tokenizer ", source, ": add_bos requested but the tokenizer has no BOS token");
    out.push_back(*bos);
  }
  if (options.add_eos && !eos) {
    throw make_error("tokenizer ", source, ": add_eos requested but the tokenizer has no EOS token");
  }
  EncodeScratch scratch;
  if (raw_added.empty()) {
    encode_raw_segment(text, options, scratch, out);
  } else {
    raw_added.split(text, options.parse_special, scratch.raw_segments);
    for (const TextSegment& segment : scratch.raw_segments) {
      if (segment.token >= 0) {
        out.push_back(segment.token);
      } else {
        encode_raw_segment(text.substr(segment.begin, segment.end - segment.begin), options, scratch, out);
      }
    }
  }
  if (options.add_eos) out.push_back(*eos);
}

// Normalizes a stretch between raw added tokens, then cuts out the normalized added tokens.
void BpeTokenizer::Impl::encode_raw_segment(std::string_view text, const EncodeOptions& options, EncodeScratch& scratch,
                                            std::vector<int32_t>& out) const {
  if (normalizer == Normalizer::Nfc) {
    normalize_nfc(text, scratch.normalized);
    text = scratch.normalized;
  }
  if (normalized_added.empty()) {
    encode_pieces(text, scratch, out);
    return;
  }
  scratch.normalized_segments.clear();
  normalized_added.split(text, options.parse_special, scratch.normalized_segments);
  for (const TextSegment& segment : scratch.normalized_segments) {
    if (segment.token >= 0) {
      out.push_back(segment.token);
    } else {
      encode_pieces(text.substr(segment.begin, segment.end - segment.begin), scratch, out);
    }
  }
}

void BpeTokenizer::Impl::encode_pieces(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& out) const {
  scratch.piece_ends.clear();
  pre_tokenizer.split_text(text, scratch.piece_ends);
  size_t begin = 0;
  for (const size_t end : scratch.piece_ends) {
    encode_word(text.substr(begin, end - begin), scratch, out);
    begin = end;
  }
}

void BpeTokenizer::Impl::encode_word(std::string_view word, EncodeScratch& scratch, std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    const int32_t token = byte_tokens[static_cast<unsigned char>(word[0])];
    if (token >= 0 || unknown >= 0) out.push_back(token >= 0 ? token : unknown);
    return;
  }
  if (ignore_merges) {
    const auto found = bpe_ids_by_bytes.find(word);
    if (found != bpe_ids_by_bytes.end()) {
      out.push_back(found->second);
      return;
    }
  }
  if (cache.lookup(word, out)) return;
  const size_t before = out.size();
  scratch.merger.merge(word, byte_tokens.data(), unknown, merges, out);
  cache.insert(word, out.data() + before, out.size() - before);
}

BpeTokenizer build_tokenizer(TokenizerSpec spec) {
  return BpeTokenizer(std::make_shared<const BpeTokenizer::Impl>(std::move(spec)));
}

void BpeTokenizer::encode_append(std::string_view text, std::vector<int32_t>& ids, const EncodeOptions& options) const {
  impl_->encode(text, options, ids);
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  for (const int32_t id : ids) {
    impl_->check_id(id);
    if (options.skip_special && impl_->token_kinds[static_cast<size_t>(id)] == TokenKind::Special) continue;
    bytes += impl_->bytes_of(id);
  }
  return bytes;
}

int32_t BpeTokenizer::vocab_size() const { return impl_->vocab_size; }

std::string_view BpeTokenizer::token_bytes(int32_t id) const {
  impl_->check_id(id);
  return impl_->bytes_of(id);
}

TokenKind BpeTokenizer::token_kind(int32_t id) const {
  impl_->check_id(id);
  return impl_->token_kinds[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeTokenizer::find_token(std::string_view bytes) const {
  if (const auto added = impl_->added_ids_by_content.find(std::string(bytes));
      added != impl_->added_ids_by_content.end()) {
    return added->second;
  }
  if (const auto found = impl_->bpe_ids_by_bytes.find(bytes); found != impl_->bpe_ids_by_bytes.end()) {
    return found->second;
  }
  return std::nullopt;
}

std::optional<int32_t> BpeTokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> BpeTokenizer::eos_id() const { return impl_->eos; }
bool BpeTokenizer::add_bos_by_default() const { return impl_->add_bos; }
bool BpeTokenizer::add_eos_by_default() const { return impl_->add_eos; }
std::shared_ptr<const Tokenizer> BpeTokenizer::clone() const { return std::make_shared<const BpeTokenizer>(*this); }
const PreTokenizer& BpeTokenizer::pre_tokenizer() const { return impl_->pre_tokenizer; }

std::string BpeTokenizer::describe() const {
  return impl_->source + ": byte-level BPE, " + std::to_string(impl_->vocab_size) + " tokens, " +
         std::to_string(impl_->merges.size()) + " merges, " + std::to_string(impl_->added_count) +
         " added tokens, pre-tokenizer " + impl_->pre_tokenizer.describe() + ", normalizer " +
         (impl_->normalizer == Normalizer::Nfc ? "NFC" : "none") + (impl_->ignore_merges ? ", ignore_merges" : "");
}

}  // namespace anvil::tokenizer
