#pragma once
// Training checkpoints: one safetensors file holding flat tensors (parameters, optimizer
// state) and, in its metadata, the run state as JSON (step, config, data position, RNG
// seeds, parameter layout) and a checksum over the state and every tensor byte.
// Written atomically (temporary name, fsync, rename, folder fsync): a checkpoint file
// under its final name is complete, and one damaged afterwards fails the checksum, so a
// kill -9 at any moment never leaves a file that loads wrongly.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "anvil/io/safetensors.h"

namespace anvil::train {

// Writes `tensors` (host, any plain dtype) and `state` to `path` atomically.
void write_checkpoint(const std::string& path, const nlohmann::json& state,
                      const std::vector<std::pair<std::string, Tensor>>& tensors);

class Checkpoint {
 public:
  // Opens `path` and verifies format and checksum; throws anvil::Error naming the file.
  static Checkpoint open(const std::string& path);
  [[nodiscard]] const nlohmann::json& state() const { return state_; }
  // A zero-copy view of tensor `name`; throws anvil::Error when it is absent.
  [[nodiscard]] Tensor tensor(const std::string& name) const;
  [[nodiscard]] bool has(const std::string& name) const { return file_.find(name) != nullptr; }
  // Copies tensor `name` into `out` (same dtype and element count), or throws.
  void copy_to(const std::string& name, Tensor& out) const;

 private:
  Checkpoint(io::SafetensorsFile file, nlohmann::json state) : file_(std::move(file)), state_(std::move(state)) {}

  io::SafetensorsFile file_;
  nlohmann::json state_;
};

// "ckpt_00000100.safetensors" for step 100.
std::string checkpoint_file_name(int64_t step);
// (step, path) of the checkpoint files in `folder`, by increasing step (unverified).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& folder);
// The newest checkpoint in `folder` that verifies; damaged ones are skipped and named in
// `skipped` (when given). nullopt when there is none.
std::optional<std::string> latest_valid_checkpoint(const std::string& folder,
                                                   std::vector<std::string>* skipped = nullptr);
// Removes all but the newest `keep` checkpoint files (and stale *.tmp files).
void prune_checkpoints(const std::string& folder, int64_t keep);

}  // namespace anvil::train
