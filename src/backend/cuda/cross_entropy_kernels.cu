// Cross-entropy: one block per row of V logits (V up to ~10^5 and more). A single pass keeps
// an online (max, sum of exp) per thread, merged by a fixed tree; the backward makes a second
// pass to write the gradient. The fused forward + backward reads each row once: held in
// registers, or for long rows (GPT-2's vocabulary) staged in shared memory.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/cross_entropy_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kSmallVocabThreads = 256;
constexpr int kLargeVocabThreads = 1024;
constexpr int64_t kLargeVocab = 16384;

int row_threads(int64_t vocab) {
  if (vocab >= kLargeVocab) return kLargeVocabThreads;
  return static_cast<int>(std::min<int64_t>(kSmallVocabThreads, (vocab + kWarpSize - 1) / kWarpSize * kWarpSize));
}

// (max, sum of exp(logit - max)) of one row, returned to every thread of the block.
__device__ MaxSum row_max_sum(ConstFloatBuffer row_logits, int64_t vocab, float* scratch) {
  MaxSum state{-INFINITY, 0.0F};
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) state = add_to_max_sum(state, load_float(row_logits, v));
  return block_max_sum(state, scratch);
}

// grid (N), block (row_threads(V)). loss = (max - logit[target]) + log(sum).
__global__ void cross_entropy_kernel(float* losses, ConstFloatBuffer logits, const int32_t* targets, int64_t vocab) {
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  if (target < 0) {  // uniform over the block: no thread reaches a barrier
    if (threadIdx.x == 0) losses[row] = 0.0F;
    return;
  }
  const ConstFloatBuffer in = offset_buffer(logits, row * vocab);
  const MaxSum state = row_max_sum(in, vocab, scratch);
  if (threadIdx.x == 0) losses[row] = (state.max - load_float(in, target)) + logf(state.sum);
}

// grid (N), block (row_threads(V)). d[v] = exp(logit - max) * (dloss / sum), minus dloss at
// the target. The statistics are complete (barrier) before any write, so dlogits may alias
// logits.
// losses (may be null): the row's loss too (the fused forward + backward); the target's
// logit is read before the barrier, so before any thread overwrites it.
__global__ void cross_entropy_backward_kernel(FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                                              const int32_t* targets, int64_t vocab, float* losses) {
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const FloatBuffer d = offset_buffer(dlogits, row * vocab);
  if (target < 0) {
    if (losses != nullptr && threadIdx.x == 0) losses[row] = 0.0F;
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) store_float(d, v, 0.0F);
    return;
  }
  const ConstFloatBuffer in = offset_buffer(logits, row * vocab);
  const float target_logit = losses != nullptr && threadIdx.x == 0 ? load_float(in, target) : 0.0F;
  const MaxSum state = row_max_sum(in, vocab, scratch);
  if (losses != nullptr && threadIdx.x == 0) losses[row] = (state.max - target_logit) + logf(state.sum);
  const float dloss = dlosses[row];
  const float scale = dloss / state.sum;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float value = expf(load_float(in, v) - state.max) * scale;
    store_float(d, v, v == target ? value - dloss : value);
  }
}

// ---- vector fast path: V a whole number of 16-byte vectors, logits (and dlogits) one
// dtype and aligned. Same passes, 4 (f32) or 8 (bf16/f16) logits per load.

// Threads for a row of num_vecs vectors: about 4 vectors each, 32 to 1024.
int vector_row_threads(int64_t num_vecs) {
  const int64_t threads = ((num_vecs + 3) / 4 + kWarpSize - 1) / kWarpSize * kWarpSize;
  return static_cast<int>(std::clamp<int64_t>(threads, kWarpSize, kLargeVocabThreads));
}

// Adds a vector of logits to a running (max, sum): one rescale per vector, not per value.
template <int kSize>
__device__ __forceinline__ MaxSum add_vector_to_max_sum(MaxSum state, const float* values) {
  float vector_max = values[0];
#pragma unroll
  for (int k = 1; k < kSize; ++k) vector_max = fmaxf(vector_max, values[k]);
  if (vector_max == -INFINITY) return state;  // adds nothing; avoids -inf - -inf
  if (vector_max > state.max) {
    state.sum *= expf(state.max - vector_max);  // 0 when state was empty
    state.max = vector_max;
  }
#pragma unroll
  for (int k = 0; k < kSize; ++k) state.sum += expf(values[k] - state.max);
  return state;
}

