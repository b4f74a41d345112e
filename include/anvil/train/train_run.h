#pragma once
// A whole training run as `anvil train` runs it: checkpoints in out_dir/checkpoints
// (resumed from the newest valid one when asked), a JSONL log (out_dir/log.jsonl: one
// line per step with loss, lr, grad norm, tokens/s, MFU, memory; a line per validation),
// the loss-curve SVG (out_dir/loss.svg), and at the end the model exported in Hugging
// Face layout (out_dir/model) and as GGUF (out_dir/model.gguf) for load_causal_lm,
// transformers and llama.cpp.
#include <atomic>
#include <cstdint>
#include <string>

#include "anvil/context.h"
#include "anvil/train/train_config.h"

namespace anvil::train {

struct TrainRunOptions {
  bool resume = false;           // continue from the newest valid checkpoint in out_dir
  bool overwrite = false;        // start afresh even if out_dir holds checkpoints
  int64_t stop_after_steps = 0;  // stop (with a checkpoint) once this many steps are done; 0 = run to the end
  bool print = true;             // progress lines on stdout
  // When set: every training micro-batch is appended to this file as it is used, tokens then
  // targets, (batch, seq) i32 each, little-endian (tools/torch_loss_curve.py replays them).
  std::string dump_batches;
  // When set (by a signal handler, say), the run stops after the current step with a
  // checkpoint, as at stop_after_steps.
  const std::atomic<bool>* stop_requested = nullptr;
};

struct TrainRunResult {
  int64_t steps = 0;  // optimizer steps done
  double last_val_loss = -1.0;
  double unigram_val_loss = -1.0;
  bool finished = false;  // all run.steps done (and the model exported)
  std::string last_checkpoint;
};

TrainRunResult run_training(Ctx& ctx, const TrainConfig& config, const TrainRunOptions& options);

// Peak GFLOP/s for the MFU figure when run.peak_gflops is 0: on a GPU run, the device's
// dense peak for run.precision (bf16 tensor cores, or plain f32); on the CPU, f32 threads x
// clock x FMA width.
double estimate_peak_gflops(Ctx& ctx, const TrainConfig& config);

}  // namespace anvil::train
