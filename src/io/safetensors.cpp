#include "anvil/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "anvil/core/error.h"
#include "anvil/io/mapped_file.h"

namespace anvil::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ULL << 20;  // the reference implementation's limit

struct NamePair {
  const char* name;
  DType dtype;
};
constexpr std::array<NamePair, 10> kNames = {{{"F32", DType::F32},
                                              {"F64", DType::F64},
                                              {"F16", DType::F16},
                                              {"BF16", DType::BF16},
                                              {"F8_E4M3", DType::F8E4M3},
                                              {"F8_E5M2", DType::F8E5M2},
                                              {"I8", DType::I8},
                                              {"U8", DType::U8},
                                              {"I32", DType::I32},
                                              {"I64", DType::I64}}};

Error file_error(const std::string& name, const std::string& message, const std::string& field, uint64_t offset) {
  return make_error("safetensors '", name, "': ", message, " [field=", field, ", offset=", offset, "]");
}

SafetensorsEntry parse_entry(const std::string& file, const std::string& key, const nlohmann::json& value) {
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets")) {
    throw file_error(file, "entry must have dtype, shape and data_offsets", key, 8);
  }
  SafetensorsEntry entry;
  entry.name = key;
  const auto& dtype = value.at("dtype");
  const std::optional<DType> parsed =
      dtype.is_string() ? dtype_from_safetensors(dtype.get<std::string>()) : std::nullopt;
  if (!parsed) throw file_error(file, "unsupported dtype " + dtype.dump(), key + ".dtype", 8);
  entry.dtype = *parsed;
  const auto& shape = value.at("shape");
  if (!shape.is_array()) throw file_error(file, "shape must be an array", key + ".shape", 8);
  for (const auto& extent : shape) {
    if (!extent.is_number_unsigned() || extent.get<uint64_t>() > (1ULL << 40)) {
      throw file_error(file, "bad dimension " + extent.dump(), key + ".shape", 8);
    }
    entry.shape.push_back(extent.get<int64_t>());
  }
  const auto& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    throw file_error(file, "data_offsets must be [begin, end]", key + ".data_offsets", 8);
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  uint64_t numel = 1;
  for (const int64_t extent : entry.shape) {
    numel *= static_cast<uint64_t>(extent);
    if (numel > (1ULL << 48)) throw file_error(file, "tensor too large", key + ".shape", 8);
  }
  const uint64_t expected = numel * static_cast<uint64_t>(dtype_elem_bytes(entry.dtype));
  if (entry.end < entry.begin || entry.end - entry.begin != expected) {
    throw file_error(file,
                     "data_offsets span " + offsets.dump() + " does not hold " + std::to_string(expected) + " bytes",
                     key + ".data_offsets", 8);
  }
  return entry;
}

}  // namespace

std::optional<DType> dtype_from_safetensors(const std::string& name) {
  for (const NamePair& pair : kNames) {
    if (name == pair.name) return pair.dtype;
  }
  return std::nullopt;
}

std::string safetensors_dtype_name(DType dtype) {
  for (const NamePair& pair : kNames) {
    if (dtype == pair.dtype) return pair.name;
  }
  throw make_error("dtype ", dtype_name(dtype), " cannot be stored in safetensors");
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  const uint8_t* data = mapped->data();
  const size_t size = mapped->size();
  return parse(data, size, path, std::move(mapped));
}

SafetensorsFile SafetensorsFile::parse(const uint8_t* data, size_t size, const std::string& name,
                                       std::shared_ptr<void> keep_alive) {
  SafetensorsFile file;
  file.path_ = name;
  if (size < 8) throw file_error(name, "truncated file: no header length", "header_size", 0);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, data, 8);
  if (header_bytes > kMaxHeaderBytes || header_bytes > size - 8) {
    throw file_error(name, "truncated file or bad header length " + std::to_string(header_bytes), "header_size", 0);
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + header_bytes);
  } catch (const nlohmann::json::exception& error) {
    throw file_error(name, std::string("header is not valid JSON: ") + error.what(), "header", 8);
  }
  if (!header.is_object()) throw file_error(name, "header must be a JSON object", "header", 8);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw file_error(name, "__metadata__ must be an object", key, 8);
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) throw file_error(name, "metadata values must be strings", meta_key, 8);
        file.metadata_[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    file.entries_.push_back(parse_entry(name, key, value));
  }
  std::sort(file.entries_.begin(), file.entries_.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.begin < b.begin; });
  file.data_offset_ = 8 + header_bytes;
  const uint64_t data_size = size - file.data_offset_;
  uint64_t expected_begin = 0;  // entries must tile the data section without gaps or overlaps
  for (size_t i = 0; i < file.entries_.size(); ++i) {
    const SafetensorsEntry& entry = file.entries_[i];
    if (entry.begin != expected_begin) {
      throw file_error(name, "tensor '" + entry.name + "' data is not contiguous with the previous tensor",
                       entry.name + ".data_offsets", file.data_offset_ + entry.begin);
    }
    if (entry.end > data_size) {
      throw file_error(name, "truncated file: tensor '" + entry.name + "' ends past the file",
                       entry.name + ".data_offsets", file.data_offset_ + entry.end);
    }
    expected_begin = entry.end;
    file.index_[entry.name] = i;
  }
  file.storage_ = std::make_shared<Storage>(const_cast<uint8_t*>(data), size, Device::cpu(), std::move(keep_alive));
  return file;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  if (entry == nullptr) throw make_error("safetensors '", path_, "': no tensor named '", name, "'");
  return {storage_, entry->shape, entry->dtype, static_cast<int64_t>(data_offset_ + entry->begin)};
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    ANVIL_CHECK(tensor.defined() && tensor.device().is_cpu(), "safetensors tensor '", name, "' must be on the host");
    ANVIL_CHECK(!header.contains(name), "duplicate safetensors tensor '", name, "'");
    const auto bytes = static_cast<uint64_t>(tensor.nbytes());
    header[name] = {{"dtype", safetensors_dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(tensor.contiguous());
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  const std::string temporary = path + ".tmp";
  std::FILE* stream = std::fopen(temporary.c_str(), "wb");
  if (stream == nullptr) throw make_error("cannot create '", temporary, "': ", std::strerror(errno));
  const uint64_t header_bytes = text.size();
  bool ok =
      std::fwrite(&header_bytes, 8, 1, stream) == 1 && std::fwrite(text.data(), 1, text.size(), stream) == text.size();
  for (const Tensor& tensor : contiguous) {
    const auto bytes = static_cast<size_t>(tensor.nbytes());
    ok = ok && (bytes == 0 || std::fwrite(tensor.raw_data(), 1, bytes, stream) == bytes);
  }
  ok = ok && std::fflush(stream) == 0 && ::fsync(fileno(stream)) == 0;
  ok = (std::fclose(stream) == 0) && ok;
  if (!ok || std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    throw make_error("cannot write '", path, "': ", std::strerror(errno));
  }
}

}  // namespace anvil::io
