// Softmax: one block per row. Generic path: the forward reads the row twice, once for an
// online (max, sum of exp) and once to write; the backward once for the dot product and once
// to write. Fast path (one dtype, aligned, rows of whole vectors up to 16k elements): the
// row is cached in registers and read once. Reductions are fixed trees (block_reduce.cuh), so results repeat run to
// run.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/row_vector_plan.cuh"
#include "cuda/softmax_kernels.h"
#include "cuda/vector_io.cuh"

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

// ---- register-cached fast path: x / out (or y, dout, dx) share dtype T, 16-byte aligned,
// C a whole number of vectors. Thread t holds vectors t, t + blockDim, ... of the row, so
// the row is read from memory once.

constexpr int kForwardMaxElems = 32;   // cached row per thread
constexpr int kBackwardMaxElems = 16;  // per cached array (y, dout)

template <typename T, int kVecs>
__device__ __forceinline__ void load_row_vectors(const T* row, int64_t num_vecs, float (&values)[kVecs][kVecSize<T>]) {
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec < num_vecs) {
      load_vec(row, vec, values[i]);
    } else {
#pragma unroll
      for (int k = 0; k < kVecSize<T>; ++k) values[i][k] = -INFINITY;  // no weight in max or sum
    }
  }
}

template <typename T, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads) softmax_vec_kernel(T* out, const T* x, int64_t channels) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[kWarpSize];
  const int64_t num_vecs = channels / kSize;
  const int64_t row = blockIdx.x;
  float v[kVecs][kSize];
  load_row_vectors<T, kVecs>(x + row * channels, num_vecs, v);
  float row_max = -INFINITY;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
#pragma unroll
    for (int k = 0; k < kSize; ++k) row_max = fmaxf(row_max, v[i][k]);
  }
  row_max = block_max(row_max, scratch);
  float sum = 0.0F;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
#pragma unroll
    for (int k = 0; k < kSize; ++k) {
      v[i][k] = expf(v[i][k] - row_max);  // padding: exp(-inf) = 0
      sum += v[i][k];
    }
  }
  const float inv_sum = 1.0F / block_sum(sum, scratch);
  T* y = out + row * channels;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
#pragma unroll
    for (int k = 0; k < kSize; ++k) v[i][k] *= inv_sum;
    store_vec(y, vec, v[i]);
  }
}

template <typename T, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    softmax_backward_vec_kernel(T* dx, const T* dout, const T* y, int64_t channels) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[kWarpSize];
  const int64_t num_vecs = channels / kSize;
  const int64_t row = blockIdx.x;
  float probs[kVecs][kSize];
  float g[kVecs][kSize];
  float dot = 0.0F;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
    load_vec(y + row * channels, vec, probs[i]);
    load_vec(dout + row * channels, vec, g[i]);
#pragma unroll
    for (int k = 0; k < kSize; ++k) dot += g[i][k] * probs[i][k];
  }
  const float shift = block_sum(dot, scratch);
  T* d = dx + row * channels;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
#pragma unroll
    for (int k = 0; k < kSize; ++k) g[i][k] = probs[i][k] * (g[i][k] - shift);
    store_vec(d, vec, g[i]);
  }
}

}  // namespace

void launch_softmax(FloatBuffer out, ConstFloatBuffer x, int64_t rows, int64_t channels, cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(x.dtype, {as_const(out), x})) {
    bool launched = false;
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kForwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
        if constexpr (vecs() * kVecSize<T> <= kForwardMaxElems) {
          softmax_vec_kernel<T, vecs()><<<static_cast<unsigned>(rows), plan.threads, 0, stream>>>(
              static_cast<T*>(out.data), static_cast<const T*>(x.data), channels);
          launched = true;
        }
      });
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  softmax_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(out, x, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_softmax_backward(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer y, int64_t rows, int64_t channels,
                             cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(y.dtype, {as_const(dx), dout, y})) {
    bool launched = false;
    dispatch_storage(y.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kBackwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
        if constexpr (vecs() * kVecSize<T> <= kBackwardMaxElems) {
          softmax_backward_vec_kernel<T, vecs()><<<static_cast<unsigned>(rows), plan.threads, 0, stream>>>(
              static_cast<T*>(dx.data), static_cast<const T*>(dout.data), static_cast<const T*>(y.data), channels);
          launched = true;
        }
      });
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  softmax_backward_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(dx, dout, y, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
