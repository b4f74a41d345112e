// CacheRunner: engine-like stepping of a CausalLM for the model tests.
#include "model/tiny_runner.h"

#include <algorithm>
#include <numeric>

namespace anvil::testing {

namespace {

model::KvCacheShape cache_shape(const model::ModelConfig& config, int64_t block_size, int64_t num_blocks, DType dtype) {
  model::KvCacheShape shape;
  shape.dtype = dtype;
  shape.num_layers = config.num_layers;
  shape.num_blocks = num_blocks;
  shape.block_size = block_size;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  return shape;
}

}  // namespace

CacheRunner::CacheRunner(Ctx& ctx, const model::ModelConfig& config, int64_t block_size, int64_t num_blocks, Rng& rng,
                         Device device, DType cache_dtype)
    : ctx_(ctx), cache_(ctx, cache_shape(config, block_size, num_blocks, cache_dtype), device) {
  free_blocks_.resize(static_cast<size_t>(num_blocks));
  std::iota(free_blocks_.begin(), free_blocks_.end(), 0);
  std::shuffle(free_blocks_.begin(), free_blocks_.end(), rng);
}

int CacheRunner::add_sequence() {
  sequences_.emplace_back();
  return static_cast<int>(sequences_.size()) - 1;
}

model::Batch CacheRunner::make_batch(const std::vector<std::pair<int, std::vector<int32_t>>>& chunks) {
  const int64_t block_size = cache_.shape().block_size;
  model::Batch batch;
  for (const auto& [id, tokens] : chunks) {
    Sequence& sequence = sequences_.at(static_cast<size_t>(id));
    model::SequenceSlice slice;
    slice.token_begin = batch.num_tokens();
    slice.token_count = static_cast<int64_t>(tokens.size());
    slice.context_length = sequence.length + slice.token_count;
    while (static_cast<int64_t>(sequence.blocks.size()) * block_size < slice.context_length) {
      sequence.blocks.push_back(free_blocks_.back());
      free_blocks_.pop_back();
    }
    slice.block_table = sequence.blocks;
    for (size_t i = 0; i < tokens.size(); ++i) {
      batch.logit_rows.push_back(static_cast<int32_t>(batch.num_tokens()));
      batch.positions.push_back(static_cast<int32_t>(sequence.length + static_cast<int64_t>(i)));
      batch.tokens.push_back(tokens[i]);
    }
    batch.sequences.push_back(slice);
  }
  return batch;
}

HostArray CacheRunner::step(model::CausalLM& model, const std::vector<std::pair<int, std::vector<int32_t>>>& chunks) {
  const model::Batch batch = make_batch(chunks);
  const Tensor logits = model.forward(ctx_, batch, cache_);
  for (const auto& [id, tokens] : chunks) sequences_.at(static_cast<size_t>(id)).length += tokens.size();
  return to_host(ctx_, logits);
}

HostArray prefill_logits(Ctx& ctx, model::CausalLM& model, const std::vector<int32_t>& tokens, int64_t block_size,
                         Rng& rng) {
  const auto blocks = static_cast<int64_t>(tokens.size()) / block_size + 2;
  CacheRunner runner(ctx, model.config(), block_size, blocks, rng, model.device());
  const int id = runner.add_sequence();
  return runner.step(model, {{id, tokens}});
}

}  // namespace anvil::testing
