#pragma once
// A tiny prepared dataset and run config for the trainer, checkpoint and export tests.
#include <string>
#include <vector>

#include "anvil/train/train_config.h"
#include "model/tiny_model.h"

namespace anvil::testing {

class TinyRun {
 public:
  // Writes ~30 KB of random "words" and prepares it with the bytes tokenizer.
  TinyRun();
  [[nodiscard]] const std::string& data() const { return data_; }
  [[nodiscard]] std::string path(const std::string& name) const { return dir_.path(name); }
  // A tiny config of `family` on this data, plus overrides.
  [[nodiscard]] train::TrainConfig config(const std::string& family,
                                          const std::vector<std::string>& overrides = {}) const;

 private:
  TempDir dir_;
  std::string data_;
};

}  // namespace anvil::testing
