// Batch::validate and PagedKvCache: what the scheduler can get wrong is named.
#include <gtest/gtest.h>

#include "anvil/model/batch.h"
#include "anvil/model/kv_cache.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

using model::Batch;

// Two sequences: A decodes its 6th token (block size 4: blocks [3, 0]), B prefills 3.
Batch good_batch() {
  Batch batch;
  batch.tokens = {5, 6, 7, 8};
  batch.positions = {5, 0, 1, 2};
  batch.sequences = {{0, 1, 6, {3, 0}}, {1, 3, 3, {1}}};
  batch.logit_rows = {0, 3};
  return batch;
}

template <typename Edit>
void expect_invalid(Edit edit, const std::string& mention) {
  Batch batch = good_batch();
  edit(batch);
  try {
    batch.validate(4);
    ADD_FAILURE() << "batch accepted; expected an error mentioning '" << mention << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(mention), std::string::npos) << error.what();
  }
}

TEST(Batch, ValidateAcceptsAGoodBatch) { EXPECT_NO_THROW(good_batch().validate(4)); }

TEST(Batch, ValidateNamesWhatIsWrong) {
  expect_invalid([](Batch& b) { b.positions.pop_back(); }, "positions");
  expect_invalid([](Batch& b) { b.sequences[1].token_begin = 0; }, "more than one sequence");
  expect_invalid(
      [](Batch& b) {
        b.sequences[1].token_count = 2;
        b.sequences[1].context_length = 2;
      },
      "row 3 belongs to no sequence");
  expect_invalid([](Batch& b) { b.sequences[1].token_count = 4; }, "outside the batch");
  expect_invalid([](Batch& b) { b.sequences[0].token_count = 0; }, "outside the batch");
  expect_invalid([](Batch& b) { b.positions[2] = 2; }, "expected 1");
  expect_invalid([](Batch& b) { b.sequences[0].context_length = 9; }, "too few");
  expect_invalid([](Batch& b) { b.sequences[1].context_length = 2; }, "context_length");
  expect_invalid([](Batch& b) { b.sequences[0].block_table[1] = -1; }, "negative block id");
  expect_invalid([](Batch& b) { b.logit_rows.push_back(4); }, "logit_rows");
  expect_invalid([](Batch& b) { b.logit_rows.push_back(-1); }, "logit_rows");
  EXPECT_THROW(good_batch().validate(0), Error);
}

TEST(PagedKvCache, AllocatesEveryLayer) {
  Ctx& ctx = test_ctx();
  model::KvCacheShape shape{3, 5, 4, 2, 8, DType::BF16};
  model::PagedKvCache cache(ctx, shape, Device::cpu());
  for (int64_t layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(cache.keys(layer).shape(), (Shape{5, 4, 2, 8}));
    EXPECT_EQ(cache.values(layer).dtype(), DType::BF16);
  }
  EXPECT_EQ(cache.bytes(), 3 * 2 * 5 * 4 * 2 * 8 * 2);
  EXPECT_THROW((void)cache.keys(3), std::out_of_range);
  shape.num_blocks = 0;
  EXPECT_THROW(model::PagedKvCache(ctx, shape, Device::cpu()), Error);
  shape.num_blocks = 5;
  shape.dtype = DType::Q8_0;
  EXPECT_THROW(model::PagedKvCache(ctx, shape, Device::cpu()), Error);
}

}  // namespace
}  // namespace anvil::testing
