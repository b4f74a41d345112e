// Softmax: one block per row. The forward reads the row twice: once for an online
// (max, sum of exp) and once to write; the backward once for the dot product and once to
// write. Reductions are fixed trees (block_reduce.cuh), so results repeat run to run.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/softmax_kernels.h"

namespace anvil::cuda {
namespace {

constexpr int kMaxThreads = 512;

int row_threads(int64_t channels) {
  return static_cast<int>(std::min<int64_t>(kMaxThreads, (channels + kWarpSize - 1) / kWarpSize * kWarpSize));
}

// grid (rows), block (row_threads(C)). Every read of the row ends (block_max_sum's barrier)
// before the first write, and each element is written by the thread that read it last, so
// out may alias x.
__global__ void softmax_kernel(FloatBuffer out, ConstFloatBuffer x, int64_t channels) {
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const ConstFloatBuffer in = offset_buffer(x, row * channels);
  MaxSum state{-INFINITY, 0.0F};
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) state = add_to_max_sum(state, load_float(in, c));
  state = block_max_sum(state, scratch);
  const float inv_sum = 1.0F / state.sum;
  const FloatBuffer y = offset_buffer(out, row * channels);
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    store_float(y, c, expf(load_float(in, c) - state.max) * inv_sum);
  }
}

// grid (rows), block (row_threads(C)).
__global__ void softmax_backward_kernel(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer y, int64_t channels) {
  __shared__ float scratch[kWarpSize];
  const int64_t row = blockIdx.x;
  const ConstFloatBuffer probs = offset_buffer(y, row * channels);
  const ConstFloatBuffer grad = offset_buffer(dout, row * channels);
  float dot = 0.0F;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) dot += load_float(grad, c) * load_float(probs, c);
  const float shift = block_sum(dot, scratch);
  const FloatBuffer d = offset_buffer(dx, row * channels);
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    store_float(d, c, load_float(probs, c) * (load_float(grad, c) - shift));
  }
}

}  // namespace

void launch_softmax(FloatBuffer out, ConstFloatBuffer x, int64_t rows, int64_t channels, cudaStream_t stream) {
  if (rows == 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(out, x, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_softmax_backward(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer y, int64_t rows, int64_t channels,
                             cudaStream_t stream) {
  if (rows == 0) return;
  softmax_backward_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(dx, dout, y, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
