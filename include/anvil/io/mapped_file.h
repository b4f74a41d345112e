#pragma once
// A read-only memory map of a whole file; unmapped when the last owner lets go.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace anvil::io {

class MappedFile {
 public:
  // Maps `path` read-only; throws anvil::Error naming the file and the OS error.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  [[nodiscard]] const uint8_t* data() const { return data_; }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

}  // namespace anvil::io
