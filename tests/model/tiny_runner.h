#pragma once
// Drives a CausalLM through steps the way an engine would: owns a paged KV cache, hands
// each sequence blocks from a shuffled free list (so block tables are not contiguous), and
// builds the Batch for each step from (sequence, new tokens) chunks.
#include <utility>
#include <vector>

#include "anvil/model/causal_lm.h"
#include "support/op_harness.h"

namespace anvil::testing {

class CacheRunner {
 public:
  // The cache lives on `device` (the model's) and stores `cache_dtype`.
  CacheRunner(Ctx& ctx, const model::ModelConfig& config, int64_t block_size, int64_t num_blocks, Rng& rng,
              Device device = Device::cpu(), DType cache_dtype = DType::F32);

  // A new empty sequence; returns its id.
  int add_sequence();
  // One forward step: each chunk appends its tokens to its sequence (chunks of distinct
  // sequences, in the batch in the order given). Returns the logits of every new token,
  // rows in batch order, as float64 (rows, V).
  HostArray step(model::CausalLM& model, const std::vector<std::pair<int, std::vector<int32_t>>>& chunks);
  // The batch step() would run, without running it (for error tests).
  model::Batch make_batch(const std::vector<std::pair<int, std::vector<int32_t>>>& chunks);
  [[nodiscard]] model::PagedKvCache& cache() { return cache_; }

 private:
  struct Sequence {
    std::vector<int32_t> blocks;
    int64_t length = 0;
  };

  Ctx& ctx_;
  model::PagedKvCache cache_;
  std::vector<int32_t> free_blocks_;
  std::vector<Sequence> sequences_;
};

// Logits (T, V) of `tokens` run as one prefill of a fresh sequence.
HostArray prefill_logits(Ctx& ctx, model::CausalLM& model, const std::vector<int32_t>& tokens, int64_t block_size,
                         Rng& rng);

}  // namespace anvil::testing
