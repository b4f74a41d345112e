// BlockAllocator: exact block ids handed out, reuse order, out-of-blocks errors that change
// nothing, and no leaks (free + used == total after every step).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "anvil/core/error.h"
#include "anvil/infer/block_allocator.h"
#include "support/op_harness.h"

namespace anvil::infer {
namespace {

using Table = std::vector<int32_t>;

void expect_no_leak(const BlockAllocator& allocator) {
  EXPECT_EQ(allocator.num_free_blocks() + allocator.num_used_blocks(), allocator.num_blocks());
}

TEST(BlockAllocator, HandsOutLowestIdsFirstAndGrowsByBlocks) {
  BlockAllocator allocator(8, 4);
  const SequenceId a = allocator.add_sequence();
  const SequenceId b = allocator.add_sequence();
  EXPECT_NE(a, b);
  allocator.reserve(a, 1);
  EXPECT_EQ(allocator.block_table(a), (Table{0}));
  allocator.reserve(a, 4);  // still one block
  EXPECT_EQ(allocator.block_table(a), (Table{0}));
  allocator.reserve(b, 9);
  EXPECT_EQ(allocator.block_table(b), (Table{1, 2, 3}));
  allocator.reserve(a, 5);
  EXPECT_EQ(allocator.block_table(a), (Table{0, 4}));
  allocator.reserve(a, 2);  // never shrinks
  EXPECT_EQ(allocator.block_table(a), (Table{0, 4}));
  EXPECT_EQ(allocator.num_free_blocks(), 3);
  EXPECT_EQ(allocator.num_used_blocks(), 5);
  expect_no_leak(allocator);
}

TEST(BlockAllocator, ReusesFreedBlocksInTheirTableOrder) {
  BlockAllocator allocator(6, 2);
  const SequenceId a = allocator.add_sequence();
  const SequenceId b = allocator.add_sequence();
  allocator.reserve(a, 6);  // 0 1 2
  allocator.reserve(b, 2);  // 3
  allocator.remove_sequence(a);
  expect_no_leak(allocator);
  EXPECT_EQ(allocator.num_free_blocks(), 5);
  const SequenceId c = allocator.add_sequence();
  allocator.reserve(c, 8);  // a's blocks in a's order, then the untouched 4
  EXPECT_EQ(allocator.block_table(c), (Table{0, 1, 2, 4}));
  allocator.truncate(c, 3);  // keeps 2 blocks, frees 2 and 4 (4 is handed out again first after 2)
  EXPECT_EQ(allocator.block_table(c), (Table{0, 1}));
  expect_no_leak(allocator);
  allocator.reserve(b, 6);
  EXPECT_EQ(allocator.block_table(b), (Table{3, 2, 4}));
  allocator.truncate(b, 0);
  EXPECT_TRUE(allocator.block_table(b).empty());
  EXPECT_EQ(allocator.num_free_blocks(), 4);
  expect_no_leak(allocator);
}

TEST(BlockAllocator, OutOfBlocksIsAClearErrorThatChangesNothing) {
  BlockAllocator allocator(3, 16);
  const SequenceId a = allocator.add_sequence();
  const SequenceId b = allocator.add_sequence();
  allocator.reserve(a, 20);
  EXPECT_TRUE(allocator.can_hold(b, 16));
  EXPECT_FALSE(allocator.can_hold(b, 17));
  try {
    allocator.reserve(b, 40);
    FAIL() << "expected an out-of-blocks error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("out of KV cache blocks"), std::string::npos) << message;
    EXPECT_NE(message.find("only 1 of 3 are free"), std::string::npos) << message;
  }
  EXPECT_TRUE(allocator.block_table(b).empty());
  EXPECT_EQ(allocator.num_free_blocks(), 1);
  expect_no_leak(allocator);
}

TEST(BlockAllocator, BadArgumentsThrow) {
  EXPECT_THROW(BlockAllocator(0, 16), Error);
  EXPECT_THROW(BlockAllocator(4, 0), Error);
  BlockAllocator allocator(4, 16);
  EXPECT_THROW(allocator.reserve(7, 1), Error);
  EXPECT_THROW((void)allocator.block_table(7), Error);
  EXPECT_THROW(allocator.remove_sequence(7), Error);
  const SequenceId a = allocator.add_sequence();
  EXPECT_THROW(allocator.reserve(a, -1), Error);
  EXPECT_THROW(allocator.truncate(a, -1), Error);
  allocator.remove_sequence(a);
  EXPECT_THROW(allocator.reserve(a, 1), Error);  // removed ids are gone
}

// Random operations against a simple model of the pool: every block is owned by at most
// one sequence, tables have exactly the blocks their token counts need.
TEST(BlockAllocator, RandomOperationsNeverLeakOrShareBlocks) {
  testing::Rng rng(testing::test_seed());
  const int64_t block_size = 1 + static_cast<int64_t>(rng() % 5);
  BlockAllocator allocator(23, block_size);
  std::map<SequenceId, int64_t> reserved;  // tokens each live sequence was grown to
  for (int step = 0; step < 400; ++step) {
    const uint64_t choice = rng() % 10;
    if (reserved.empty() || choice == 0) {
      reserved[allocator.add_sequence()] = 0;
    } else {
      auto it = reserved.begin();
      std::advance(it, static_cast<long>(rng() % reserved.size()));
      const int64_t tokens = static_cast<int64_t>(rng() % 40);
      if (choice == 1) {
        allocator.remove_sequence(it->first);
        reserved.erase(it);
      } else if (choice < 4) {
        allocator.truncate(it->first, tokens);
        it->second = std::min(it->second, (tokens + block_size - 1) / block_size * block_size);
      } else if (allocator.can_hold(it->first, tokens)) {
        allocator.reserve(it->first, tokens);
        it->second = std::max(it->second, tokens);
      } else {
        EXPECT_THROW(allocator.reserve(it->first, tokens), Error);
      }
    }
    std::set<int32_t> owned;
    for (const auto& [sequence, tokens] : reserved) {
      const Table& table = allocator.block_table(sequence);
      EXPECT_EQ(static_cast<int64_t>(table.size()), (tokens + block_size - 1) / block_size) << "step " << step;
      for (const int32_t block : table) {
        EXPECT_TRUE(block >= 0 && block < 23);
        EXPECT_TRUE(owned.insert(block).second) << "block " << block << " owned twice at step " << step;
      }
    }
    EXPECT_EQ(static_cast<int64_t>(owned.size()), allocator.num_used_blocks());
    expect_no_leak(allocator);
  }
}

}  // namespace
}  // namespace anvil::infer
