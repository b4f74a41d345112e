// Shared pieces of the inference forward pass (see layers.h).
#include "layers.h"

#include <algorithm>
#include <cstring>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "anvil/ops/attention.h"
#include "anvil/ops/copy.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/embedding.h"
#include "anvil/ops/layer_norm.h"
#include "anvil/ops/paged_attention.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rms_norm.h"

namespace anvil::model {

namespace {

void check_cache_fits(const PagedKvCache& cache, const ModelConfig& config) {
  const KvCacheShape& shape = cache.shape();
  ANVIL_CHECK(shape.num_layers == config.num_layers && shape.num_kv_heads == config.num_kv_heads &&
                  shape.head_dim == config.head_dim,
              "forward: kv cache has (layers ", shape.num_layers, ", kv heads ", shape.num_kv_heads, ", head_dim ",
              shape.head_dim, ") but the model needs (", config.num_layers, ", ", config.num_kv_heads, ", ",
              config.head_dim, ")");
}

void check_tokens(const Batch& batch, const ModelConfig& config) {
  for (size_t i = 0; i < batch.tokens.size(); ++i) {
    ANVIL_CHECK(batch.tokens[i] >= 0 && batch.tokens[i] < config.vocab_size, "forward: token id ", batch.tokens[i],
                " at row ", i, " is outside the vocabulary of ", config.vocab_size);
    ANVIL_CHECK(!config.learned_positions || batch.positions[i] < config.max_position, "forward: position ",
                batch.positions[i], " at row ", i, " is past the ", config.max_position,
                " learned positions of the model");
  }
}

}  // namespace

StepIndices step_indices(const Batch& batch, const PagedKvCache& cache, const ModelConfig& config) {
  const int64_t block_size = cache.shape().block_size;
  batch.validate(block_size);
  check_cache_fits(cache, config);
  check_tokens(batch, config);
  size_t max_blocks = 1;
  for (const SequenceSlice& slice : batch.sequences) max_blocks = std::max(max_blocks, slice.block_table.size());
  StepIndices indices;
  indices.sequences = static_cast<int64_t>(batch.sequences.size());
  indices.max_blocks = static_cast<int64_t>(max_blocks);
  indices.positions = batch.positions;
  indices.block_tables.assign(batch.sequences.size() * max_blocks, -1);
  indices.slots.resize(batch.tokens.size());
  indices.token_sequences.resize(batch.tokens.size());
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceSlice& slice = batch.sequences[s];
    for (size_t b = 0; b < slice.block_table.size(); ++b) {
      ANVIL_CHECK(slice.block_table[b] < cache.shape().num_blocks, "forward: sequence ", s, " names block ",
                  slice.block_table[b], " but the kv cache has ", cache.shape().num_blocks, " blocks");
      indices.block_tables[s * max_blocks + b] = slice.block_table[b];
    }
    for (int64_t row = slice.token_begin; row < slice.token_begin + slice.token_count; ++row) {
      const int64_t position = batch.positions[static_cast<size_t>(row)];
      const int64_t block = slice.block_table[static_cast<size_t>(position / block_size)];
      indices.slots[static_cast<size_t>(row)] = static_cast<int32_t>(block * block_size + position % block_size);
      indices.token_sequences[static_cast<size_t>(row)] = static_cast<int32_t>(s);
    }
  }
  std::vector<int32_t> sorted_slots = indices.slots;
  std::sort(sorted_slots.begin(), sorted_slots.end());
  const auto repeated = std::adjacent_find(sorted_slots.begin(), sorted_slots.end());
  ANVIL_CHECK(repeated == sorted_slots.end(), "forward: kv cache slot ", *repeated,
              " is written by two tokens of one batch (sequences share a block they both append to)");
  indices.max_visible = 1;
  for (const int32_t position : batch.positions) {
    const int64_t first = config.sliding_window > 0 ? std::max<int64_t>(0, position - config.sliding_window + 1) : 0;
    indices.max_visible = std::max<int64_t>(indices.max_visible, position + 1 - first);
  }
  return indices;
}

int64_t visible_bucket(int64_t max_visible) {
  int64_t bucket = kMinVisibleBucket;
  while (bucket < max_visible) bucket *= 2;
  return bucket;
}

