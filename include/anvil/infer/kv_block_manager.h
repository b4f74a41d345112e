#pragma once
// Who owns which KV block: the interface the engine uses to give sequences room in the
// paged KV cache (ARCHITECTURE.md: "the KV manager deals in block ids and reference
// counts"; it never touches device memory). BlockAllocator is the simple implementation;
// the serving scheduler's prefix-caching pool replaces it behind this interface.
#include <cstdint>
#include <vector>

namespace anvil::infer {

using SequenceId = int64_t;

class KvBlockManager {
 public:
  virtual ~KvBlockManager() = default;

  [[nodiscard]] virtual int64_t block_size() const = 0;  // token slots per block
  [[nodiscard]] virtual int64_t num_blocks() const = 0;  // blocks in the cache
  [[nodiscard]] virtual int64_t num_free_blocks() const = 0;

  // Registers a new sequence with an empty block table; returns its id.
  virtual SequenceId add_sequence() = 0;
  // Frees every block of `sequence` and forgets it.
  virtual void remove_sequence(SequenceId sequence) = 0;
  // Whether `sequence` could hold `num_tokens` tokens with the blocks free now.
  [[nodiscard]] virtual bool can_hold(SequenceId sequence, int64_t num_tokens) const = 0;
  // Grows the block table of `sequence` to hold at least `num_tokens` tokens. Throws
  // anvil::Error (and changes nothing) when too few blocks are free.
  virtual void reserve(SequenceId sequence, int64_t num_tokens) = 0;
  // Shrinks the block table of `sequence` to the blocks needed for `num_tokens` tokens,
  // freeing the rest (dropping a suffix of the sequence, e.g. to reuse only a prefix).
  virtual void truncate(SequenceId sequence, int64_t num_tokens) = 0;
  // The block ids of `sequence`: token position p lives in block_table[p / block_size].
  [[nodiscard]] virtual const std::vector<int32_t>& block_table(SequenceId sequence) const = 0;
};

}  // namespace anvil::infer