// d[vec] = exp(values - max) * scale, minus dloss at the target: one vector of a row's
// gradient (values: its logits, overwritten).
template <typename T>
__device__ __forceinline__ void store_gradient_vec(T* d, int64_t vec, float* values, float max, float scale,
                                                   float dloss, int32_t target) {
  constexpr int kSize = kVecSize<T>;
#pragma unroll
  for (int k = 0; k < kSize; ++k) {
    const float value = expf(values[k] - max) * scale;
    values[k] = vec * kSize + k == target ? value - dloss : value;
  }
  store_vec(d, vec, values);
}

// An ignored row (target < 0) of the fused kernels: loss 0, gradient 0.
template <typename T>
__device__ void write_ignored_row(float* losses, int64_t row, T* d, int64_t num_vecs) {
  if (threadIdx.x == 0) losses[row] = 0.0F;
  float zeros[kVecSize<T>] = {};
  for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) store_vec(d, vec, zeros);
}

template <typename T>
__device__ MaxSum row_max_sum_vec(const T* row_logits, int64_t num_vecs, float* scratch) {
  MaxSum state{-INFINITY, 0.0F};
  for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) {
    float values[kVecSize<T>];
    load_vec(row_logits, vec, values);
    state = add_vector_to_max_sum<kVecSize<T>>(state, values);
  }
  return block_max_sum(state, scratch);
}

template <typename T>
__global__ void cross_entropy_vec_kernel(float* losses, const T* logits, const int32_t* targets, int64_t vocab) {
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  if (target < 0) {
    if (threadIdx.x == 0) losses[row] = 0.0F;
    return;
  }
  const T* in = logits + row * vocab;
  const MaxSum state = row_max_sum_vec(in, vocab / kVecSize<T>, scratch);
  if (threadIdx.x == 0) losses[row] = (state.max - widen(in[target])) + logf(state.sum);
}

template <typename T>
__global__ void cross_entropy_backward_vec_kernel(T* dlogits, const float* dlosses, const T* logits,
                                                  const int32_t* targets, int64_t vocab, float* losses) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const int64_t num_vecs = vocab / kSize;
  T* d = dlogits + row * vocab;
  if (target < 0) {
    if (losses != nullptr && threadIdx.x == 0) losses[row] = 0.0F;
    float zeros[kSize] = {};
    for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) store_vec(d, vec, zeros);
    return;
  }
  const T* in = logits + row * vocab;
  const float target_logit = losses != nullptr && threadIdx.x == 0 ? widen(in[target]) : 0.0F;
  const MaxSum state = row_max_sum_vec(in, num_vecs, scratch);
  if (losses != nullptr && threadIdx.x == 0) losses[row] = (state.max - target_logit) + logf(state.sum);
  const float dloss = dlosses[row];
  const float scale = dloss / state.sum;
  for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) {
    float values[kSize];
    load_vec(in, vec, values);
    store_gradient_vec(d, vec, values, state.max, scale, dloss, target);
  }
}

// ---- fused forward + backward with the row held in registers: thread t keeps vectors t,
// t + blockDim, ... (kVecs of them, raw), so each logit is read from memory once and its
// gradient written once. Up to 8 vectors a thread at up to 1024 threads (64 registers a
// thread, no spills): rows of up to 65536 bf16 / 32768 f32 logits; GPT-2's 50304 bf16 logits
// take 1024 x 7.

constexpr int kMaxCachedVecs = 8;

template <typename T>
__device__ __forceinline__ void widen_raw(const uint4& raw, float* values) {
  const T* elements = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int k = 0; k < kVecSize<T>; ++k) values[k] = widen(elements[k]);
}

