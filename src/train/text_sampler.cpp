// Sampling through the inference path: load_causal_lm, a paged KV cache, one sequence.
#include "anvil/train/text_sampler.h"

#include <algorithm>
#include <numeric>

#include "anvil/core/error.h"
#include "anvil/model/causal_lm.h"
#include "anvil/ops/sampling.h"

namespace anvil::train {

namespace {

constexpr int64_t kBlockSize = 16;

// A batch of one sequence: `tokens` at positions start.., logits of the last one.
model::Batch one_sequence(const std::vector<int32_t>& tokens, int64_t start, const std::vector<int32_t>& blocks) {
  model::Batch batch;
  batch.tokens = tokens;
  batch.positions.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    batch.positions.push_back(static_cast<int32_t>(start + static_cast<int64_t>(i)));
  model::SequenceSlice slice;
  slice.token_count = static_cast<int64_t>(tokens.size());
  slice.context_length = start + slice.token_count;
  slice.block_table = blocks;
  batch.sequences.push_back(slice);
  batch.logit_rows.push_back(static_cast<int32_t>(tokens.size() - 1));
  return batch;
}

}  // namespace

std::vector<int32_t> sample_continuation(Ctx& ctx, const std::string& model_dir, const std::vector<int32_t>& prompt,
                                         int64_t count, float temperature, uint64_t seed) {
  ANVIL_CHECK(!prompt.empty(), "sample: the prompt is empty");
  const std::unique_ptr<model::CausalLM> lm = model::load_causal_lm(ctx, model_dir);
  const model::ModelConfig& config = lm->config();
  int64_t total = static_cast<int64_t>(prompt.size()) + count;
  if (config.learned_positions) total = std::min(total, config.max_position);
  ANVIL_CHECK(static_cast<int64_t>(prompt.size()) < total, "sample: the prompt fills the model's context");
  model::KvCacheShape shape;
  shape.num_layers = config.num_layers;
  shape.num_blocks = (total + kBlockSize - 1) / kBlockSize;
  shape.block_size = kBlockSize;
  shape.num_kv_heads = config.num_kv_heads;
  shape.head_dim = config.head_dim;
  model::PagedKvCache cache(ctx, shape, Device::cpu());
  std::vector<int32_t> blocks(static_cast<size_t>(shape.num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);

  std::vector<int32_t> out;
  std::vector<int32_t> step_tokens = prompt;  // prefill, then one token per step
  int64_t position = 0;
  Tensor next = Tensor::empty({1}, DType::I32);
  while (static_cast<int64_t>(out.size()) < count && position + static_cast<int64_t>(step_tokens.size()) <= total) {
    Tensor logits = lm->forward(ctx, one_sequence(step_tokens, position, blocks), cache);
    if (temperature > 0.0F) {
      sample_multinomial(ctx, next, logits, temperature, seed, static_cast<uint64_t>(out.size()));
    } else {
      argmax(ctx, next, logits);
    }
    position += static_cast<int64_t>(step_tokens.size());
    out.push_back(next.data<const int32_t>()[0]);
    step_tokens = {out.back()};
  }
  return out;
}

}  // namespace anvil::train
