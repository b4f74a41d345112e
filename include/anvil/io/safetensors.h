#pragma once
// safetensors files (Hugging Face): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
// data. Read by memory map with every offset checked; written atomically.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anvil/core/tensor.h"

namespace anvil::io {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;  // offsets into the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and parses `path`; throws anvil::Error naming the file, the field and the offset.
  static SafetensorsFile open(const std::string& path);
  // Parses bytes in memory (`keep_alive` owns them); `name` is used in errors.
  static SafetensorsFile parse(const uint8_t* data, size_t size, const std::string& name,
                               std::shared_ptr<void> keep_alive);

  [[nodiscard]] const std::string& path() const { return path_; }
  // Entries in file order (by data offset).
  [[nodiscard]] const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const { return metadata_; }
  [[nodiscard]] const SafetensorsEntry* find(const std::string& name) const;
  // A zero-copy host tensor over the mapped bytes.
  [[nodiscard]] Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_offset_ = 0;
  std::shared_ptr<Storage> storage_;
};

// Writes host tensors (in the order given) and string metadata to `path` atomically.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// safetensors dtype names ("F32", "BF16", "F8_E4M3", ...) <-> anvil dtypes.
std::optional<DType> dtype_from_safetensors(const std::string& name);
std::string safetensors_dtype_name(DType dtype);

}  // namespace anvil::io
