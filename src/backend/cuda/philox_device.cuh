#pragma once
// Philox-4x32-10 on the device: the arithmetic of anvil::Philox (anvil/core/rng.h), which
// is host-only (std::array), repeated for kernels. Same (seed, stream, index), same bits.
#include <cstdint>

namespace anvil::cuda {

// Uniform float in [0, 1) from 24 random bits: Philox(seed, stream).uniform(index).
__device__ __forceinline__ float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t counter_index = index / 4;
  uint32_t c0 = static_cast<uint32_t>(counter_index);
  uint32_t c1 = static_cast<uint32_t>(counter_index >> 32);
  uint32_t c2 = static_cast<uint32_t>(stream);
  uint32_t c3 = static_cast<uint32_t>(stream >> 32);
  uint32_t key0 = static_cast<uint32_t>(seed);
  uint32_t key1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t product0 = static_cast<uint64_t>(0xD2511F53U) * c0;
    const uint64_t product1 = static_cast<uint64_t>(0xCD9E8D57U) * c2;
    const uint32_t next0 = static_cast<uint32_t>(product1 >> 32) ^ c1 ^ key0;
    const uint32_t next2 = static_cast<uint32_t>(product0 >> 32) ^ c3 ^ key1;
    c1 = static_cast<uint32_t>(product1);
    c3 = static_cast<uint32_t>(product0);
    c0 = next0;
    c2 = next2;
    key0 += 0x9E3779B9U;
    key1 += 0xBB67AE85U;
  }
  const uint32_t words[4] = {c0, c1, c2, c3};
  return static_cast<float>(words[index % 4] >> 8) * 0x1p-24F;
}

}  // namespace anvil::cuda
