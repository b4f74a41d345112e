// load_causal_lm: picks the reader from what `path` is (GGUF file, safetensors file with
// config.json beside it, or a Hugging Face folder), then the architecture from the config.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/io/safetensors.h"
#include "anvil/model/causal_lm.h"
#include "architectures.h"

namespace anvil::model {

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  ANVIL_CHECK(stream.good(), "cannot read '", path.string(), "'");
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

bool has_gguf_magic(const fs::path& path) {
  std::ifstream stream(path, std::ios::binary);
  char magic[4] = {};
  stream.read(magic, sizeof magic);
  return stream.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

std::unique_ptr<CausalLM> make_model(Ctx& ctx, ModelConfig config, const ModelWeights& weights, Device device) {
  ModelWeights placed = weights_to_device(ctx, weights, device);
  if (config.architecture == Architecture::Gpt2) return make_gpt2_model(std::move(config), std::move(placed), device);
  return make_llama_model(std::move(config), std::move(placed), device);
}

std::unique_ptr<CausalLM> load_gguf(Ctx& ctx, const fs::path& path, Device device) {
  const auto file = std::make_shared<const io::GgufFile>(io::GgufFile::open(path.string()));
  ModelConfig config = config_from_gguf(*file);
  const std::unique_ptr<WeightSource> source = gguf_weight_source(file);
  const ModelWeights weights = load_gguf_weights(*source, config);
  return make_model(ctx, std::move(config), weights, device);
}

// The shard files of a folder: those named by model.safetensors.index.json's weight_map,
// else model.safetensors.
std::vector<fs::path> shard_paths(const fs::path& folder) {
  const fs::path index_path = folder / "model.safetensors.index.json";
  if (!fs::exists(index_path)) {
    ANVIL_CHECK(fs::exists(folder / "model.safetensors"), "'", folder.string(),
                "' has neither model.safetensors nor model.safetensors.index.json");
    return {folder / "model.safetensors"};
  }
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_text(index_path));
  } catch (const nlohmann::json::exception& error) {
    throw make_error("'", index_path.string(), "': not valid JSON: ", error.what());
  }
  ANVIL_CHECK(index.contains("weight_map") && index["weight_map"].is_object(), "'", index_path.string(),
              "': field 'weight_map' is missing or not an object");
  std::set<std::string> names;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    ANVIL_CHECK(file.is_string(), "'", index_path.string(), "': weight_map['", tensor, "'] must be a file name");
    const std::string name = file.get<std::string>();
    ANVIL_CHECK(fs::path(name).filename() == fs::path(name), "'", index_path.string(), "': shard name '", name,
                "' must be a plain file name");
    names.insert(name);
  }
  std::vector<fs::path> paths;
  paths.reserve(names.size());
  for (const std::string& name : names) paths.push_back(folder / name);
  return paths;
}

std::unique_ptr<CausalLM> load_hf(Ctx& ctx, const fs::path& config_path, const std::vector<fs::path>& shards,
                                  Device device) {
  ModelConfig config = config_from_hf_json(read_text(config_path), config_path.string());
  std::vector<io::SafetensorsFile> files;
  files.reserve(shards.size());
  for (const fs::path& shard : shards) files.push_back(io::SafetensorsFile::open(shard.string()));
  const std::unique_ptr<WeightSource> source = safetensors_weight_source(std::move(files));
  const ModelWeights weights = load_hf_weights(*source, config);
  return make_model(ctx, std::move(config), weights, device);
}

}  // namespace

std::unique_ptr<CausalLM> load_causal_lm(Ctx& ctx, const std::string& path, Device device) {
  const fs::path location(path);
  ANVIL_CHECK(fs::exists(location), "load_causal_lm: '", path, "' does not exist");
  if (fs::is_directory(location)) {
    const fs::path config_path = location / "config.json";
    ANVIL_CHECK(fs::exists(config_path), "load_causal_lm: folder '", path, "' has no config.json");
    return load_hf(ctx, config_path, shard_paths(location), device);
  }
  if (has_gguf_magic(location)) return load_gguf(ctx, location, device);
  const fs::path config_path = location.parent_path() / "config.json";
  ANVIL_CHECK(fs::exists(config_path), "load_causal_lm: '", path,
              "' is not a GGUF file, and as a safetensors file it needs a config.json beside it");
  return load_hf(ctx, config_path, {location}, device);
}

}  // namespace anvil::model
