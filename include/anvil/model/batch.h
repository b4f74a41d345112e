#pragma once
// The inference batch (ARCHITECTURE.md, "Model (inference)"): a flat list of tokens from
// many sequences with their positions, each sequence's slice of that list, its block
// table into the paged KV cache, and which rows need logits. Prefill, chunked prefill and
// decode are the same call with different token ranges; single-prompt generation is a
// batch of one.
#include <cstdint>
#include <vector>

namespace anvil::model {

struct SequenceSlice {
  int64_t token_begin = 0;           // first row of this sequence in Batch::tokens
  int64_t token_count = 0;           // rows it has in this batch
  int64_t context_length = 0;        // tokens in the KV cache after this step (cached + these)
  std::vector<int32_t> block_table;  // KV block ids; position p lives in block p / block_size
};

struct Batch {
  std::vector<int32_t> tokens;     // (N) token ids
  std::vector<int32_t> positions;  // (N) position of each token in its sequence
  std::vector<SequenceSlice> sequences;
  std::vector<int32_t> logit_rows;  // rows of `tokens` whose logits are returned, in order

  // Throws anvil::Error if slices overlap, positions disagree with context lengths, or a
  // block table is too short for its context.
  void validate(int64_t block_size) const;
  [[nodiscard]] int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
};

}  // namespace anvil::model
