#pragma once
// Range checks of i32 index tensors that live on the device (embedding ids, cross-entropy
// targets): the op must throw naming the first bad index, so the check ends in a host wait.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <optional>

namespace anvil::cuda {

struct BadIndex {
  int64_t position;
  int32_t value;
};

// The first (lowest) position whose value is outside [low, high), or nullopt. `scratch` is
// 8 bytes of device memory. Waits for the stream (and so for all work queued before).
std::optional<BadIndex> find_first_out_of_range(const int32_t* values, int64_t count, int64_t low, int64_t high,
                                                void* scratch, cudaStream_t stream);

}  // namespace anvil::cuda
