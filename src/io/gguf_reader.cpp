// GGUF parsing. Layout (little-endian): magic "GGUF", u32 version, u64 tensor count,
// u64 metadata count, metadata (string key, u32 type, value), tensor infos (string name,
// u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type, u64 offset), padding to
// general.alignment, then the data section. Every read is bounds-checked.
#include <cstring>
#include <limits>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/io/mapped_file.h"

namespace anvil::io {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;

// A bounds-checked reader over the file bytes; errors carry file, field and offset.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

  [[nodiscard]] size_t offset() const { return offset_; }
  [[nodiscard]] size_t remaining() const { return size_ - offset_; }

  template <typename T>
  T read(const char* field) {
    need(sizeof(T), field);
    T value;
    std::memcpy(&value, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* field) {
    const auto length = read<uint64_t>(field);
    need(length, field);
    std::string text(reinterpret_cast<const char*>(data_ + offset_), static_cast<size_t>(length));
    offset_ += static_cast<size_t>(length);
    return text;
  }

  [[nodiscard]] Error error(const std::string& message, const char* field) const {
    return make_error("GGUF '", name_, "': ", message, " [field=", field, ", offset=", offset_, "]");
  }

 private:
  void need(uint64_t bytes, const char* field) const {
    if (bytes > remaining()) {
      throw error("truncated file: need " + std::to_string(bytes) + " bytes, " + std::to_string(remaining()) + " left",
                  field);
    }
  }

  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  const std::string& name_;
};

GgufValue read_value(Cursor& cursor, GgufType type, const char* field, int depth);

GgufValue read_array(Cursor& cursor, const char* field, int depth) {
  if (depth >= kMaxArrayDepth) throw cursor.error("arrays nested too deeply", field);
  const auto element_type = static_cast<GgufType>(cursor.read<uint32_t>(field));
  if (static_cast<uint32_t>(element_type) > static_cast<uint32_t>(GgufType::F64)) {
    throw cursor.error("unknown array element type " + std::to_string(static_cast<uint32_t>(element_type)), field);
  }
  const auto count = cursor.read<uint64_t>(field);
  // Every element takes at least one byte: a larger count is corrupt (and would exhaust memory).
  if (count > cursor.remaining()) throw cursor.error("array count " + std::to_string(count) + " exceeds file", field);
  GgufArray array{element_type, {}};
  array.items.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) array.items.push_back(read_value(cursor, element_type, field, depth + 1));
  return {GgufType::Array, std::move(array)};
}

GgufValue read_value(Cursor& cursor, GgufType type, const char* field, int depth) {
  switch (type) {
    case GgufType::U8:
      return {type, uint64_t{cursor.read<uint8_t>(field)}};
    case GgufType::I8:
      return {type, int64_t{cursor.read<int8_t>(field)}};
    case GgufType::U16:
      return {type, uint64_t{cursor.read<uint16_t>(field)}};
    case GgufType::I16:
      return {type, int64_t{cursor.read<int16_t>(field)}};
    case GgufType::U32:
      return {type, uint64_t{cursor.read<uint32_t>(field)}};
    case GgufType::I32:
      return {type, int64_t{cursor.read<int32_t>(field)}};
    case GgufType::U64:
      return {type, cursor.read<uint64_t>(field)};
    case GgufType::I64:
      return {type, cursor.read<int64_t>(field)};
    case GgufType::F32:
      return {type, double{cursor.read<float>(field)}};
    case GgufType::F64:
      return {type, cursor.read<double>(field)};
    case GgufType::Bool: {
      const auto byte = cursor.read<uint8_t>(field);
      if (byte > 1) throw cursor.error("bool value " + std::to_string(byte), field);
      return {type, byte == 1};
    }
    case GgufType::String:
      return {type, cursor.read_string(field)};
    case GgufType::Array:
      return read_array(cursor, field, depth);
  }
  throw cursor.error("unknown value type " + std::to_string(static_cast<uint32_t>(type)), field);
}