// grid (N), block (vector_row_threads(V / kVecSize<T>)), kVecs >= ceil(vectors / block).
template <typename T, int kVecs>
__global__ void __launch_bounds__(kLargeVocabThreads)
    cross_entropy_fused_cached_kernel(float* losses, T* dlogits, const float* dlosses, const T* logits,
                                      const int32_t* targets, int64_t vocab) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const int64_t num_vecs = vocab / kSize;
  T* d = dlogits + row * vocab;
  if (target < 0) {  // uniform over the block: no thread reaches a barrier
    write_ignored_row(losses, row, d, num_vecs);
    return;
  }
  const T* in = logits + row * vocab;
  const float target_logit = threadIdx.x == 0 ? widen(in[target]) : 0.0F;  // before any write
  uint4 cached[kVecs];
  MaxSum state{-INFINITY, 0.0F};
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec < num_vecs) {
      cached[i] = reinterpret_cast<const uint4*>(in)[vec];
      float values[kSize];
      widen_raw<T>(cached[i], values);
      state = add_vector_to_max_sum<kSize>(state, values);
    }
  }
  // Opaque to the compiler: the second pass widens the raw vectors again instead of
  // keeping the first pass's floats alive (twice the registers: spills).
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    asm volatile("" : "+r"(cached[i].x), "+r"(cached[i].y), "+r"(cached[i].z), "+r"(cached[i].w));
  }
  state = block_max_sum(state, scratch);
  if (threadIdx.x == 0) losses[row] = (state.max - target_logit) + logf(state.sum);
  const float dloss = dlosses[row];
  const float scale = dloss / state.sum;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
    float values[kSize];
    widen_raw<T>(cached[i], values);
    store_gradient_vec(d, vec, values, state.max, scale, dloss, target);
  }
}

// ---- the same with the row staged in shared memory, for rows whose register cache would
// take a whole SM (GPT-2's 50304 bf16 logits: 1024 threads x 64 registers, one row per SM
// at a time, so its loads, exps and stores never overlap another row's). Staged, a 100.6 KB
// row leaves room for a second block on the SM. Thread t stages and later rereads its own
// vectors t, t + blockDim, ...: no barrier beyond the statistics' reduction.

constexpr int kStagedThreads = 512;
constexpr int64_t kMinStagedBytes = 48 * 1024;   // below: the register cache leaves room
constexpr int64_t kMaxStagedBytes = 112 * 1024;  // two blocks per SM (228 KB)

// grid (N), block (kStagedThreads), dynamic shared memory V * sizeof(T) bytes.
template <typename T>
__global__ void __launch_bounds__(kStagedThreads, 2)
    cross_entropy_fused_staged_kernel(float* losses, T* dlogits, const float* dlosses, const T* logits,
                                      const int32_t* targets, int64_t vocab) {
  constexpr int kSize = kVecSize<T>;
  extern __shared__ uint4 staged[];
  __shared__ float scratch[2 * kWarpSize];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const int64_t num_vecs = vocab / kSize;
  T* d = dlogits + row * vocab;
  if (target < 0) {  // uniform over the block: no thread reaches a barrier
    write_ignored_row(losses, row, d, num_vecs);
    return;
  }
  const T* in = logits + row * vocab;
  const float target_logit = threadIdx.x == 0 ? widen(in[target]) : 0.0F;  // before any write
  MaxSum state{-INFINITY, 0.0F};
#pragma unroll 4
  for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) {
    const uint4 raw = reinterpret_cast<const uint4*>(in)[vec];
    staged[vec] = raw;
    float values[kSize];
    widen_raw<T>(raw, values);
    state = add_vector_to_max_sum<kSize>(state, values);
  }
  state = block_max_sum(state, scratch);
  if (threadIdx.x == 0) losses[row] = (state.max - target_logit) + logf(state.sum);
  const float dloss = dlosses[row];
  const float scale = dloss / state.sum;
#pragma unroll 4
  for (int64_t vec = threadIdx.x; vec < num_vecs; vec += blockDim.x) {
    float values[kSize];
    widen_raw<T>(staged[vec], values);
    store_gradient_vec(d, vec, values, state.max, scale, dloss, target);
  }
}

// Launches the staged kernel for rows of kMinStagedBytes to kMaxStagedBytes; false otherwise.
template <typename T>
bool launch_fused_staged(float* losses, T* dlogits, const float* dlosses, const T* logits, const int32_t* targets,
                         int64_t rows, int64_t vocab, cudaStream_t stream) {
  const int64_t bytes = vocab * static_cast<int64_t>(sizeof(T));
  if (bytes < kMinStagedBytes || bytes > kMaxStagedBytes) return false;
  const auto kernel = cross_entropy_fused_staged_kernel<T>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  kernel<<<static_cast<unsigned>(rows), kStagedThreads, static_cast<size_t>(bytes), stream>>>(losses, dlogits, dlosses,
                                                                                              logits, targets, vocab);
  ANVIL_CUDA_CHECK_LAUNCH();
  return true;
}

