#pragma once
// Writes GGUF v3 files: metadata in insertion order, then tensors aligned to
// general.alignment (32 unless set). The file appears atomically (temp + fsync + rename).
#include <string>
#include <utility>
#include <vector>

#include "anvil/io/gguf.h"

namespace anvil::io {

class GgufWriter {
 public:
  // Sets (or replaces) a metadata value.
  void set(const std::string& key, GgufValue value);
  // Adds a host tensor (any dtype with a GGUF type); its bytes are read at write time.
  void add_tensor(const std::string& name, const Tensor& tensor);
  // Writes everything to `path`; throws anvil::Error naming the file on I/O failure.
  void write(const std::string& path) const;

  // Convenience constructors for metadata values.
  static GgufValue u32(uint32_t value) { return {GgufType::U32, uint64_t{value}}; }
  static GgufValue i32(int32_t value) { return {GgufType::I32, int64_t{value}}; }
  static GgufValue f32(float value) { return {GgufType::F32, double{value}}; }
  static GgufValue string(std::string value) { return {GgufType::String, std::move(value)}; }
  static GgufValue boolean(bool value) { return {GgufType::Bool, value}; }

 private:
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace anvil::io
