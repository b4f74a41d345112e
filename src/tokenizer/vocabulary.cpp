#include "vocabulary.h"

#include "anvil/core/error.h"

namespace anvil::tokenizer {
namespace {

std::vector<AddedToken> added_tokens_where(const std::vector<AddedToken>& tokens, bool normalized) {
  std::vector<AddedToken> selected;
  for (const AddedToken& token : tokens) {
    if (token.normalized == normalized) selected.push_back(token);
  }
  return selected;
}

}  // namespace

Vocabulary::Vocabulary(std::string source, const std::vector<std::string>& token_bytes, std::vector<TokenKind> kinds,
                       const std::vector<AddedToken>& added, SpecialTokens specials)
    : source_(std::move(source)),
      kinds_(std::move(kinds)),
      raw_added_(added_tokens_where(added, false)),
      normalized_added_(added_tokens_where(added, true)),
      added_count_(added.size()),
      specials_(specials) {
  const size_t count = token_bytes.size();
  ANVIL_CHECK(count > 0 && count < (size_t{1} << 31) && kinds_.size() == count, "tokenizer ", source_,
              ": inconsistent vocabulary");
  offsets_.reserve(count + 1);
  for (const std::string& bytes : token_bytes) {
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    arena_ += bytes;
  }
  offsets_.push_back(static_cast<uint32_t>(arena_.size()));
  for (const AddedToken& token : added) {
    check_id(token.id);
    added_ids_by_content_.try_emplace(token.content, token.id);
  }
  for (const std::optional<int32_t>& id : {specials_.bos, specials_.eos}) {
    if (id) check_id(*id);
  }
}

void Vocabulary::check_id(int32_t id) const {
  if (id < 0 || id >= size()) {
    throw make_error("tokenizer ", source_, ": token id ", id, " out of range [0, ", size(), ")");
  }
}

std::optional<int32_t> Vocabulary::find_added(std::string_view content) const {
  const auto found = added_ids_by_content_.find(std::string(content));
  return found == added_ids_by_content_.end() ? std::nullopt : std::optional(found->second);
}

std::string Vocabulary::decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  for (const int32_t id : ids) {
    check_id(id);
    if (options.skip_special && kind_of(id) == TokenKind::Special) continue;
    bytes += bytes_of(id);
  }
  return bytes;
}

void Vocabulary::check_specials(const EncodeOptions& options) const {
  if (options.add_bos && !specials_.bos) {
    throw make_error("tokenizer ", source_, ": add_bos requested but the tokenizer has no BOS token");
  }
  if (options.add_eos && !specials_.eos) {
    throw make_error("tokenizer ", source_, ": add_eos requested but the tokenizer has no EOS token");
  }
}

}  // namespace anvil::tokenizer