StepInputs make_step_inputs(Ctx& ctx, const Batch& batch, const PagedKvCache& cache, const ModelConfig& config) {
  const StepIndices indices = step_indices(batch, cache, config);
  const Device device = cache.device();
  const auto on_device = [&](const Tensor& host) { return device.is_cpu() ? host : ctx.to_device(host, device); };
  StepInputs step;
  step.tokens = batch.num_tokens();
  step.positions = on_device(Tensor::from_i32({step.tokens}, indices.positions));
  step.slots = on_device(Tensor::from_i32({step.tokens}, indices.slots));
  step.token_sequences = on_device(Tensor::from_i32({step.tokens}, indices.token_sequences));
  step.block_tables = on_device(Tensor::from_i32({indices.sequences, indices.max_blocks}, indices.block_tables));
  step.max_visible = device.is_cpu() ? indices.max_visible : visible_bucket(indices.max_visible);
  step.fresh_prompt = indices.sequences == 1 && step.tokens > 1;
  for (int64_t i = 0; step.fresh_prompt && i < step.tokens; ++i) {
    step.fresh_prompt = indices.positions[static_cast<size_t>(i)] == i;
  }
  return step;
}

Tensor activation(Ctx& ctx, const Shape& shape, Device device) { return ctx.empty(shape, DType::F32, device); }

void linear(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  quantized_matmul(ctx, out, x, weight);
  if (bias.defined()) add(ctx, out, out, bias);
}

Tensor project(Ctx& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor out = activation(ctx, {x.size(0), weight.size(0)}, x.device());
  linear(ctx, out, x, weight, bias);
  return out;
}

void gather_rows_host(const Tensor& table, std::span<const int32_t> ids, float* out) {
  const int64_t vocab = table.size(0);
  const int64_t channels = table.size(1);
  const int64_t row_bytes = dtype_bytes_for(table.dtype(), channels);
  const auto* base = static_cast<const char*>(table.raw_data());
  for (size_t i = 0; i < ids.size(); ++i) {
    ANVIL_CHECK(ids[i] >= 0 && ids[i] < vocab, "gather_rows: id ", ids[i], " outside the table of ", vocab, " rows");
    convert_host(table.dtype(), base + ids[i] * row_bytes, DType::F32, out + static_cast<int64_t>(i) * channels,
                 channels);
  }
}

namespace {

// Rows `ids` of the host f16/bf16 `table` as f32 on the GPU `device`: copied over as stored
// (half the bytes of f32) and widened there, exactly.
Tensor gather_half_rows_to_device(Ctx& ctx, const Tensor& table, std::span<const int32_t> ids, Device device) {
  const int64_t vocab = table.size(0);
  const int64_t channels = table.size(1);
  const auto rows = static_cast<int64_t>(ids.size());
  const int64_t row_bytes = dtype_bytes_for(table.dtype(), channels);
  Tensor half = ctx.empty({rows, channels}, table.dtype(), Device::cpu());
  const auto* base = static_cast<const char*>(table.raw_data());
  auto* dst = static_cast<char*>(half.raw_data());
  for (size_t i = 0; i < ids.size(); ++i) {
    ANVIL_CHECK(ids[i] >= 0 && ids[i] < vocab, "gather_rows: id ", ids[i], " outside the table of ", vocab, " rows");
    std::memcpy(dst + static_cast<int64_t>(i) * row_bytes, base + ids[i] * row_bytes, static_cast<size_t>(row_bytes));
  }
  const Tensor on_device = ctx.to_device(half, device);
  Tensor out = activation(ctx, {rows, channels}, device);
  copy(ctx, out, on_device);
  return out;
}

}  // namespace

Tensor gather_rows(Ctx& ctx, const Tensor& table, std::span<const int32_t> ids, Device device) {
  if (!device.is_cpu() && !ids.empty() && (table.dtype() == DType::BF16 || table.dtype() == DType::F16)) {
    return gather_half_rows_to_device(ctx, table, ids, device);
  }
  Tensor out = activation(ctx, {static_cast<int64_t>(ids.size()), table.size(1)}, Device::cpu());
  gather_rows_host(table, ids, out.data<float>());
  return device.is_cpu() ? out : ctx.to_device(out, device);
}

