// Token shards: streaming writer and memory-mapped reader.
#include "anvil/train/token_shard.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "anvil/core/error.h"
#include "anvil/io/mapped_file.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

constexpr std::array<char, 8> kMagic = {'A', 'N', 'V', 'T', 'O', 'K', 'S', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;

struct Header {
  std::array<char, 8> magic = kMagic;
  uint32_t version = kVersion;
  uint32_t token_bytes = 2;
  uint64_t num_tokens = 0;
  uint64_t num_documents = 0;
  uint64_t vocab_size = 0;
  int64_t eos_id = -1;
  uint64_t checksum = 0;
  uint64_t reserved = 0;
};
static_assert(sizeof(Header) == kHeaderBytes);

uint64_t padded(uint64_t bytes) { return (bytes + 7) / 8 * 8; }

}  // namespace

uint64_t checksum_bytes(const void* data, size_t bytes, uint64_t state) {
  // FNV-1a (64-bit): the same value however the bytes are split into calls.
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) state = (state ^ p[i]) * 0x100000001b3ULL;
  return state;
}

ShardWriter::ShardWriter(const std::string& path, int64_t vocab_size, int64_t eos_id)
    : path_(path),
      vocab_size_(vocab_size),
      eos_id_(eos_id),
      token_bytes_(vocab_size <= 65536 ? 2 : 4),
      checksum_(kChecksumSeed) {
  ANVIL_CHECK(vocab_size > 0 && vocab_size <= INT32_MAX, "shard '", path, "': vocab_size ", vocab_size,
              " out of range");
  file_ = std::make_unique<detail::AtomicFile>(path);
  const Header placeholder{};
  file_->write(&placeholder, sizeof placeholder);
}

ShardWriter::~ShardWriter() = default;

void ShardWriter::begin_document() { document_starts_.push_back(static_cast<uint64_t>(num_tokens_)); }

void ShardWriter::append(std::span<const int32_t> tokens) {
  buffer_.resize(tokens.size() * token_bytes_);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t token = tokens[i];
    ANVIL_CHECK(token >= 0 && token < vocab_size_, "shard '", path_, "': token ", token, " outside the vocabulary of ",
                vocab_size_);
    if (token_bytes_ == 2) {
      const auto value = static_cast<uint16_t>(token);
      std::memcpy(&buffer_[i * 2], &value, 2);
    } else {
      const auto value = static_cast<uint32_t>(token);
      std::memcpy(&buffer_[i * 4], &value, 4);
    }
  }
  file_->write(buffer_.data(), buffer_.size());
  checksum_ = checksum_bytes(buffer_.data(), buffer_.size(), checksum_);
  num_tokens_ += static_cast<int64_t>(tokens.size());
}

void ShardWriter::finish() {
  const uint64_t token_region = static_cast<uint64_t>(num_tokens_) * token_bytes_;
  const std::array<uint8_t, 8> zeros{};
  const size_t padding = padded(token_region) - token_region;
  file_->write(zeros.data(), padding);
  checksum_ = checksum_bytes(zeros.data(), padding, checksum_);
  const size_t index_bytes = document_starts_.size() * sizeof(uint64_t);
  file_->write(document_starts_.data(), index_bytes);
  checksum_ = checksum_bytes(document_starts_.data(), index_bytes, checksum_);
  Header header;
  header.token_bytes = token_bytes_;
  header.num_tokens = static_cast<uint64_t>(num_tokens_);
  header.num_documents = document_starts_.size();
  header.vocab_size = static_cast<uint64_t>(vocab_size_);
  header.eos_id = eos_id_;
  header.checksum = checksum_;
  file_->write_at(0, &header, sizeof header);
  file_->commit();
}

