#pragma once
// A decoder-only transformer for training: GPT-2 (learned positions, LayerNorm, GELU) or
// Llama-style (RMSNorm, RoPE, SwiGLU, grouped-query attention), with hand-written
// backward passes on the CPU ops. Parameters and gradients are flat f32 buffers (see
// param_table.h); tensor names follow Hugging Face (Llama) or GPT-2 with q/k/v split
// (export fuses them), and weights are stored (out_features, in_features).
#include <cstdint>
#include <memory>

#include "anvil/context.h"
#include "anvil/model/model_config.h"
#include "anvil/train/param_table.h"

namespace anvil::train {

struct TrainModelOptions {
  // Keep only each layer's input in forward and recompute the layer's activations in
  // backward (memory for ~one extra forward); gradients are bit-identical either way.
  bool recompute = false;
  double init_std = 0.02;  // N(0, init_std); residual projections get init_std / sqrt(2 layers)
  // Where parameters, gradients and activations live and the ops run (cpu or cuda:0).
  Device device = Device::cpu();
  // Compute precision. F32: everything f32. BF16 (mixed precision): parameters, gradients
  // and optimizer state stay f32 (the flat buffers); forward_train runs the GEMMs and
  // attention on a bf16 copy of the weight matrices (refreshed from params() when they may
  // have changed), with bf16 activations saved for backward; norms' statistics, softmax /
  // cross-entropy, the residual stream and every gradient accumulation stay f32.
  DType precision = DType::F32;
};

// Bytes of the activation buffers for the current (B, T).
struct ActivationMemory {
  int64_t saved_bytes = 0;    // kept from forward for backward (layer inputs, per-layer activations, logits)
  int64_t scratch_bytes = 0;  // gradient buffers of backward, reused by every layer
  [[nodiscard]] int64_t total() const { return saved_bytes + scratch_bytes; }
};

class TrainModel {
 public:
  // config.architecture must be Gpt2 or Llama; config is validated.
  TrainModel(Ctx& ctx, const model::ModelConfig& config, const TrainModelOptions& options = {});
  ~TrainModel();
  TrainModel(const TrainModel&) = delete;
  TrainModel& operator=(const TrainModel&) = delete;

  [[nodiscard]] const model::ModelConfig& config() const;
  [[nodiscard]] const TrainModelOptions& options() const;
  [[nodiscard]] const ParamTable& table() const;
  // The flat (num_params) f32 buffers, on options().device. Taking params() (to change
  // them) marks the bf16 weight copy stale: the next forward_train refreshes it.
  [[nodiscard]] Tensor& params();
  // The (num_params) bf16 copy of params() that bf16 runs compute with (undefined in f32). A
  // caller that writes params() and this copy together (the optimizer's fused AdamW) then
  // calls low_params_refreshed(), so that forward_train does not cast again.
  [[nodiscard]] Tensor& low_params();
  void low_params_refreshed();
  [[nodiscard]] Tensor& grads();
  [[nodiscard]] int64_t num_params() const;
  // One named parameter / its gradient on the host: a view of the flat buffer on the CPU, a
  // copy when the model lives on a GPU.
  [[nodiscard]] Tensor param(const std::string& name) const;
  [[nodiscard]] Tensor grad(const std::string& name) const;

  // Standard initialisation from `seed` (Philox; the same numbers on every machine):
  // matrices and embeddings N(0, std), residual projections N(0, std / sqrt(2 L)), norm
  // gains 1, biases 0.
  void init_weights(uint64_t seed);
  void zero_grad();

  // Allocates the activation buffers for batches of (batch, seq) now (forward_train
  // otherwise does on its first call), so activation_memory() can be reported up front.
  void reserve(int64_t batch, int64_t seq);
  // Mean cross-entropy of targets (B, T) i32 (negative = ignored) after tokens (B, T) i32;
  // keeps what backward needs (with_gradient: d loss / d logits comes out of the loss kernel;
  // false for evaluation, after which backward is an error). Buffers are sized on the first
  // call and on a new (B, T).
  double forward_train(const Tensor& tokens, const Tensor& targets, bool with_gradient = true);
  // Gradient of loss_scale * (the last forward's mean loss), ADDED to grads() (so
  // micro-batches accumulate; zero_grad() starts a step).
  void backward(float loss_scale = 1.0F);
  // Logits (B * T, V) of the last forward, on options().device: f32, or bf16 under mixed precision.
  [[nodiscard]] const Tensor& logits() const;
  [[nodiscard]] ActivationMemory activation_memory() const;
  // Training FLOPs per token (forward + backward): 6 * matmul weights + 12 * L * T * Hq * D.
  [[nodiscard]] double flops_per_token(int64_t seq_len) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The parameter layout of `config` (what TrainModel allocates), for tools and checks.
ParamTable make_param_table(const model::ModelConfig& config, double init_std);

}  // namespace anvil::train
