#pragma once
// Makes one CUDA device current for a scope. The current device is per host thread, and
// anvil calls may arrive on any thread, so every entry point that talks to the runtime
// about a specific device takes a guard first.
#include <cuda_runtime_api.h>

#include "cuda/cuda_check.h"

namespace anvil::cuda {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device_index) {
    ANVIL_CUDA_CHECK(cudaGetDevice(&previous_index_));
    if (previous_index_ != device_index) ANVIL_CUDA_CHECK(cudaSetDevice(device_index));
    switched_ = previous_index_ != device_index;
  }
  ~DeviceGuard() {
    if (switched_) static_cast<void>(cudaSetDevice(previous_index_));  // destructors must not throw
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_index_ = 0;
  bool switched_ = false;
};

}  // namespace anvil::cuda
