#pragma once
// The optimizer over the flat parameter/gradient buffers: gradient clipping by global
// norm, then AdamW (decoupled weight decay, torch.optim.AdamW's update) by weight-decay
// group, or Muon (Newton-Schulz-orthogonalised momentum) for the 2-D hidden matrices with
// AdamW for embeddings, head, norms and biases.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "anvil/context.h"
#include "anvil/train/param_table.h"
#include "anvil/train/train_config.h"

namespace anvil::train {

struct OptimizerStepInfo {
  double grad_norm = 0.0;   // global L2 norm of the gradients before clipping
  double clip_scale = 1.0;  // factor applied to the gradients (1 when not clipped)
  double lr = 0.0;          // AdamW learning rate used
};

// sqrt(sum of squares) of an f32 tensor, summed in float64 over fixed blocks in a fixed
// order (the same bits for any thread count).
double global_norm(Ctx& ctx, const Tensor& values);

// X <- Newton-Schulz quintic iteration towards the nearest semi-orthogonal matrix (the
// U V^T of X's SVD, up to the iteration's ~0.7..1.2 spread of singular values), as Muon
// uses it: X / ||X||_F, then `steps` times X = a X + (b A + c A^2) X with A = X X^T and
// (a, b, c) = (3.4445, -4.7750, 2.0315). x (R, C) contiguous f32, on any device, is overwritten.
void newton_schulz(Ctx& ctx, Tensor& x, int64_t steps);

class Optimizer {
 public:
  // State lives on `device`, with the parameters (AdamW and Muon run there through ops).
  Optimizer(Ctx& ctx, const ParamTable& table, const OptimizerConfig& config, Device device = Device::cpu());

  // One update of params from grads (both flat, the table's layout); lr_factor scales the
  // peak learning rates (the schedule). Increments step_count().
  OptimizerStepInfo step(Tensor& params, const Tensor& grads, double lr_factor);
  // The same, and params_low (flat bf16, may be undefined) = every updated parameter rounded
  // (mixed precision's compute copy), written by the update passes themselves.
  OptimizerStepInfo step(Tensor& params, const Tensor& grads, double lr_factor, Tensor& params_low);

  [[nodiscard]] int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t steps) { step_count_ = steps; }
  // The state tensors by name (for checkpoints): "optimizer.m", "optimizer.v", and
  // "optimizer.momentum" with Muon. Writing into them restores a state.
  [[nodiscard]] std::vector<std::pair<std::string, Tensor>> state();
  // Whether `entry` decays with the config's groups.
  [[nodiscard]] bool decays(const ParamEntry& entry) const;
  // Whether `entry` is updated by Muon (name "muon" and a hidden 2-D matrix).
  [[nodiscard]] bool uses_muon(const ParamEntry& entry) const;

 private:
  // Every AdamW run (consecutive parameters sharing decay, Muon's matrices left out) in one op call.
  void adamw_step(Tensor& params, const Tensor& grads, double lr, float grad_scale, Tensor& params_low);
  void muon_updates(Tensor& params, const Tensor& grads, double lr, float grad_scale, Tensor& params_low);

  Ctx& ctx_;
  const ParamTable& table_;
  OptimizerConfig config_;
  std::vector<AdamWRun> adamw_runs_;
  std::vector<const ParamEntry*> muon_entries_;
  Tensor m_, v_, momentum_;  // (P) f32
  int64_t step_count_ = 0;
};

}  // namespace anvil::train
