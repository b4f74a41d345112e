#pragma once
// BlockAllocator: a free list of KV block ids and one block table per sequence, nothing
// more (no sharing, no prefix cache). Blocks are handed out lowest id first on a fresh
// allocator; freed blocks are reused before untouched ones, most recently freed first, and
// a freed table goes back so that its first block is the next one handed out.
#include <cstddef>
#include <map>

#include "anvil/infer/kv_block_manager.h"

namespace anvil::infer {

class BlockAllocator final : public KvBlockManager {
 public:
  // A pool of `num_blocks` blocks (ids 0 .. num_blocks - 1) of `block_size` tokens each.
  BlockAllocator(int64_t num_blocks, int64_t block_size);

  [[nodiscard]] int64_t block_size() const override { return block_size_; }
  [[nodiscard]] int64_t num_blocks() const override { return num_blocks_; }
  [[nodiscard]] int64_t num_free_blocks() const override { return static_cast<int64_t>(free_blocks_.size()); }
  // Blocks held by sequences (num_blocks - num_free_blocks when nothing leaks).
  [[nodiscard]] int64_t num_used_blocks() const;
  [[nodiscard]] int64_t num_sequences() const { return static_cast<int64_t>(tables_.size()); }

  SequenceId add_sequence() override;
  void remove_sequence(SequenceId sequence) override;
  [[nodiscard]] bool can_hold(SequenceId sequence, int64_t num_tokens) const override;
  void reserve(SequenceId sequence, int64_t num_tokens) override;
  void truncate(SequenceId sequence, int64_t num_tokens) override;
  [[nodiscard]] const std::vector<int32_t>& block_table(SequenceId sequence) const override;

 private:
  [[nodiscard]] int64_t blocks_for(int64_t num_tokens) const;
  [[nodiscard]] std::vector<int32_t>& table(SequenceId sequence);
  [[nodiscard]] const std::vector<int32_t>& table(SequenceId sequence) const;
  // Returns the blocks of `table` from index `keep` on to the free list.
  void release_from(std::vector<int32_t>& table, size_t keep);

  int64_t num_blocks_;
  int64_t block_size_;
  std::vector<int32_t> free_blocks_;  // a stack: back() is handed out next
  std::map<SequenceId, std::vector<int32_t>> tables_;
  SequenceId next_sequence_ = 0;
};

}  // namespace anvil::infer
