#include "info.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/io/safetensors.h"

namespace anvil::cli {
namespace {

namespace fs = std::filesystem;

struct TensorRow {
  std::string name, type, shape;
  uint64_t bytes;
};

std::string human_bytes(uint64_t bytes) {
  char text[32];
  if (bytes >= (1ULL << 30)) {
    std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / static_cast<double>(1ULL << 30));
  } else if (bytes >= (1ULL << 20)) {
    std::snprintf(text, sizeof(text), "%.2f MiB", static_cast<double>(bytes) / static_cast<double>(1ULL << 20));
  } else {
    std::snprintf(text, sizeof(text), "%llu B", static_cast<unsigned long long>(bytes));
  }
  return text;
}

void print_tensor_table(const std::vector<TensorRow>& rows, bool all_tensors) {
  uint64_t total = 0;
  std::map<std::string, uint64_t> bytes_by_type;
  for (const TensorRow& row : rows) {
    total += row.bytes;
    bytes_by_type[row.type] += row.bytes;
  }
  std::printf("\ntensors: %zu, %s\n", rows.size(), human_bytes(total).c_str());
  for (const auto& [type, bytes] : bytes_by_type) std::printf("  %-8s %s\n", type.c_str(), human_bytes(bytes).c_str());
  const size_t shown = all_tensors ? rows.size() : std::min<size_t>(rows.size(), 24);
  std::printf("\n  %-48s %-6s %-22s %s\n", "name", "type", "shape", "bytes");
  for (size_t i = 0; i < shown; ++i) {
    std::printf("  %-48s %-6s %-22s %llu\n", rows[i].name.c_str(), rows[i].type.c_str(), rows[i].shape.c_str(),
                static_cast<unsigned long long>(rows[i].bytes));
  }
  if (shown < rows.size()) std::printf("  ... %zu more (--all to list them)\n", rows.size() - shown);
}

int info_gguf(const std::string& path, bool all_tensors) {
  const io::GgufFile file = io::GgufFile::open(path);
  std::printf("file: %s (GGUF v%u, alignment %llu)\n\nmetadata:\n", path.c_str(), file.version(),
              static_cast<unsigned long long>(file.alignment()));
  for (const auto& [key, value] : file.metadata()) std::printf("  %-44s %s\n", key.c_str(), value.to_string().c_str());
  std::vector<TensorRow> rows;
  for (const io::GgufTensorInfo& info : file.tensors()) {
    rows.push_back({info.name, io::ggml_type_name(info.ggml_type), shape_string(info.shape), info.bytes});
  }
  print_tensor_table(rows, all_tensors);
  return 0;
}

void add_safetensors_rows(const std::string& path, std::vector<TensorRow>& rows) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  for (const io::SafetensorsEntry& entry : file.entries()) {
    rows.push_back(
        {entry.name, io::safetensors_dtype_name(entry.dtype), shape_string(entry.shape), entry.end - entry.begin});
  }
}

int info_hf_folder(const fs::path& folder, bool all_tensors) {
  const fs::path config_path = folder / "config.json";
  std::ifstream stream(config_path);
  ANVIL_CHECK(stream.good(), "'", folder.string(), "' has no config.json");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(stream);
  } catch (const nlohmann::json::exception& error) {
    throw make_error("'", config_path.string(), "' is not valid JSON: ", error.what());
  }
  std::printf("folder: %s\n\nconfig.json:\n", folder.string().c_str());
  for (const auto& [key, value] : config.items()) std::printf("  %-36s %s\n", key.c_str(), value.dump().c_str());
  std::vector<TensorRow> rows;
  std::vector<fs::path> shards;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".safetensors") shards.push_back(entry.path());
  }
  std::sort(shards.begin(), shards.end());
  for (const fs::path& shard : shards) add_safetensors_rows(shard.string(), rows);
  std::printf("\nshards: %zu; tokenizer.json: %s\n", shards.size(),
              fs::exists(folder / "tokenizer.json") ? "present" : "absent");
  print_tensor_table(rows, all_tensors);
  return 0;
}

}  // namespace

int run_info(const std::string& path, bool all_tensors) {
  if (fs::is_directory(path)) return info_hf_folder(path, all_tensors);
  if (fs::path(path).extension() == ".safetensors") {
    std::vector<TensorRow> rows;
    add_safetensors_rows(path, rows);
    std::printf("file: %s (safetensors)\n", path.c_str());
    print_tensor_table(rows, all_tensors);
    return 0;
  }
  return info_gguf(path, all_tensors);
}

}  // namespace anvil::cli
