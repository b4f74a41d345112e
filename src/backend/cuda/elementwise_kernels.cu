// Broadcast add / mul and scale. Fast path: when out, a and b share one dtype, are 16-byte
// aligned and b's period is a whole number of vectors, each thread moves 16-byte vectors.
// Otherwise a generic path reads and writes element by element through float_io.cuh. Both
// are grid-stride loops in which neighbouring threads touch neighbouring addresses.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/elementwise_kernels.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

unsigned grid_for(int64_t work_items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(kMaxBlocks, (work_items + kThreads - 1) / kThreads)));
}

template <BinaryOp kOp>
__device__ __forceinline__ float binary(float x, float y) {
  return kOp == BinaryOp::Add ? x + y : x * y;
}

// out, a (count); b (period), repeated along a. b's index i mod period is stepped along with
// i (one 64-bit division per thread, not per element). Each element is read before it is
// written, so exact aliasing of out with a or b is safe.
template <BinaryOp kOp>
__global__ void broadcast_binary_kernel(FloatBuffer out, ConstFloatBuffer a, ConstFloatBuffer b, int64_t count,
                                        int64_t period) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t stride_mod = stride % period;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t j = i % period;
  for (; i < count; i += stride) {
    store_float(out, i, binary<kOp>(load_float(a, i), load_float(b, j)));
    j += stride_mod;
    if (j >= period) j -= period;
  }
}

// The same over 16-byte vectors: num_vecs vectors of a, period_vecs of b.
template <typename T, BinaryOp kOp>
__global__ void broadcast_binary_vec_kernel(T* out, const T* a, const T* b, int64_t num_vecs, int64_t period_vecs) {
  constexpr int kSize = kVecSize<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t stride_mod = stride % period_vecs;
  int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t j = v % period_vecs;
  for (; v < num_vecs; v += stride) {
    float x[kSize];
    float y[kSize];
    load_vec(a, v, x);
    load_vec(b, j, y);
#pragma unroll
    for (int k = 0; k < kSize; ++k) x[k] = binary<kOp>(x[k], y[k]);
    store_vec(out, v, x);
    j += stride_mod;
    if (j >= period_vecs) j -= period_vecs;
  }
}

__global__ void scale_kernel(FloatBuffer out, ConstFloatBuffer a, float factor, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    store_float(out, i, load_float(a, i) * factor);
  }
}

// Vectors first, then the count % kVecSize tail element by element by the first threads.
template <typename T>
__global__ void scale_vec_kernel(T* out, const T* a, float factor, int64_t count) {
  constexpr int kSize = kVecSize<T>;
  const int64_t num_vecs = count / kSize;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t v = first; v < num_vecs; v += stride) {
    float x[kSize];
    load_vec(a, v, x);
#pragma unroll
    for (int k = 0; k < kSize; ++k) x[k] *= factor;
    store_vec(out, v, x);
  }
  const int64_t tail = num_vecs * kSize + first;
  if (tail < count) out[tail] = narrow<T>(widen(a[tail]) * factor);
}

}  // namespace

void launch_broadcast_binary(BinaryOp op, FloatBuffer out, ConstFloatBuffer a, ConstFloatBuffer b, int64_t count,
                             int64_t period, cudaStream_t stream) {
  if (count == 0) return;
  if (vector_ready(a.dtype, {as_const(out), a, b})) {
    bool launched = false;
    dispatch_storage(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (period % kVecSize<T> != 0) return;
      const int64_t num_vecs = count / kVecSize<T>;
      const int64_t period_vecs = period / kVecSize<T>;
      T* out_data = static_cast<T*>(out.data);
      const T* a_data = static_cast<const T*>(a.data);
      const T* b_data = static_cast<const T*>(b.data);
      if (op == BinaryOp::Add) {
        broadcast_binary_vec_kernel<T, BinaryOp::Add>
            <<<grid_for(num_vecs), kThreads, 0, stream>>>(out_data, a_data, b_data, num_vecs, period_vecs);
      } else {
        broadcast_binary_vec_kernel<T, BinaryOp::Mul>
            <<<grid_for(num_vecs), kThreads, 0, stream>>>(out_data, a_data, b_data, num_vecs, period_vecs);
      }
      launched = true;
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  if (op == BinaryOp::Add) {
    broadcast_binary_kernel<BinaryOp::Add><<<grid_for(count), kThreads, 0, stream>>>(out, a, b, count, period);
  } else {
    broadcast_binary_kernel<BinaryOp::Mul><<<grid_for(count), kThreads, 0, stream>>>(out, a, b, count, period);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_scale(FloatBuffer out, ConstFloatBuffer a, float factor, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  if (vector_ready(a.dtype, {as_const(out), a})) {
    dispatch_storage(a.dtype, [&](auto tag) {
      using T = decltype(tag);
      // Threads cover the vectors and at least the tail (< kVecSize elements).
      const int64_t threads_needed = std::max<int64_t>(count / kVecSize<T>, kVecSize<T>);
      scale_vec_kernel<T><<<grid_for(threads_needed), kThreads, 0, stream>>>(
          static_cast<T*>(out.data), static_cast<const T*>(a.data), factor, count);
    });
    ANVIL_CUDA_CHECK_LAUNCH();
    return;
  }
  scale_kernel<<<grid_for(count), kThreads, 0, stream>>>(out, a, factor, count);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