GgufTensorInfo read_tensor_info(Cursor& cursor) {
  GgufTensorInfo info;
  info.name = cursor.read_string("tensor.name");
  const auto n_dims = cursor.read<uint32_t>("tensor.n_dims");
  if (n_dims > kMaxDims) {
    throw cursor.error("tensor '" + info.name + "' has " + std::to_string(n_dims) + " dims", "tensor.n_dims");
  }
  info.shape.assign(n_dims, 0);
  uint64_t numel = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    const auto extent = cursor.read<uint64_t>("tensor.dims");
    if (extent > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (extent != 0 && numel > std::numeric_limits<uint64_t>::max() / 2 / extent)) {
      throw cursor.error("tensor '" + info.name + "' dims overflow", "tensor.dims");
    }
    numel *= extent;
    info.shape[n_dims - 1 - i] = static_cast<int64_t>(extent);  // GGUF lists the innermost dim first
  }
  info.ggml_type = cursor.read<uint32_t>("tensor.type");
  info.offset = cursor.read<uint64_t>("tensor.offset");
  info.dtype = dtype_from_ggml_type(info.ggml_type);
  if (info.dtype) {
    const DTypeInfo& type_info = dtype_info(*info.dtype);
    const uint64_t row = n_dims == 0 ? 1 : static_cast<uint64_t>(info.shape.back());
    if (row % static_cast<uint64_t>(type_info.block_elems) != 0) {
      throw cursor.error("tensor '" + info.name + "' row of " + std::to_string(row) + " is not a whole number of " +
                             std::string(type_info.name) + " blocks",
                         "tensor.dims");
    }
    info.bytes = numel / static_cast<uint64_t>(type_info.block_elems) * static_cast<uint64_t>(type_info.block_bytes);
  }
  return info;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  const uint8_t* data = mapped->data();
  const size_t size = mapped->size();
  return parse(data, size, path, std::move(mapped));
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name, std::shared_ptr<void> keep_alive) {
  GgufFile file;
  file.path_ = name;
  Cursor cursor(data, size, file.path_);
  if (cursor.read<uint32_t>("magic") != kMagic) throw cursor.error("not a GGUF file (bad magic)", "magic");
  file.version_ = cursor.read<uint32_t>("version");
  if (file.version_ != 2 && file.version_ != 3) {
    throw cursor.error("unsupported GGUF version " + std::to_string(file.version_) + " (2 and 3 are)", "version");
  }
  const auto tensor_count = cursor.read<uint64_t>("tensor_count");
  const auto metadata_count = cursor.read<uint64_t>("metadata_kv_count");
  if (tensor_count > cursor.remaining() || metadata_count > cursor.remaining()) {
    throw cursor.error("counts exceed the file size", "tensor_count");
  }
  for (uint64_t i = 0; i < metadata_count; ++i) {
    std::string key = cursor.read_string("metadata.key");
    const auto type = static_cast<GgufType>(cursor.read<uint32_t>("metadata.type"));
    GgufValue value = read_value(cursor, type, key.c_str(), 0);
    if (!file.metadata_index_.emplace(key, file.metadata_.size()).second) {
      throw cursor.error("duplicate metadata key '" + key + "'", "metadata.key");
    }
    file.metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* alignment = file.find("general.alignment")) {
    const int64_t value = alignment->as_int();
    if (value <= 0 || (value & (value - 1)) != 0) {
      throw cursor.error("general.alignment " + std::to_string(value) + " is not a power of two", "general.alignment");
    }
    file.alignment_ = static_cast<uint64_t>(value);
  }
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info = read_tensor_info(cursor);
    if (!file.tensor_index_.emplace(info.name, file.tensors_.size()).second) {
      throw cursor.error("duplicate tensor '" + info.name + "'", "tensor.name");
    }
    file.tensors_.push_back(std::move(info));
  }
  file.data_offset_ = (cursor.offset() + file.alignment_ - 1) / file.alignment_ * file.alignment_;
  const uint64_t data_size = size >= file.data_offset_ ? size - file.data_offset_ : 0;
  for (const GgufTensorInfo& info : file.tensors_) {
    if (info.offset % file.alignment_ != 0 || info.offset > data_size || info.bytes > data_size - info.offset) {
      throw make_error("GGUF '", name, "': tensor '", info.name, "' data [", info.offset, ", +", info.bytes,
                       ") lies outside the data section of ", data_size,
                       " bytes or is misaligned [field=tensor.offset]");
    }
  }
  file.storage_ = std::make_shared<Storage>(const_cast<uint8_t*>(data), size, Device::cpu(), std::move(keep_alive));
  return file;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* value = find(key);
  if (value == nullptr) throw make_error("GGUF '", path_, "': missing metadata key '", key, "'");
  return *value;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (info == nullptr) throw make_error("GGUF '", path_, "': no tensor named '", name, "'");
  if (!info->dtype) {
    throw make_error("GGUF '", path_, "': tensor '", name, "' has type ", ggml_type_name(info->ggml_type),
                     ", which anvil does not support");
  }
  return {storage_, info->shape, *info->dtype, static_cast<int64_t>(data_offset_ + info->offset)};
}

}  // namespace anvil::io
