#include "anvil/io/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "anvil/core/error.h"

namespace anvil::io {
namespace {

constexpr uint32_t kVersion = 3;

// Accumulates the header bytes in memory (metadata and tensor infos are small).
class ByteSink {
 public:
  template <typename T>
  void put(T value) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
    buffer_.insert(buffer_.end(), bytes, bytes + sizeof(T));
  }
  void put_string(std::string_view text) {
    put<uint64_t>(text.size());
    buffer_.insert(buffer_.end(), text.begin(), text.end());
  }
  void pad_to(uint64_t alignment) {
    while (buffer_.size() % alignment != 0) buffer_.push_back(0);
  }
  [[nodiscard]] const std::vector<uint8_t>& bytes() const { return buffer_; }

 private:
  std::vector<uint8_t> buffer_;
};

void put_value(ByteSink& sink, const GgufValue& value) {
  switch (value.type) {
    case GgufType::U8:
      sink.put(static_cast<uint8_t>(value.as_int()));
      break;
    case GgufType::I8:
      sink.put(static_cast<int8_t>(value.as_int()));
      break;
    case GgufType::U16:
      sink.put(static_cast<uint16_t>(value.as_int()));
      break;
    case GgufType::I16:
      sink.put(static_cast<int16_t>(value.as_int()));
      break;
    case GgufType::U32:
      sink.put(static_cast<uint32_t>(value.as_int()));
      break;
    case GgufType::I32:
      sink.put(static_cast<int32_t>(value.as_int()));
      break;
    case GgufType::U64:
      sink.put(std::get<uint64_t>(value.value));
      break;
    case GgufType::I64:
      sink.put(static_cast<int64_t>(value.as_int()));
      break;
    case GgufType::F32:
      sink.put(static_cast<float>(value.as_float()));
      break;
    case GgufType::F64:
      sink.put(value.as_float());
      break;
    case GgufType::Bool:
      sink.put(static_cast<uint8_t>(value.as_bool() ? 1 : 0));
      break;
    case GgufType::String:
      sink.put_string(value.as_string());
      break;
    case GgufType::Array: {
      const GgufArray& array = value.as_array();
      sink.put(static_cast<uint32_t>(array.element_type));
      sink.put<uint64_t>(array.items.size());
      for (const GgufValue& item : array.items) {
        ANVIL_CHECK(item.type == array.element_type, "GGUF array of ", gguf_type_name(array.element_type), " holds a ",
                    gguf_type_name(item.type));
        put_value(sink, item);
      }
      break;
    }
  }
}

void write_all(int descriptor, const void* data, size_t bytes, const std::string& path) {
  const auto* cursor = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t written = ::write(descriptor, cursor, bytes);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) throw make_error("cannot write '", path, "': ", std::strerror(errno));
    cursor += written;
    bytes -= static_cast<size_t>(written);
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [existing_key, existing_value] : metadata_) {
    if (existing_key == key) {
      existing_value = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& tensor) {
  ANVIL_CHECK(tensor.defined() && tensor.device().is_cpu(), "GGUF tensor '", name, "' must be a host tensor");
  ANVIL_CHECK(tensor.dim() <= 4, "GGUF tensor '", name, "' has ", tensor.dim(), " dims (at most 4)");
  (void)ggml_type_from_dtype(tensor.dtype());  // throws for dtypes GGUF cannot hold
  for (const auto& entry : tensors_) ANVIL_CHECK(entry.first != name, "duplicate GGUF tensor '", name, "'");
  tensors_.emplace_back(name, tensor.contiguous());
}

void GgufWriter::write(const std::string& path) const {
  uint64_t alignment = 32;
  for (const auto& [key, value] : metadata_) {
    if (key == "general.alignment") alignment = static_cast<uint64_t>(value.as_int());
  }
  ANVIL_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "general.alignment must be a power of two");
  ByteSink header;
  header.put<uint32_t>(0x46554747);
  header.put<uint32_t>(kVersion);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    header.put_string(key);
    header.put(static_cast<uint32_t>(value.type));
    put_value(header, value);
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors_) {
    header.put_string(name);
    header.put(static_cast<uint32_t>(tensor.dim()));
    for (int64_t axis = tensor.dim() - 1; axis >= 0; --axis) header.put(static_cast<uint64_t>(tensor.size(axis)));
    header.put(ggml_type_from_dtype(tensor.dtype()));
    header.put(offset);
    offset += (static_cast<uint64_t>(tensor.nbytes()) + alignment - 1) / alignment * alignment;
  }
  header.pad_to(alignment);

  const std::string temporary = path + ".tmp";
  const int descriptor = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (descriptor < 0) throw make_error("cannot create '", temporary, "': ", std::strerror(errno));
  try {
    write_all(descriptor, header.bytes().data(), header.bytes().size(), temporary);
    const std::vector<uint8_t> padding(alignment, 0);
    for (const auto& [name, tensor] : tensors_) {
      const auto bytes = static_cast<uint64_t>(tensor.nbytes());
      write_all(descriptor, tensor.raw_data(), bytes, temporary);
      write_all(descriptor, padding.data(), (alignment - bytes % alignment) % alignment, temporary);
    }
    if (::fsync(descriptor) != 0) throw make_error("cannot sync '", temporary, "': ", std::strerror(errno));
  } catch (...) {
    ::close(descriptor);
    ::unlink(temporary.c_str());
    throw;
  }
  ::close(descriptor);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw make_error("cannot rename '", temporary, "' to '", path, "': ", std::strerror(error));
  }
}

}  // namespace anvil::io
