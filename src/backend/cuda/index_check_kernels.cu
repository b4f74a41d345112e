// Index range check: a grid-stride scan that keeps the lowest bad position with an integer
// atomicMin (exact and order-independent, unlike float atomics), then one 8-byte download.
#include <algorithm>
#include <limits>

#include "cuda/cuda_check.h"
#include "cuda/index_check_kernels.h"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1024;
constexpr unsigned long long kNone = std::numeric_limits<unsigned long long>::max();

__global__ void first_out_of_range_kernel(const int32_t* values, int64_t count, int64_t low, int64_t high,
                                          unsigned long long* first_bad) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const int64_t value = values[i];
    if (value < low || value >= high) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      return;  // later positions of this thread are larger
    }
  }
}

}  // namespace

std::optional<BadIndex> find_first_out_of_range(const int32_t* values, int64_t count, int64_t low, int64_t high,
                                                void* scratch, cudaStream_t stream) {
  if (count == 0) return std::nullopt;
  auto* first_bad = static_cast<unsigned long long*>(scratch);
  ANVIL_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), stream));  // kNone
  const auto blocks = static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
  first_out_of_range_kernel<<<blocks, kThreads, 0, stream>>>(values, count, low, high, first_bad);
  ANVIL_CUDA_CHECK_LAUNCH();
  unsigned long long position = kNone;
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(&position, first_bad, sizeof(position), cudaMemcpyDeviceToHost, stream));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (position == kNone) return std::nullopt;
  int32_t value = 0;
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(&value, values + position, sizeof(value), cudaMemcpyDeviceToHost, stream));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream));
  return BadIndex{static_cast<int64_t>(position), value};
}

}  // namespace anvil::cuda
