// BlockAllocator: free list + per-sequence block tables.
#include "anvil/infer/block_allocator.h"

#include "anvil/core/error.h"

namespace anvil::infer {

BlockAllocator::BlockAllocator(int64_t num_blocks, int64_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size) {
  ANVIL_CHECK(num_blocks > 0 && num_blocks <= INT32_MAX, "kv blocks: num_blocks must be in [1, 2^31), got ",
              num_blocks);
  ANVIL_CHECK(block_size > 0, "kv blocks: block_size must be > 0, got ", block_size);
  // Highest id at the bottom of the stack so that block 0 is handed out first.
  free_blocks_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t id = num_blocks - 1; id >= 0; --id) free_blocks_.push_back(static_cast<int32_t>(id));
}

int64_t BlockAllocator::num_used_blocks() const {
  int64_t used = 0;
  for (const auto& [sequence, blocks] : tables_) used += static_cast<int64_t>(blocks.size());
  return used;
}

SequenceId BlockAllocator::add_sequence() {
  const SequenceId sequence = next_sequence_++;
  tables_.emplace(sequence, std::vector<int32_t>{});
  return sequence;
}

void BlockAllocator::remove_sequence(SequenceId sequence) {
  release_from(table(sequence), 0);
  tables_.erase(sequence);
}

bool BlockAllocator::can_hold(SequenceId sequence, int64_t num_tokens) const {
  ANVIL_CHECK(num_tokens >= 0, "kv blocks: num_tokens must be >= 0, got ", num_tokens);
  const auto held = static_cast<int64_t>(table(sequence).size());
  return blocks_for(num_tokens) - held <= num_free_blocks();
}

void BlockAllocator::reserve(SequenceId sequence, int64_t num_tokens) {
  std::vector<int32_t>& blocks = table(sequence);
  ANVIL_CHECK(num_tokens >= 0, "kv blocks: num_tokens must be >= 0, got ", num_tokens);
  const int64_t needed = blocks_for(num_tokens) - static_cast<int64_t>(blocks.size());
  if (needed <= 0) return;
  if (needed > num_free_blocks()) {
    throw make_error("kv blocks: out of KV cache blocks: sequence ", sequence, " needs ", needed, " more block(s) of ",
                     block_size_, " tokens to hold ", num_tokens, " tokens, but only ", num_free_blocks(), " of ",
                     num_blocks_, " are free (use a larger context size)");
  }
  for (int64_t i = 0; i < needed; ++i) {
    blocks.push_back(free_blocks_.back());
    free_blocks_.pop_back();
  }
}

void BlockAllocator::truncate(SequenceId sequence, int64_t num_tokens) {
  ANVIL_CHECK(num_tokens >= 0, "kv blocks: num_tokens must be >= 0, got ", num_tokens);
  std::vector<int32_t>& blocks = table(sequence);
  const auto keep = static_cast<size_t>(blocks_for(num_tokens));
  if (keep < blocks.size()) release_from(blocks, keep);
}

const std::vector<int32_t>& BlockAllocator::block_table(SequenceId sequence) const { return table(sequence); }

int64_t BlockAllocator::blocks_for(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

std::vector<int32_t>& BlockAllocator::table(SequenceId sequence) {
  const auto found = tables_.find(sequence);
  ANVIL_CHECK(found != tables_.end(), "kv blocks: unknown sequence ", sequence);
  return found->second;
}

const std::vector<int32_t>& BlockAllocator::table(SequenceId sequence) const {
  const auto found = tables_.find(sequence);
  ANVIL_CHECK(found != tables_.end(), "kv blocks: unknown sequence ", sequence);
  return found->second;
}

void BlockAllocator::release_from(std::vector<int32_t>& blocks, size_t keep) {
  // Last block first, so the first released block is on top of the stack.
  for (size_t i = blocks.size(); i > keep; --i) free_blocks_.push_back(blocks[i - 1]);
  blocks.resize(keep);
}

}  // namespace anvil::infer
