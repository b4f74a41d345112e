#pragma once
// Files that appear whole or not at all: written under a temporary name, flushed to disk
// (fsync), renamed over the final name, and the folder synced so the rename survives a
// crash. A reader never sees a half-written file under the final name.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace anvil::train::detail {

class AtomicFile {
 public:
  // Creates `path`.tmp; throws anvil::Error naming it on failure.
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Overwrites bytes at `offset` (a header filled in at the end).
  void write_at(uint64_t offset, const void* data, size_t bytes);
  [[nodiscard]] uint64_t size() const { return size_; }
  // fsync, rename to the final name, fsync the folder.
  void commit();

 private:
  std::string path_, temporary_;
  std::FILE* stream_ = nullptr;
  uint64_t size_ = 0;
};

// Writes `text` to `path` atomically.
void write_file_atomically(const std::string& path, std::string_view text);
// fsync of a folder (makes renames and new names in it durable).
void sync_directory(const std::string& folder);

}  // namespace anvil::train::detail