TokenShard TokenShard::open(const std::string& path, bool verify) {
  TokenShard shard;
  shard.file_ = io::MappedFile::open(path);
  shard.path_ = path;
  const uint8_t* data = shard.file_->data();
  const uint64_t size = shard.file_->size();
  ANVIL_CHECK(size >= kHeaderBytes, "token shard '", path, "': ", size, " bytes is shorter than the header");
  Header header;
  std::memcpy(&header, data, sizeof header);
  ANVIL_CHECK(header.magic == kMagic, "token shard '", path, "': bad magic (not a file of `anvil data prepare`)");
  ANVIL_CHECK(header.version == kVersion, "token shard '", path, "': version ", header.version, " (expected ", kVersion,
              ")");
  ANVIL_CHECK(header.token_bytes == 2 || header.token_bytes == 4, "token shard '", path, "': token_bytes ",
              header.token_bytes, " (expected 2 or 4)");
  ANVIL_CHECK(header.vocab_size > 0 && header.vocab_size <= INT32_MAX && header.num_tokens < (1ULL << 48) &&
                  header.num_documents <= header.num_tokens + 1,
              "token shard '", path, "': implausible header (vocab ", header.vocab_size, ", tokens ", header.num_tokens,
              ", documents ", header.num_documents, ")");
  const uint64_t expected = kHeaderBytes + padded(header.num_tokens * header.token_bytes) + header.num_documents * 8;
  ANVIL_CHECK(size == expected, "token shard '", path, "': ", size, " bytes, but the header describes ", expected);
  if (verify) {
    const uint64_t sum = checksum_bytes(data + kHeaderBytes, size - kHeaderBytes);
    ANVIL_CHECK(sum == header.checksum, "token shard '", path, "': checksum mismatch (file damaged)");
  }
  shard.tokens_ = data + kHeaderBytes;
  shard.num_tokens_ = static_cast<int64_t>(header.num_tokens);
  shard.vocab_size_ = static_cast<int64_t>(header.vocab_size);
  shard.eos_id_ = header.eos_id;
  shard.token_bytes_ = header.token_bytes;
  const uint8_t* index = shard.tokens_ + padded(header.num_tokens * header.token_bytes);
  shard.document_starts_ = {reinterpret_cast<const uint64_t*>(index), header.num_documents};
  uint64_t previous = 0;
  for (const uint64_t start : shard.document_starts_) {
    ANVIL_CHECK(start >= previous && start <= header.num_tokens, "token shard '", path,
                "': document index is not increasing within the tokens");
    previous = start;
  }
  return shard;
}

int32_t TokenShard::token(int64_t index) const {
  ANVIL_CHECK(index >= 0 && index < num_tokens_, "token shard '", path_, "': token ", index, " of ", num_tokens_);
  if (token_bytes_ == 2) {
    uint16_t value = 0;
    std::memcpy(&value, tokens_ + index * 2, 2);
    return value;
  }
  uint32_t value = 0;
  std::memcpy(&value, tokens_ + index * 4, 4);
  return static_cast<int32_t>(value);
}

void TokenShard::read(int64_t begin, std::span<int32_t> out) const {
  const auto count = static_cast<int64_t>(out.size());
  ANVIL_CHECK(begin >= 0 && begin + count <= num_tokens_, "token shard '", path_, "': tokens [", begin, ", ",
              begin + count, ") outside the ", num_tokens_, " tokens");
  uint32_t largest = 0;
  for (int64_t i = 0; i < count; ++i) {
    uint32_t value = 0;
    if (token_bytes_ == 2) {
      uint16_t narrow = 0;
      std::memcpy(&narrow, tokens_ + (begin + i) * 2, 2);
      value = narrow;
    } else {
      std::memcpy(&value, tokens_ + (begin + i) * 4, 4);
    }
    largest = std::max(largest, value);
    out[static_cast<size_t>(i)] = static_cast<int32_t>(value);
  }
  ANVIL_CHECK(largest < vocab_size_, "token shard '", path_, "': token ", largest, " in [", begin, ", ", begin + count,
              ") is outside the vocabulary of ", vocab_size_);
}

}  // namespace anvil::train
