// Checkpoints: safetensors + JSON state + checksum, atomic writes, newest-valid lookup.
#include "anvil/train/checkpoint.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <cstdio>
#include <filesystem>

#include "anvil/core/error.h"
#include "anvil/train/token_shard.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "anvil-checkpoint-v1";

// Checksum of the state text and every tensor's name and bytes, in order.
uint64_t checkpoint_checksum(const std::string& state_text,
                             const std::vector<std::pair<std::string, const void*>>& tensors,
                             const std::vector<uint64_t>& sizes) {
  uint64_t sum = checksum_bytes(state_text.data(), state_text.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    sum = checksum_bytes(tensors[i].first.data(), tensors[i].first.size(), sum);
    sum = checksum_bytes(tensors[i].second, sizes[i], sum);
  }
  return sum;
}

std::string hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016" PRIx64, value);
  return text;
}

}  // namespace

void write_checkpoint(const std::string& path, const nlohmann::json& state,
                      const std::vector<std::pair<std::string, Tensor>>& tensors) {
  const std::string state_text = state.dump();
  std::vector<std::pair<std::string, Tensor>> contiguous;
  std::vector<std::pair<std::string, const void*>> views;
  std::vector<uint64_t> sizes;
  for (const auto& [name, tensor] : tensors) {
    contiguous.emplace_back(name, tensor.is_contiguous() ? tensor : tensor.contiguous());
    views.emplace_back(name, contiguous.back().second.raw_data());
    sizes.push_back(static_cast<uint64_t>(tensor.nbytes()));
  }
  const std::map<std::string, std::string> metadata = {
      {"anvil.format", kFormat},
      {"anvil.state", state_text},
      {"anvil.checksum", hex(checkpoint_checksum(state_text, views, sizes))}};
  io::write_safetensors(path, contiguous, metadata);  // temporary name, fsync, rename
  const fs::path parent = fs::path(path).parent_path();
  detail::sync_directory(parent.empty() ? "." : parent.string());
}

Checkpoint Checkpoint::open(const std::string& path) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const auto& metadata = file.metadata();
  const auto field = [&](const char* key) -> const std::string& {
    const auto it = metadata.find(key);
    ANVIL_CHECK(it != metadata.end(), "checkpoint '", path, "': metadata '", key, "' is missing");
    return it->second;
  };
  ANVIL_CHECK(field("anvil.format") == kFormat, "checkpoint '", path, "': format '", field("anvil.format"),
              "' (expected ", kFormat, ")");
  const std::string& state_text = field("anvil.state");
  std::vector<std::pair<std::string, const void*>> views;
  std::vector<uint64_t> sizes;
  std::vector<Tensor> keep;
  for (const io::SafetensorsEntry& entry : file.entries()) {
    keep.push_back(file.tensor(entry.name));
    views.emplace_back(entry.name, keep.back().raw_data());
    sizes.push_back(entry.end - entry.begin);
  }
  ANVIL_CHECK(hex(checkpoint_checksum(state_text, views, sizes)) == field("anvil.checksum"), "checkpoint '", path,
              "': checksum mismatch (the file is damaged)");
  nlohmann::json state = nlohmann::json::parse(state_text, nullptr, /*allow_exceptions=*/false);
  ANVIL_CHECK(!state.is_discarded() && state.is_object(), "checkpoint '", path, "': state is not a JSON object");
  return {std::move(file), std::move(state)};
}

Tensor Checkpoint::tensor(const std::string& name) const {
  ANVIL_CHECK(has(name), "checkpoint '", file_.path(), "' has no tensor '", name, "'");
  return file_.tensor(name);
}

void Checkpoint::copy_to(const std::string& name, Tensor& out) const {
  const Tensor stored = tensor(name);
  ANVIL_CHECK(stored.dtype() == out.dtype() && stored.numel() == out.numel() && out.is_contiguous(), "checkpoint '",
              file_.path(), "': tensor '", name, "' is ", stored.to_string(0), " but the run needs ", out.to_string(0));
  std::memcpy(out.raw_data(), stored.raw_data(), static_cast<size_t>(stored.nbytes()));
}

std::string checkpoint_file_name(int64_t step) {
  char name[48];
  std::snprintf(name, sizeof name, "ckpt_%08lld.safetensors", static_cast<long long>(step));
  return name;
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& folder) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs::is_directory(folder)) return found;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    long long step = 0;
    char tail[16] = {};
    // Exactly ckpt_<digits>.safetensors: temporary files end in .tmp and do not match.
    if (std::sscanf(name.c_str(), "ckpt_%lld.safetensor%15s", &step, tail) == 2 && std::string(tail) == "s" &&
        name == checkpoint_file_name(step)) {
      found.emplace_back(step, entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::optional<std::string> latest_valid_checkpoint(const std::string& folder, std::vector<std::string>* skipped) {
  const std::vector<std::pair<int64_t, std::string>> found = list_checkpoints(folder);
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    try {
      (void)Checkpoint::open(it->second);
      return it->second;
    } catch (const Error& error) {
      if (skipped != nullptr) skipped->push_back(error.what());
    }
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& folder, int64_t keep) {
  const std::vector<std::pair<int64_t, std::string>> found = list_checkpoints(folder);
  for (size_t i = 0; i + static_cast<size_t>(keep) < found.size(); ++i) fs::remove(found[i].second);
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == ".tmp") fs::remove(entry.path());
  }
}

}  // namespace anvil::train
