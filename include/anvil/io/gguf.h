#pragma once
// GGUF (v2/v3) model files: metadata key/values and tensor descriptors, read from a
// memory-mapped file with every offset and size bounds-checked. Errors name the file,
// the field and the byte offset.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "anvil/core/tensor.h"

namespace anvil::io {

// GGUF metadata value types (the numbers are the on-disk codes).
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType type);

struct GgufValue;
// An array keeps its element type so that an empty array still knows it.
struct GgufArray {
  GgufType element_type = GgufType::U8;
  std::vector<GgufValue> items;
};

struct GgufValue {
  GgufType type = GgufType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  // Typed access; throws anvil::Error naming the expected and actual type.
  [[nodiscard]] int64_t as_int() const;   // any integer type (u64 must fit)
  [[nodiscard]] double as_float() const;  // f32/f64, or any integer
  [[nodiscard]] bool as_bool() const;
  [[nodiscard]] const std::string& as_string() const;
  [[nodiscard]] const GgufArray& as_array() const;
  // Short human-readable rendering ("[49152 strings]" for long arrays).
  [[nodiscard]] std::string to_string() const;
};

struct GgufTensorInfo {
  std::string name;
  Shape shape;                 // row-major (GGUF stores ne[0] innermost; this is reversed)
  uint32_t ggml_type = 0;      // the on-disk ggml type code
  std::optional<DType> dtype;  // our dtype for it, when we support the type
  uint64_t offset = 0;         // from the start of the data section
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws anvil::Error (with file, field, offset) on bad input.
  static GgufFile open(const std::string& path);
  // Parses a buffer already in memory (`keep_alive` owns it); `name` is used in errors.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& name, std::shared_ptr<void> keep_alive);

  [[nodiscard]] uint32_t version() const { return version_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] uint64_t alignment() const { return alignment_; }
  [[nodiscard]] uint64_t data_offset() const { return data_offset_; }
  [[nodiscard]] const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // The value for `key`, or null.
  [[nodiscard]] const GgufValue* find(const std::string& key) const;
  // The value for `key`; throws naming the file and key when missing.
  [[nodiscard]] const GgufValue& get(const std::string& key) const;
  [[nodiscard]] const GgufTensorInfo* find_tensor(const std::string& name) const;
  // A zero-copy host tensor over the mapped bytes of `name` (throws if the type is unsupported).
  [[nodiscard]] Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  std::shared_ptr<Storage> storage_;  // the whole file
};

// ggml type code <-> our dtype (nullopt/throws for types we do not support).
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);
uint32_t ggml_type_from_dtype(DType dtype);
// "Q4_K", "F32", ... for any ggml type code ("type 99" when unknown).
std::string ggml_type_name(uint32_t ggml_type);

}  // namespace anvil::io
