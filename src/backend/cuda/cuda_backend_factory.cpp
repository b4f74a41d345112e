// Built with ANVIL_WITH_CUDA: opens the CUDA backend when a usable GPU is present.
#include "cuda/cuda_backend_factory.h"

#include <cuda_runtime_api.h>

#include <cstdio>

#include "cuda/cuda_backend.h"

namespace anvil::cuda {
namespace {

// The kernels are built for sm_90a only (CMakeLists.txt), which runs on compute 9.0 only.
constexpr int kRequiredMajor = 9;
constexpr int kRequiredMinor = 0;

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device_index, bool tune_gemms) {
  // No driver, no GPU or a driver too old for this runtime: CPU only, silently. The
  // failed query leaves a sticky "last error"; clear it so later checks do not see it.
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    return nullptr;
  }
  if (device_index < 0 || device_index >= device_count) return nullptr;
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device_index) != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    return nullptr;
  }
  if (properties.major != kRequiredMajor || properties.minor != kRequiredMinor) {
    std::fprintf(stderr, "anvil: %s is compute %d.%d; this build targets sm_90a only: running CPU-only\n",
                 properties.name, properties.major, properties.minor);
    return nullptr;
  }
  return std::make_unique<CudaBackend>(device_index, tune_gemms);
}

}  // namespace anvil::cuda
