#pragma once
// Trainer: one training run's state (model, optimizer, data position, step) and the
// optimizer step that moves it: grad_accum micro-batches of forward + backward, clipping,
// the scheduled learning rate, the update. Checkpoints save and restore all of it, so a
// resumed run continues with the bit-identical loss curve on the CPU.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "anvil/context.h"
#include "anvil/train/data_loader.h"
#include "anvil/train/optimizer.h"
#include "anvil/train/train_config.h"
#include "anvil/train/train_model.h"

namespace anvil::train {

struct StepStats {
  int64_t step = 0;   // optimizer steps done after this one
  double loss = 0.0;  // mean over the micro-batches
  double lr = 0.0;
  double grad_norm = 0.0;
  double clip_scale = 1.0;
  double seconds = 0.0;
  double tokens_per_second = 0.0;
  int64_t tokens = 0;  // tokens of this step on this rank
};

// The data loader options a run of `config` uses (data seed, sequence length, rank slice).
LoaderOptions loader_options(const TrainConfig& config);

class Trainer {
 public:
  // Opens config.data.path, resolves the model config from it, builds the model (weights
  // initialised from run.seed) and the optimizer.
  Trainer(Ctx& ctx, TrainConfig config);

  // One optimizer step.
  StepStats train_step();
  // Called with every training micro-batch, in order, before it is used (to record the
  // exact data of a run, e.g. for a side-by-side run of another framework).
  void set_batch_observer(std::function<void(const TokenBatch&)> observer) { batch_observer_ = std::move(observer); }
  // Mean validation loss over run.eval_batches batches (the same batches every time).
  double evaluate();
  // Writes everything a resume needs to `path` (atomically).
  void save_checkpoint(const std::string& path);
  // Restores a checkpoint of a run with the same model and data; throws anvil::Error
  // naming what differs.
  void load_checkpoint(const std::string& path);

  [[nodiscard]] int64_t step() const { return step_; }
  [[nodiscard]] int64_t tokens_seen() const { return tokens_seen_; }
  [[nodiscard]] const TrainConfig& config() const { return config_; }
  [[nodiscard]] TrainModel& model() { return *model_; }
  [[nodiscard]] Optimizer& optimizer() { return *optimizer_; }
  [[nodiscard]] DataLoader& loader() { return *loader_; }
  // Training FLOPs of one step on this rank.
  [[nodiscard]] double flops_per_step() const;

 private:
  Ctx& ctx_;
  TrainConfig config_;
  std::unique_ptr<DataLoader> loader_;
  std::function<void(const TokenBatch&)> batch_observer_;
  std::unique_ptr<TrainModel> model_;
  std::unique_ptr<Optimizer> optimizer_;
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
};

}  // namespace anvil::train
