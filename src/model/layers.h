#pragma once
// Pieces of the inference forward pass shared by the architectures: the per-step index
// tensors derived from a Batch, linear layers, row gathers, attention over the paged KV
// cache and the final norm + head. All activations are f32 (N, ...) tensors on the model's
// device; index tensors and embedding rows are built on the host and uploaded.
#include <span>
#include <vector>

#include "anvil/context.h"
#include "anvil/model/batch.h"
#include "anvil/model/kv_cache.h"
#include "anvil/model/model_config.h"
#include "weights.h"

namespace anvil::model {

// Index tensors of one forward step, shared by every layer.
struct StepInputs {
  int64_t tokens = 0;      // N
  Tensor positions;        // (N) i32
  Tensor slots;            // (N) i32: flat KV cache slot of each token
  Tensor token_sequences;  // (N) i32: which sequence (row of block_tables) a token belongs to
  Tensor block_tables;     // (S, max_blocks) i32, padded with -1
  // Every index above was checked on the host; the most keys any token attends to (the ops
  // then skip their own checks: on a GPU each would wait for the device).
  int64_t max_visible = 0;
  // One sequence whose tokens are exactly positions 0 .. N-1 (a prompt from an empty
  // cache): its attention needs no cache reads, so a GPU runs it as plain causal attention.
  bool fresh_prompt = false;
};

// The same indices on the host, (N), (N), (N) and (S, max_blocks) row-major.
struct StepIndices {
  std::vector<int32_t> positions, slots, token_sequences, block_tables;
  int64_t sequences = 0;
  int64_t max_blocks = 0;
  int64_t max_visible = 0;  // exact
};

// Validates `batch` against the cache and the model (token ids, block ids, positions,
// cache shape) and builds the step's host indices. Throws anvil::Error naming the problem.
StepIndices step_indices(const Batch& batch, const PagedKvCache& cache, const ModelConfig& config);

// The visible-key bound a GPU step plans its attention for: max_visible rounded up to a
// power of two (at least kMinVisibleBucket), so that a decode graph captured for one
// context serves the next ones, and eager steps lay attention out the same way.
constexpr int64_t kMinVisibleBucket = 64;
int64_t visible_bucket(int64_t max_visible);

// step_indices, then the index tensors on the cache's device (max_visible bucketed there).
StepInputs make_step_inputs(Ctx& ctx, const Batch& batch, const PagedKvCache& cache, const ModelConfig& config);

// New uninitialised f32 activation on `device`.
Tensor activation(Ctx& ctx, const Shape& shape, Device device);

// out (M, N) = x (M, K) @ weight (N, K)^T (+ bias (N) when defined); weight as stored.
void linear(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias);
// The same into a new (M, N) activation.
Tensor project(Ctx& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias);
// Rows `ids` of the host `table` (V, C), any float or quantized dtype, as f32 (n, C) on `device`.
Tensor gather_rows(Ctx& ctx, const Tensor& table, std::span<const int32_t> ids, Device device);
// The same into host memory `out` (n * C floats).
void gather_rows_host(const Tensor& table, std::span<const int32_t> ids, float* out);

// Writes k, v (N, Hkv, D) of `layer` into the cache at the step's slots (unless
// `kv_written`: the caller did, with rope_kv_cache_write), then returns the attention output
// (N, Hq, D) of q (N, Hq, D) over each token's cached context: f32, or `half_out` (f16/bf16)
// when the step's attention is computed in that dtype anyway (a GPU prompt's FlashAttention
// in the cache's dtype), sparing a cast pass to f32 and back before a projection whose
// weights have that dtype. `codes_out` (Q8Act, or f32 for none): where the paged kernel
// runs, the output is made as the o projection's quantized_matmul activations instead.
Tensor cached_attention(Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& v, PagedKvCache& cache, int64_t layer,
                        const StepInputs& step, const ModelConfig& config, DType half_out = DType::F32,
                        bool kv_written = false, DType codes_out = DType::F32);

// Logits (R, V) on the host of the batch's logit rows of the final hidden state x (N, C):
// final norm (RMSNorm or LayerNorm per config), then the head.
Tensor output_logits(Ctx& ctx, const Tensor& x, const Batch& batch, const ModelWeights& weights,
                     const ModelConfig& config);
// Final norm and head over every row of x (R, C): logits (R, V) on x's device.
Tensor head_logits(Ctx& ctx, const Tensor& x, const ModelWeights& weights, const ModelConfig& config);

}  // namespace anvil::model