namespace {

// Rows `ids` of the activation x (N, C), on x's device.
Tensor select_rows(Ctx& ctx, const Tensor& x, std::span<const int32_t> ids) {
  if (x.device().is_cpu()) return gather_rows(ctx, x, ids, Device::cpu());
  Tensor out = activation(ctx, {static_cast<int64_t>(ids.size()), x.size(1)}, x.device());
  if (!ids.empty()) {
    const Tensor ids_tensor = ctx.to_device(Tensor::from_i32({static_cast<int64_t>(ids.size())}, ids), x.device());
    embedding(ctx, out, x, ids_tensor);
  }
  return out;
}

}  // namespace

namespace {

// Whether a GPU step runs its attention as one causal FlashAttention call over the step's own
// q, k, v in the cache's f16/bf16 (what the paged kernel would read back): a fresh prompt
// that no sliding window cuts, at a head size the tensor-core kernels take.
bool prompt_takes_flash_attention(const Tensor& q, const PagedKvCache& cache, const StepInputs& step,
                                  const ModelConfig& config) {
  const DType dtype = cache.shape().dtype;
  return !q.device().is_cpu() && step.fresh_prompt && (dtype == DType::BF16 || dtype == DType::F16) &&
         (config.head_dim == 64 || config.head_dim == 128) &&
         (config.sliding_window <= 0 || config.sliding_window >= step.tokens);
}

// Causal attention of q (N, Hq, D) over k, v (N, Hkv, D), computed in `dtype`; out in
// `dtype` when that is `half_out`, else f32.
Tensor prompt_attention(Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& v, DType dtype, DType half_out) {
  const Device device = q.device();
  const auto as_sequence = [&](const Tensor& x) {
    Tensor rounded = ctx.empty({1, x.size(0), x.size(1), x.size(2)}, dtype, device);
    copy(ctx, rounded, x.view({1, x.size(0), x.size(1), x.size(2)}));
    return rounded;
  };
  const Tensor q16 = as_sequence(q);
  const Tensor k16 = as_sequence(k);
  const Tensor v16 = as_sequence(v);
  Tensor out16 = ctx.empty(q16.shape(), dtype, device);
  Tensor no_lse;
  attention(ctx, out16, no_lse, q16, k16, v16, AttentionParams{});
  if (half_out == dtype) return out16.view(q.shape());
  Tensor out = activation(ctx, q.shape(), device);
  copy(ctx, out, out16.view(q.shape()));
  return out;
}

}  // namespace

Tensor cached_attention(Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& v, PagedKvCache& cache, int64_t layer,
                        const StepInputs& step, const ModelConfig& config, DType half_out, bool kv_written,
                        DType codes_out) {
  if (!kv_written)
    kv_cache_write(ctx, cache.keys(layer), cache.values(layer), k, v, step.slots, /*slots_checked=*/true);
  if (prompt_takes_flash_attention(q, cache, step, config)) {
    return prompt_attention(ctx, q, k, v, cache.shape().dtype, half_out);
  }
  Tensor out =
      codes_out != DType::F32 ? ctx.empty(q.shape(), codes_out, q.device()) : activation(ctx, q.shape(), q.device());
  PagedAttentionParams params;
  params.sliding_window = config.sliding_window;
  params.checked_max_visible = step.max_visible;
  paged_attention(ctx, out, q, cache.keys(layer), cache.values(layer), step.token_sequences, step.positions,
                  step.block_tables, params);
  return out;
}

Tensor head_logits(Ctx& ctx, const Tensor& x, const ModelWeights& weights, const ModelConfig& config) {
  const int64_t rows = x.size(0);
  Tensor normed = activation(ctx, x.shape(), x.device());
  Tensor none;
  if (config.norm == NormKind::LayerNorm) {
    layer_norm(ctx, normed, none, none, x, weights.final_norm, weights.final_norm_bias, config.norm_eps);
  } else {
    rms_norm(ctx, normed, none, x, weights.final_norm, config.norm_eps);
  }
  Tensor logits = activation(ctx, {rows, config.vocab_size}, x.device());
  if (rows > 0) linear(ctx, logits, normed, weights.lm_head, Tensor());
  return logits;
}

Tensor output_logits(Ctx& ctx, const Tensor& x, const Batch& batch, const ModelWeights& weights,
                     const ModelConfig& config) {
  const Tensor selected = select_rows(ctx, x, batch.logit_rows);  // (R, C)
  const Tensor logits = head_logits(ctx, selected, weights, config);
  return x.device().is_cpu() ? logits : ctx.to_device(logits, Device::cpu());
}

}  // namespace anvil::model
