// Broadcast add / mul and scale: grid-stride loops over the flat elements, one element per
// thread per step, so neighbouring threads touch neighbouring addresses (coalesced).
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/elementwise_kernels.h"
#include "cuda/float_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

unsigned grid_for(int64_t count) {
  return static_cast<unsigned>(std::min(kMaxBlocks, (count + kThreads - 1) / kThreads));
}

// out, a (count); b (period), repeated along a. Each element is read before it is written,
// so exact aliasing of out with a is safe.
template <BinaryOp kOp>
__global__ void broadcast_binary_kernel(FloatBuffer out, ConstFloatBuffer a, ConstFloatBuffer b, int64_t count,
                                        int64_t period) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const float x = load_float(a, i);
    const float y = load_float(b, period == count ? i : i % period);
    store_float(out, i, kOp == BinaryOp::Add ? x + y : x * y);
  }
}

__global__ void scale_kernel(FloatBuffer out, ConstFloatBuffer a, float factor, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    store_float(out, i, load_float(a, i) * factor);
  }
}

}  // namespace

void launch_broadcast_binary(BinaryOp op, FloatBuffer out, ConstFloatBuffer a, ConstFloatBuffer b, int64_t count,
                             int64_t period, cudaStream_t stream) {
  if (count == 0) return;
  if (op == BinaryOp::Add) {
    broadcast_binary_kernel<BinaryOp::Add><<<grid_for(count), kThreads, 0, stream>>>(out, a, b, count, period);
  } else {
    broadcast_binary_kernel<BinaryOp::Mul><<<grid_for(count), kThreads, 0, stream>>>(out, a, b, count, period);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_scale(FloatBuffer out, ConstFloatBuffer a, float factor, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  scale_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, a, factor, count);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
