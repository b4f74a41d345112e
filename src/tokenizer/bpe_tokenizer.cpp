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
#include "vocabulary.h"
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

}  // namespace

struct BpeTokenizer::Impl {
  explicit Impl(TokenizerSpec spec);

  void encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const;
  void encode_pieces(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, EncodeScratch& scratch, std::vector<int32_t>& out) const;

  Vocabulary vocab;
  std::unordered_map<std::string_view, int32_t> bpe_ids_by_bytes;  // BPE vocabulary, keys into vocab's arena
  std::array<int32_t, 256> byte_tokens{};
  MergeTable merges;
  PreTokenizer pre_tokenizer;
  Normalizer normalizer = Normalizer::None;
  bool ignore_merges = false;
  int32_t unknown = -1;
  mutable WordCache cache{kCachedWords};
};

BpeTokenizer::Impl::Impl(TokenizerSpec spec)
    : vocab(spec.source, spec.token_bytes, std::move(spec.token_kinds), spec.added_tokens,
            {spec.bos, spec.eos, spec.add_bos, spec.add_eos}),
      pre_tokenizer(std::move(spec.pre_tokenizer)),
      normalizer(spec.normalizer),
      ignore_merges(spec.ignore_merges),
      unknown(spec.unknown.value_or(-1)) {
  ANVIL_CHECK(spec.in_bpe_vocab.size() == spec.token_bytes.size(), "tokenizer ", vocab.source(),
              ": inconsistent vocabulary");
  byte_tokens.fill(-1);
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (spec.in_bpe_vocab[static_cast<size_t>(id)] == 0) continue;
    const std::string_view bytes = vocab.bytes_of(id);
    bpe_ids_by_bytes.try_emplace(bytes, id);
    if (bytes.size() == 1 && byte_tokens[static_cast<unsigned char>(bytes[0])] < 0) {
      byte_tokens[static_cast<unsigned char>(bytes[0])] = id;
    }
  }
  merges.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const TokenizerSpec::Merge& merge = spec.merges[rank];
    merges.insert(merge.left, merge.right, static_cast<int32_t>(rank), merge.merged);
  }
  if (unknown >= 0) vocab.check_id(unknown);
}

// The vocabulary's frame; each stretch between raw added tokens normalized, then the
// normalized added tokens cut out, then pre-tokenized into words.
void BpeTokenizer::Impl::encode(std::string_view text, const EncodeOptions& options, std::vector<int32_t>& out) const {
  EncodeScratch scratch;
  vocab.encode(text, options, scratch.raw_segments, out, [&](std::string_view raw, bool /*at_text_start*/) {
    if (normalizer == Normalizer::Nfc) {
      normalize_nfc(raw, scratch.normalized);
      raw = scratch.normalized;
    }
    vocab.split_normalized(raw, true, options, scratch.normalized_segments, out,
                           [&](std::string_view piece, bool /*at_text_start*/) { encode_pieces(piece, scratch, out); });
  });
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
  return impl_->vocab.decode(ids, options);
}

int32_t BpeTokenizer::vocab_size() const { return impl_->vocab.size(); }

std::string_view BpeTokenizer::token_bytes(int32_t id) const {
  impl_->vocab.check_id(id);
  return impl_->vocab.bytes_of(id);
}

TokenKind BpeTokenizer::token_kind(int32_t id) const {
  impl_->vocab.check_id(id);
  return impl_->vocab.kind_of(id);
}

std::optional<int32_t> BpeTokenizer::find_token(std::string_view bytes) const {
  if (const std::optional<int32_t> added = impl_->vocab.find_added(bytes)) return added;
  if (const auto found = impl_->bpe_ids_by_bytes.find(bytes); found != impl_->bpe_ids_by_bytes.end()) {
    return found->second;
  }
  return std::nullopt;
}

std::optional<int32_t> BpeTokenizer::bos_id() const { return impl_->vocab.specials().bos; }
std::optional<int32_t> BpeTokenizer::eos_id() const { return impl_->vocab.specials().eos; }
bool BpeTokenizer::add_bos_by_default() const { return impl_->vocab.specials().add_bos; }
bool BpeTokenizer::add_eos_by_default() const { return impl_->vocab.specials().add_eos; }
std::shared_ptr<const Tokenizer> BpeTokenizer::clone() const { return std::make_shared<const BpeTokenizer>(*this); }
const PreTokenizer& BpeTokenizer::pre_tokenizer() const { return impl_->pre_tokenizer; }

std::string BpeTokenizer::describe() const {
  return impl_->vocab.source() + ": byte-level BPE, " + std::to_string(impl_->vocab.size()) + " tokens, " +
         std::to_string(impl_->merges.size()) + " merges, " + std::to_string(impl_->vocab.added_count()) +
         " added tokens, pre-tokenizer " + impl_->pre_tokenizer.describe() + ", normalizer " +
         (impl_->normalizer == Normalizer::Nfc ? "NFC" : "none") + (impl_->ignore_merges ? ", ignore_merges" : "");
}

}  // namespace anvil::tokenizer
