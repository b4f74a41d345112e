// Philox4x32-10 against the Random123 known-answer vectors, and the uniform mapping.
#include "anvil/core/rng.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <set>

namespace anvil {
namespace {

using Words = std::array<uint32_t, 4>;

// Philox(seed, stream).block(index) runs counter (lo(index), hi(index), lo(stream), hi(stream))
// under key (lo(seed), hi(seed)); these helpers build the arguments from Random123's words.
uint64_t join(uint32_t low, uint32_t high) { return (static_cast<uint64_t>(high) << 32) | low; }

Words philox_words(const Words& counter, const std::array<uint32_t, 2>& key) {
  return Philox(join(key[0], key[1]), join(counter[2], counter[3])).block(join(counter[0], counter[1]));
}

// Vectors from Random123's kat_vectors (philox4x32 10 rounds).
TEST(Philox, MatchesRandom123KnownAnswersZero) {
  EXPECT_EQ(philox_words({0, 0, 0, 0}, {0, 0}), (Words{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
}

TEST(Philox, MatchesRandom123KnownAnswersAllOnes) {
  constexpr uint32_t kOnes = 0xffffffffU;
  EXPECT_EQ(philox_words({kOnes, kOnes, kOnes, kOnes}, {kOnes, kOnes}),
            (Words{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
}

TEST(Philox, MatchesRandom123KnownAnswersPi) {
  EXPECT_EQ(philox_words({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (Words{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, UniformUsesTheTop24BitsOfEachWord) {
  const Philox philox(0x0123456789abcdefULL, 42);
  for (uint64_t index = 0; index < 64; ++index) {
    const Words words = philox.block(index / 4);
    const float expected = static_cast<float>(words[index % 4] >> 8) / 16777216.0F;
    const float u = philox.uniform(index);
    EXPECT_EQ(u, expected) << "index " << index;
    EXPECT_GE(u, 0.0F);
    EXPECT_LT(u, 1.0F);
  }
}

TEST(Philox, SeedsStreamsAndCountersGiveDistinctBlocks) {
  std::set<Words> blocks;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (uint64_t stream = 0; stream < 4; ++stream) {
      for (uint64_t index = 0; index < 4; ++index) blocks.insert(Philox(seed, stream).block(index));
    }
  }
  EXPECT_EQ(blocks.size(), 64U);
  // The high halves of seed, stream and index take part too.
  EXPECT_NE(Philox(1ULL << 32, 0).block(0), Philox(0, 0).block(0));
  EXPECT_NE(Philox(0, 1ULL << 32).block(0), Philox(0, 0).block(0));
  EXPECT_NE(Philox(0, 0).block(1ULL << 32), Philox(0, 0).block(0));
}

}  // namespace
}  // namespace anvil
