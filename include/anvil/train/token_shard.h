#pragma once
// Binary token shards written by `anvil data prepare` and memory-mapped by the loader.
//
// Layout (little-endian): a 64-byte header
//   magic "ANVTOKS1", u32 version (1), u32 token_bytes (2 or 4), u64 num_tokens,
//   u64 num_documents, u64 vocab_size, i64 eos_id, u64 checksum (of tokens and index), u64 0
// then num_tokens tokens of token_bytes each (u16 or u32), zero-padded to 8 bytes, then
// the document index: num_documents u64 token offsets where each document starts.
// A shard is written under a temporary name and renamed when complete.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace anvil::io {
class MappedFile;
}

namespace anvil::train {

namespace detail {
class AtomicFile;
}

class ShardWriter {
 public:
  // token_bytes: 2 when vocab_size <= 65536, else 4.
  ShardWriter(const std::string& path, int64_t vocab_size, int64_t eos_id);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Marks the next token as the start of a document.
  void begin_document();
  // Appends tokens (each in [0, vocab_size)).
  void append(std::span<const int32_t> tokens);
  [[nodiscard]] int64_t num_tokens() const { return num_tokens_; }
  [[nodiscard]] int64_t num_documents() const { return static_cast<int64_t>(document_starts_.size()); }
  // Writes the index and header and renames the file into place.
  void finish();

 private:
  std::unique_ptr<detail::AtomicFile> file_;
  std::string path_;
  int64_t vocab_size_;
  int64_t eos_id_;
  uint32_t token_bytes_;
  int64_t num_tokens_ = 0;
  uint64_t checksum_;
  std::vector<uint64_t> document_starts_;
  std::vector<uint8_t> buffer_;
};

class TokenShard {
 public:
  // Maps and validates `path` (magic, version, sizes, document index, checksum when
  // `verify`); throws anvil::Error naming the file and the field.
  static TokenShard open(const std::string& path, bool verify = true);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] int64_t num_tokens() const { return num_tokens_; }
  [[nodiscard]] int64_t vocab_size() const { return vocab_size_; }
  [[nodiscard]] int64_t eos_id() const { return eos_id_; }
  [[nodiscard]] int64_t token_bytes() const { return token_bytes_; }
  [[nodiscard]] std::span<const uint64_t> document_starts() const { return document_starts_; }
  // Token at `index`.
  [[nodiscard]] int32_t token(int64_t index) const;
  // Copies tokens [begin, begin + out.size()) into out.
  void read(int64_t begin, std::span<int32_t> out) const;

 private:
  std::shared_ptr<io::MappedFile> file_;
  std::string path_;
  const uint8_t* tokens_ = nullptr;
  int64_t num_tokens_ = 0, vocab_size_ = 0, eos_id_ = -1, token_bytes_ = 2;
  std::span<const uint64_t> document_starts_;
};

// 64-bit checksum of bytes, continuing from `state` (start with kChecksumSeed).
inline constexpr uint64_t kChecksumSeed = 0xcbf29ce484222325ULL;
uint64_t checksum_bytes(const void* data, size_t bytes, uint64_t state = kChecksumSeed);

}  // namespace anvil::train
