#pragma once
// Philox-4x32-10 counter-based RNG: the same (seed, counter) gives the same numbers on
// every backend and thread, so sampling and dropout are reproducible anywhere.
#include <array>
#include <cstdint>

namespace anvil {

class Philox {
 public:
  Philox(uint64_t seed, uint64_t stream)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}, stream_(stream) {}

  // Four 32-bit random words for counter value `index` in this stream.
  [[nodiscard]] std::array<uint32_t, 4> block(uint64_t index) const {
    std::array<uint32_t, 4> counter{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                                    static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)};
    std::array<uint32_t, 2> key = key_;
    for (int round = 0; round < 10; ++round) {
      const uint64_t product0 = static_cast<uint64_t>(0xD2511F53U) * counter[0];
      const uint64_t product1 = static_cast<uint64_t>(0xCD9E8D57U) * counter[2];
      counter = {static_cast<uint32_t>(product1 >> 32) ^ counter[1] ^ key[0], static_cast<uint32_t>(product1),
                 static_cast<uint32_t>(product0 >> 32) ^ counter[3] ^ key[1], static_cast<uint32_t>(product0)};
      key[0] += 0x9E3779B9U;
      key[1] += 0xBB67AE85U;
    }
    return counter;
  }

  // Uniform float in [0, 1) from 24 random bits; `index` picks the number in the stream.
  [[nodiscard]] float uniform(uint64_t index) const {
    return static_cast<float>(block(index / 4)[index % 4] >> 8) * 0x1p-24F;
  }

 private:
  std::array<uint32_t, 2> key_;
  uint64_t stream_;
};

}  // namespace anvil
