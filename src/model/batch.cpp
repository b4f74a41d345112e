// Batch::validate: the scheduler's batch is checked once before any kernel reads it.
#include "anvil/model/batch.h"

#include <vector>

#include "anvil/core/error.h"

namespace anvil::model {

namespace {

// The slice's rows are in range, not yet claimed by another slice, and hold the positions
// context_length - token_count .. context_length - 1 in order.
void validate_slice(const Batch& batch, size_t index, int64_t block_size, std::vector<bool>& claimed) {
  const SequenceSlice& slice = batch.sequences[index];
  const int64_t end = slice.token_begin + slice.token_count;
  ANVIL_CHECK(slice.token_begin >= 0 && slice.token_count > 0 && end <= batch.num_tokens(), "batch: sequence ", index,
              " has rows [", slice.token_begin, ", ", end, ") outside the batch of ", batch.num_tokens(), " tokens");
  ANVIL_CHECK(slice.context_length >= slice.token_count, "batch: sequence ", index, " has context_length ",
              slice.context_length, " < its ", slice.token_count, " new tokens");
  const auto table_tokens = static_cast<int64_t>(slice.block_table.size()) * block_size;
  ANVIL_CHECK(table_tokens >= slice.context_length, "batch: sequence ", index, " has ", slice.block_table.size(),
              " blocks of ", block_size, " slots, too few for context_length ", slice.context_length);
  for (size_t b = 0; b < slice.block_table.size(); ++b) {
    ANVIL_CHECK(slice.block_table[b] >= 0, "batch: sequence ", index, " has negative block id ", slice.block_table[b],
                " at block index ", b);
  }
  const int64_t first_position = slice.context_length - slice.token_count;
  for (int64_t row = slice.token_begin; row < end; ++row) {
    ANVIL_CHECK(!claimed[static_cast<size_t>(row)], "batch: row ", row, " belongs to more than one sequence");
    claimed[static_cast<size_t>(row)] = true;
    const int64_t expected = first_position + (row - slice.token_begin);
    ANVIL_CHECK(batch.positions[static_cast<size_t>(row)] == expected, "batch: row ", row, " of sequence ", index,
                " has position ", batch.positions[static_cast<size_t>(row)], ", expected ", expected,
                " (context_length ", slice.context_length, ")");
  }
}

}  // namespace

void Batch::validate(int64_t block_size) const {
  ANVIL_CHECK(block_size > 0, "batch: block_size must be > 0, got ", block_size);
  ANVIL_CHECK(positions.size() == tokens.size(), "batch: ", positions.size(), " positions for ", tokens.size(),
              " tokens");
  std::vector<bool> claimed(tokens.size(), false);
  for (size_t index = 0; index < sequences.size(); ++index) validate_slice(*this, index, block_size, claimed);
  for (size_t row = 0; row < claimed.size(); ++row) {
    ANVIL_CHECK(claimed[row], "batch: row ", row, " belongs to no sequence");
  }
  for (size_t i = 0; i < logit_rows.size(); ++i) {
    ANVIL_CHECK(logit_rows[i] >= 0 && logit_rows[i] < num_tokens(), "batch: logit_rows[", i, "] = ", logit_rows[i],
                " is outside the batch of ", num_tokens(), " tokens");
  }
}

}  // namespace anvil::model