// Launches the cached kernel when the row fits its registers; false otherwise.
template <typename T>
bool launch_fused_cached(float* losses, T* dlogits, const float* dlosses, const T* logits, const int32_t* targets,
                         int64_t rows, int64_t vocab, cudaStream_t stream) {
  const int64_t num_vecs = vocab / kVecSize<T>;
  const int threads = vector_row_threads(num_vecs);
  const int64_t vecs = (num_vecs + threads - 1) / threads;
  if (vecs > kMaxCachedVecs) return false;
  const auto launch = [&](auto kernel) {
    kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(losses, dlogits, dlosses, logits, targets, vocab);
  };
  if (vecs <= 1) {
    launch(cross_entropy_fused_cached_kernel<T, 1>);
  } else if (vecs <= 2) {
    launch(cross_entropy_fused_cached_kernel<T, 2>);
  } else if (vecs <= 4) {
    launch(cross_entropy_fused_cached_kernel<T, 4>);
  } else {
    launch(cross_entropy_fused_cached_kernel<T, kMaxCachedVecs>);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void launch_cross_entropy(float* losses, ConstFloatBuffer logits, const int32_t* targets, int64_t rows, int64_t vocab,
                          cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(logits.dtype, {logits})) {
    bool launched = false;
    dispatch_storage(logits.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (vocab % kVecSize<T> != 0) return;
      cross_entropy_vec_kernel<T><<<static_cast<unsigned>(rows), vector_row_threads(vocab / kVecSize<T>), 0, stream>>>(
          losses, static_cast<const T*>(logits.data), targets, vocab);
      launched = true;
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  cross_entropy_kernel<<<static_cast<unsigned>(rows), row_threads(vocab), 0, stream>>>(losses, logits, targets, vocab);
  ANVIL_CUDA_CHECK_LAUNCH();
}

namespace {

// The backward kernels, with the losses written too when `losses` is not null.
void launch_backward(float* losses, FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                     const int32_t* targets, int64_t rows, int64_t vocab, cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(logits.dtype, {as_const(dlogits), logits})) {
    bool launched = false;
    dispatch_storage(logits.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (vocab % kVecSize<T> != 0) return;
      cross_entropy_backward_vec_kernel<T>
          <<<static_cast<unsigned>(rows), vector_row_threads(vocab / kVecSize<T>), 0, stream>>>(
              static_cast<T*>(dlogits.data), dlosses, static_cast<const T*>(logits.data), targets, vocab, losses);
      launched = true;
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  cross_entropy_backward_kernel<<<static_cast<unsigned>(rows), row_threads(vocab), 0, stream>>>(
      dlogits, dlosses, logits, targets, vocab, losses);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_cross_entropy_backward(FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                                   const int32_t* targets, int64_t rows, int64_t vocab, cudaStream_t stream) {
  launch_backward(nullptr, dlogits, dlosses, logits, targets, rows, vocab, stream);
}

void launch_cross_entropy_fused(float* losses, FloatBuffer dlogits, const float* dlosses, ConstFloatBuffer logits,
                                const int32_t* targets, int64_t rows, int64_t vocab, cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(logits.dtype, {as_const(dlogits), logits})) {
    bool launched = false;
    dispatch_storage(logits.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (vocab % kVecSize<T> != 0) return;
      launched = launch_fused_staged<T>(losses, static_cast<T*>(dlogits.data), dlosses,
                                        static_cast<const T*>(logits.data), targets, rows, vocab, stream) ||
                 launch_fused_cached<T>(losses, static_cast<T*>(dlogits.data), dlosses,
                                        static_cast<const T*>(logits.data), targets, rows, vocab, stream);
    });
    if (launched) return;
  }
  launch_backward(losses, dlogits, dlosses, logits, targets, rows, vocab, stream);
}

}  // namespace anvil::cuda
