// LayerNorm / RMSNorm kernels. Forward: one block per row, the row read once per statistic
// (it stays in L1/L2 between passes). Backward: block p owns a fixed run of rows, computes
// each row's dx, and sums its rows' parameter-gradient terms into partials[p, c], each
// column owned by one thread (no races); launch_add_column_sums then adds the partials in
// block order. Formulas and their f32 order follow src/backend/cpu/{layer,rms}_norm.cpp.
#include <algorithm>
#include <array>
#include <type_traits>

#include "cuda/activation_codes.cuh"
#include "cuda/block_reduce.cuh"
#include "cuda/column_sum_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/norm_kernels.h"
#include "cuda/row_vector_plan.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kMaxThreads = 512;
constexpr int64_t kMinRowsPerPartial = 8;
constexpr int64_t kMaxPartials = 512;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Threads per row: a multiple of 32 up to kMaxThreads, no more than the row needs.
int row_threads(int64_t channels) {
  return static_cast<int>(std::min<int64_t>(kMaxThreads, ceil_div(channels, kWarpSize) * kWarpSize));
}

int64_t rows_per_partial(int64_t rows) { return std::max(kMinRowsPerPartial, ceil_div(rows, kMaxPartials)); }

// grid (rows), block (row_threads(C)). Two-pass statistics: mean, then the centred sum of
// squares (no cancellation when |mean| >> std).
__global__ void layer_norm_kernel(FloatBuffer out, float* mean, float* rstd, ConstFloatBuffer x,
                                  ConstFloatBuffer weight, ConstFloatBuffer bias, int64_t channels, float eps) {
  __shared__ float scratch[kWarpSize];
  const int64_t row = blockIdx.x;
  const ConstFloatBuffer in = offset_buffer(x, row * channels);
  float sum = 0.0F;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) sum += load_float(in, c);
  const float mu = block_sum(sum, scratch) / static_cast<float>(channels);
  float sum_squares = 0.0F;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    const float centered = load_float(in, c) - mu;
    sum_squares += centered * centered;
  }
  const float variance = block_sum(sum_squares, scratch) / static_cast<float>(channels);
  const float inv_std = 1.0F / sqrtf(variance + eps);
  const FloatBuffer y = offset_buffer(out, row * channels);
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    const float normed = (load_float(in, c) - mu) * inv_std;
    const float shift = bias.data != nullptr ? load_float(bias, c) : 0.0F;
    store_float(y, c, normed * load_float(weight, c) + shift);
  }
  if (threadIdx.x == 0) {
    if (mean != nullptr) mean[row] = mu;
    if (rstd != nullptr) rstd[row] = inv_std;
  }
}

// grid (num_partials), block (row_threads(C)). n = (x - mean) r; g = dout * w;
// dx = r (g - mean_c(g) - n mean_c(g n)); partial dweight += dout n, dbias += dout.
__global__ void layer_norm_backward_kernel(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer x,
                                           ConstFloatBuffer weight, const float* mean, const float* rstd, int64_t rows,
                                           int64_t channels, int64_t rows_per_block, float* weight_partials,
                                           float* bias_partials) {
  __shared__ float scratch[2 * kWarpSize];
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = std::min(rows, first_row + rows_per_block);
  float* weight_partial = weight_partials != nullptr ? weight_partials + blockIdx.x * channels : nullptr;
  float* bias_partial = bias_partials != nullptr ? bias_partials + blockIdx.x * channels : nullptr;
  for (int64_t row = first_row; row < end_row; ++row) {
    const ConstFloatBuffer in = offset_buffer(x, row * channels);
    const ConstFloatBuffer grad = offset_buffer(dout, row * channels);
    const float mu = mean[row];
    const float r = rstd[row];
    const bool first = row == first_row;
    float sum_g = 0.0F;
    float sum_g_normed = 0.0F;
    // Everything that reads dout happens before dx is written (dx may alias dout).
    for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
      const float normed = (load_float(in, c) - mu) * r;
      const float g = load_float(grad, c);
      const float scaled = __fmul_rn(g, load_float(weight, c));  // rounded as in pass 2 (no FMA)
      sum_g += scaled;
      sum_g_normed += scaled * normed;
      if (weight_partial != nullptr) weight_partial[c] = (first ? 0.0F : weight_partial[c]) + g * normed;
      if (bias_partial != nullptr) bias_partial[c] = (first ? 0.0F : bias_partial[c]) + g;
    }
    const float2 sums = block_sum2({sum_g, sum_g_normed}, scratch);
    const float mean_g = sums.x / static_cast<float>(channels);
    const float mean_g_normed = sums.y / static_cast<float>(channels);
    const FloatBuffer d = offset_buffer(dx, row * channels);
    for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
      const float normed = (load_float(in, c) - mu) * r;
      const float g = load_float(grad, c);
      // __fmul_rn keeps the products rounded (not fused into the subtractions) so that
      // g * w - mean_g cancels exactly where the CPU's does (C = 1 gives dx = 0).
      const float scaled = __fmul_rn(g, load_float(weight, c));
      store_float(d, c, r * (scaled - mean_g - __fmul_rn(normed, mean_g_normed)));
    }
  }
}

// grid (rows), block (row_threads(C)).
__global__ void rms_norm_kernel(FloatBuffer out, float* rstd, ConstFloatBuffer x, ConstFloatBuffer weight,
                                int64_t channels, float eps) {
  __shared__ float scratch[kWarpSize];
  const int64_t row = blockIdx.x;
  const ConstFloatBuffer in = offset_buffer(x, row * channels);
  float sum_squares = 0.0F;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    const float value = load_float(in, c);
    sum_squares += value * value;
  }
  const float inv_rms = 1.0F / sqrtf(block_sum(sum_squares, scratch) / static_cast<float>(channels) + eps);
  const FloatBuffer y = offset_buffer(out, row * channels);
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    store_float(y, c, load_float(in, c) * inv_rms * load_float(weight, c));
  }
  if (threadIdx.x == 0 && rstd != nullptr) rstd[row] = inv_rms;
}

// grid (rows), block (row_threads(C)). Each thread updates its own columns of x, and the
// squares are of the stored (rounded) sums, as a separate add then rms_norm would see them.
// A thread's first kCachedPerThread columns (all of them for C <= 4096) are loaded together
// and their sums stay in registers for the second pass: in decode this kernel sits between
// two GEMVs on one row, where a loop of dependent load-store-reload steps took ~10 us.
constexpr int kCachedPerThread = 8;

__device__ __forceinline__ float stored_value(DType dtype, float value) {
  if (dtype == DType::BF16) return __bfloat162float(__float2bfloat16_rn(value));
  if (dtype == DType::F16) return __half2float(__float2half_rn(value));
  return value;
}

__global__ void add_rms_norm_kernel(FloatBuffer out, FloatBuffer x, ConstFloatBuffer delta, ConstFloatBuffer weight,
                                    int64_t channels, float eps) {
  __shared__ float scratch[kWarpSize];
  allow_dependents();   // a decode GEMV after it may start streaming its weights
  wait_for_producer();  // launched early after a GEMV (launch_dependent): delta is its output
  const int64_t row = blockIdx.x;
  const FloatBuffer residual = offset_buffer(x, row * channels);
  const ConstFloatBuffer d = offset_buffer(delta, row * channels);
  const int64_t stride = blockDim.x;
  const int64_t cached_end = std::min<int64_t>(channels, kCachedPerThread * stride);
  float cached[kCachedPerThread];
  float sum_squares = 0.0F;
#pragma unroll
  for (int slot = 0; slot < kCachedPerThread; ++slot) {
    const int64_t c = threadIdx.x + slot * stride;
    cached[slot] = c < cached_end ? load_float(residual, c) + load_float(d, c) : 0.0F;
  }
#pragma unroll
  for (int slot = 0; slot < kCachedPerThread; ++slot) {
    const int64_t c = threadIdx.x + slot * stride;
    if (c < cached_end) {
      cached[slot] = stored_value(x.dtype, cached[slot]);
      store_float(residual, c, cached[slot]);
      sum_squares += cached[slot] * cached[slot];
    }
  }
  for (int64_t c = cached_end + threadIdx.x; c < channels; c += stride) {
    const float value = stored_value(x.dtype, load_float(residual, c) + load_float(d, c));
    store_float(residual, c, value);
    sum_squares += value * value;
  }
  const float inv_rms = 1.0F / sqrtf(block_sum(sum_squares, scratch) / static_cast<float>(channels) + eps);
  const FloatBuffer y = offset_buffer(out, row * channels);
#pragma unroll
  for (int slot = 0; slot < kCachedPerThread; ++slot) {
    const int64_t c = threadIdx.x + slot * stride;
    if (c < cached_end) store_float(y, c, cached[slot] * inv_rms * load_float(weight, c));
  }
  for (int64_t c = cached_end + threadIdx.x; c < channels; c += stride) {
    store_float(y, c, load_float(residual, c) * inv_rms * load_float(weight, c));
  }
}

// The decode case of add_rms_norm (f32 stream, delta and out; weights of type W): eight
// elements per group, kGroups groups per thread in registers, 16-byte loads and stores. The
// weights are parameters, not a producer's output, so they are loaded before the
// programmatic-launch wait and arrive while the GEMV before it finishes; the element-wise
// kernel above loads them after the reduction, a second memory round trip on the critical
// path of every layer. Same f32 order as the kernel above.
constexpr int kNormGroup = 8;

template <typename T>
__device__ __forceinline__ void load_group(const T* base, int64_t group, float (&values)[kNormGroup]) {
  constexpr int kSize = kVecSize<T>;
#pragma unroll
  for (int part = 0; part < kNormGroup / kSize; ++part) {
    load_vec(base, group * (kNormGroup / kSize) + part, values + part * kSize);
  }
}

__device__ __forceinline__ void store_group(float* base, int64_t group, const float (&values)[kNormGroup]) {
  store_vec(base, 2 * group, values);
  store_vec(base, 2 * group + 1, values + 4);
}

// kCodeLanes 0: out (N, C) f32; else the normed rows are written to `codes` as quantized_matmul's
// activations (activation_codes.cuh: kCodeLanes lanes per block) and out is not used.
template <typename W, int kGroups, int kCodeLanes>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    add_rms_norm_vec_kernel(float* out, QuantizedActivations codes, float* x, const float* delta, const W* weight,
                            int64_t channels, float eps) {
  __shared__ float scratch[kWarpSize];
  if constexpr (kCodeLanes == 0) allow_dependents();  // a decode GEMV after it may start streaming its weights
  const int64_t groups = channels / kNormGroup;
  float w[kGroups][kNormGroup];
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    const int64_t g = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (g < groups) load_group(weight, g, w[i]);
  }
  wait_for_producer();                                // delta is the output of the GEMV before it
  if constexpr (kCodeLanes != 0) allow_dependents();  // writing codes: as the quantiser, after the wait
  const int64_t row = blockIdx.x;
  float* residual = x + row * channels;
  const float* d = delta + row * channels;
  float v[kGroups][kNormGroup];
  float sum_squares = 0.0F;
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    const int64_t g = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (g >= groups) continue;
    float added[kNormGroup];
    load_group(residual, g, v[i]);
    load_group(d, g, added);
#pragma unroll
    for (int k = 0; k < kNormGroup; ++k) v[i][k] += added[k];
  }
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    const int64_t g = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (g >= groups) continue;
    store_group(residual, g, v[i]);
#pragma unroll
    for (int k = 0; k < kNormGroup; ++k) sum_squares += v[i][k] * v[i][k];
  }
  const float inv_rms = 1.0F / sqrtf(block_sum(sum_squares, scratch) / static_cast<float>(channels) + eps);
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    const int64_t g = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if constexpr (kCodeLanes == 0) {
      if (g >= groups) continue;
#pragma unroll
      for (int k = 0; k < kNormGroup; ++k) v[i][k] = v[i][k] * inv_rms * w[i][k];
      store_group(out + row * channels, g, v[i]);
    } else {  // every lane takes part in the block's shuffles; blocks are all in or all out
      const bool valid = g < groups;
#pragma unroll
      for (int k = 0; k < kNormGroup; ++k) v[i][k] = valid ? v[i][k] * inv_rms * w[i][k] : 0.0F;
      quantize_eight<kCodeLanes>(v[i], row * channels + g * kNormGroup, valid, codes);
    }
  }
}

// grid (num_partials), block (row_threads(C)). dx = r dout w - x r^3 / C sum(dout w x);
// partial dweight += dout x r.
__global__ void rms_norm_backward_kernel(FloatBuffer dx, ConstFloatBuffer dout, ConstFloatBuffer x,
                                         ConstFloatBuffer weight, const float* rstd, int64_t rows, int64_t channels,
                                         int64_t rows_per_block, float* weight_partials) {
  __shared__ float scratch[kWarpSize];
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = std::min(rows, first_row + rows_per_block);
  float* weight_partial = weight_partials != nullptr ? weight_partials + blockIdx.x * channels : nullptr;
  for (int64_t row = first_row; row < end_row; ++row) {
    const ConstFloatBuffer in = offset_buffer(x, row * channels);
    const ConstFloatBuffer grad = offset_buffer(dout, row * channels);
    const float r = rstd[row];
    const bool first = row == first_row;
    float dot = 0.0F;
    for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
      const float value = load_float(in, c);
      const float g = load_float(grad, c);
      dot += g * load_float(weight, c) * value;
      if (weight_partial != nullptr) weight_partial[c] = (first ? 0.0F : weight_partial[c]) + g * value * r;
    }
    const float correction = block_sum(dot, scratch) * r * r * r / static_cast<float>(channels);
    const FloatBuffer d = offset_buffer(dx, row * channels);
    for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
      const float value = load_float(in, c);
      store_float(d, c, r * load_float(grad, c) * load_float(weight, c) - value * correction);
    }
  }
}

// ---- register-cached fast path: x, out, dout, dx, weight, bias share dtype T, 16-byte
// aligned, C a whole number of vectors. Thread t holds vectors t, t + blockDim, ... of the
// row (kVecs of them), so the row is read once; the backward also keeps its columns'
// parameter-gradient partials in registers across the block's rows.

constexpr int kForwardMaxElems = 32;   // cached x per thread
constexpr int kBackwardMaxElems = 16;  // per cached array (x, dout, two partials)

// Loads the thread's vectors of a row (zeros past the row's end).
template <typename T, int kVecs>
__device__ __forceinline__ void load_row_vectors(const T* row, int64_t num_vecs, float (&values)[kVecs][kVecSize<T>]) {
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec < num_vecs) {
      load_vec(row, vec, values[i]);
    } else {
#pragma unroll
      for (int k = 0; k < kVecSize<T>; ++k) values[i][k] = 0.0F;
    }
  }
}

// out[vec * kVecSize<T> + k] = values[k] as O: one 16-byte store when O is T; for f32 rows
// normalised into bf16 (mixed-precision training) one 8-byte store of 4 bf16.
template <typename T, typename O>
__device__ __forceinline__ void store_row_vec(O* base, int64_t vec, const float* values) {
  if constexpr (std::is_same_v<T, O>) {
    store_vec(base, vec, values);
  } else {
    static_assert(std::is_same_v<T, float> && std::is_same_v<O, __nv_bfloat16>, "f32 -> bf16 only");
    uint2 raw;
    O* elements = reinterpret_cast<O*>(&raw);
#pragma unroll
    for (int k = 0; k < kVecSize<T>; ++k) elements[k] = narrow<O>(values[k]);
    reinterpret_cast<uint2*>(base)[vec] = raw;
  }
}

// Host side: whether `out` takes the vector kernels' stores for rows of `in_dtype`: the same
// dtype 16-byte aligned, or bf16 for f32 rows 8-byte aligned.
bool out_vector_ready(DType in_dtype, FloatBuffer out) {
  const auto address = reinterpret_cast<uintptr_t>(out.data);
  if (out.dtype == in_dtype) return address % 16 == 0;
  return in_dtype == DType::F32 && out.dtype == DType::BF16 && address % 8 == 0;
}

// Calls fn(O{}) with O the output storage: T itself, or bf16 for f32 rows normalised into bf16.
template <typename T, typename Fn>
void dispatch_output(DType out_dtype, Fn&& fn) {
  if constexpr (std::is_same_v<T, float>) {
    if (out_dtype == DType::BF16) return fn(__nv_bfloat16{});
  }
  fn(T{});
}

template <typename T, typename O, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    layer_norm_vec_kernel(O* out, float* mean, float* rstd, const T* x, const T* weight, const T* bias,
                          int64_t channels, float eps) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[kWarpSize];
  const int64_t num_vecs = channels / kSize;
  const int64_t row = blockIdx.x;
  float v[kVecs][kSize];
  load_row_vectors<T, kVecs>(x + row * channels, num_vecs, v);
  float sum = 0.0F;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
#pragma unroll
    for (int k = 0; k < kSize; ++k) sum += v[i][k];
  }
  const float mu = block_sum(sum, scratch) / static_cast<float>(channels);
  float sum_squares = 0.0F;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    if (threadIdx.x + static_cast<int64_t>(i) * blockDim.x >= num_vecs) continue;  // padding is not (0 - mu)^2
#pragma unroll
    for (int k = 0; k < kSize; ++k) sum_squares += (v[i][k] - mu) * (v[i][k] - mu);
  }
  const float inv_std = 1.0F / sqrtf(block_sum(sum_squares, scratch) / static_cast<float>(channels) + eps);
  O* y = out + row * channels;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
    float w[kSize];
    float b[kSize] = {};
    load_vec(weight, vec, w);
    if (bias != nullptr) load_vec(bias, vec, b);
#pragma unroll
    for (int k = 0; k < kSize; ++k) v[i][k] = (v[i][k] - mu) * inv_std * w[k] + b[k];
    store_row_vec<T>(y, vec, v[i]);
  }
  if (threadIdx.x == 0) {
    if (mean != nullptr) mean[row] = mu;
    if (rstd != nullptr) rstd[row] = inv_std;
  }
}

// Writes the thread's register partials to partials[blockIdx.x, c].
template <typename T, int kVecs>
__device__ __forceinline__ void store_partials(float* partials, int64_t channels, int64_t num_vecs,
                                               const float (&values)[kVecs][kVecSize<T>]) {
  if (partials == nullptr) return;
  float* block_partial = partials + static_cast<int64_t>(blockIdx.x) * channels;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
#pragma unroll
    for (int k = 0; k < kVecSize<T>; ++k) block_partial[vec * kVecSize<T> + k] = values[i][k];
  }
}

// Where layer_norm_backward_residual sends dx: grad (N, C) f32 += dx, then low (N, C) bf16
// (may be null) = grad rounded, and partials (may be null) the block's column sums of the
// updated grad. grad null: dx is stored as it is.
struct ResidualGrad {
  float* grad = nullptr;
  __nv_bfloat16* low = nullptr;
  float* partials = nullptr;
};

// residual.grad[offset + vec's 4 floats] += values; the sum also rounded into residual.low
// and left in values.
__device__ __forceinline__ void add_to_residual(ResidualGrad residual, int64_t offset, int64_t vec, float* values) {
  float sum[kVecSize<float>];
  load_vec(residual.grad + offset, vec, sum);
#pragma unroll
  for (int k = 0; k < kVecSize<float>; ++k) sum[k] += values[k];
  store_vec(residual.grad + offset, vec, sum);
  if (residual.low != nullptr) store_row_vec<float>(residual.low + offset, vec, sum);
#pragma unroll
  for (int k = 0; k < kVecSize<float>; ++k) values[k] = sum[k];
}

template <typename T, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    layer_norm_backward_vec_kernel(T* dx, const T* dout, const T* x, const T* weight, const float* mean,
                                   const float* rstd, int64_t rows, int64_t channels, int64_t rows_per_block,
                                   float* weight_partials, float* bias_partials, ResidualGrad residual) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[2 * kWarpSize];
  const int64_t num_vecs = channels / kSize;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = std::min(rows, first_row + rows_per_block);
  float weight_sum[kVecs][kSize] = {};
  float bias_sum[kVecs][kSize] = {};
  float residual_sum[kVecs][kSize] = {};  // residual.partials only
  for (int64_t row = first_row; row < end_row; ++row) {
    float normed[kVecs][kSize];
    float g[kVecs][kSize];
    load_row_vectors<T, kVecs>(x + row * channels, num_vecs, normed);
    load_row_vectors<T, kVecs>(dout + row * channels, num_vecs, g);
    const float mu = mean[row];
    const float r = rstd[row];
    float sum_g = 0.0F;
    float sum_g_normed = 0.0F;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
      if (vec >= num_vecs) continue;
      float w[kSize];
      load_vec(weight, vec, w);
#pragma unroll
      for (int k = 0; k < kSize; ++k) {
        normed[i][k] = (normed[i][k] - mu) * r;
        const float scaled = __fmul_rn(g[i][k], w[k]);
        sum_g += scaled;
        sum_g_normed += scaled * normed[i][k];
        weight_sum[i][k] += g[i][k] * normed[i][k];
        bias_sum[i][k] += g[i][k];
      }
    }
    const float2 sums = block_sum2({sum_g, sum_g_normed}, scratch);
    const float mean_g = sums.x / static_cast<float>(channels);
    const float mean_g_normed = sums.y / static_cast<float>(channels);
    T* d = dx + row * channels;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
      if (vec >= num_vecs) continue;
      float w[kSize];
      load_vec(weight, vec, w);
#pragma unroll
      for (int k = 0; k < kSize; ++k) {
        g[i][k] = r * (__fmul_rn(g[i][k], w[k]) - mean_g - __fmul_rn(normed[i][k], mean_g_normed));
      }
      if constexpr (std::is_same_v<T, float>) {
        if (residual.grad != nullptr) {
          add_to_residual(residual, row * channels, vec, g[i]);
#pragma unroll
          for (int k = 0; k < kSize; ++k) residual_sum[i][k] += g[i][k];
          continue;
        }
      }
      store_vec(d, vec, g[i]);
    }
  }
  store_partials<T, kVecs>(weight_partials, channels, num_vecs, weight_sum);
  store_partials<T, kVecs>(bias_partials, channels, num_vecs, bias_sum);
  store_partials<T, kVecs>(residual.partials, channels, num_vecs, residual_sum);
}

template <typename T, typename O, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    rms_norm_vec_kernel(O* out, float* rstd, const T* x, const T* weight, int64_t channels, float eps) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[kWarpSize];
  allow_dependents();  // a decode GEMV after it may start streaming its weights
  const int64_t num_vecs = channels / kSize;
  const int64_t row = blockIdx.x;
  float v[kVecs][kSize];
  load_row_vectors<T, kVecs>(x + row * channels, num_vecs, v);
  float sum_squares = 0.0F;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
#pragma unroll
    for (int k = 0; k < kSize; ++k) sum_squares += v[i][k] * v[i][k];
  }
  const float inv_rms = 1.0F / sqrtf(block_sum(sum_squares, scratch) / static_cast<float>(channels) + eps);
  O* y = out + row * channels;
#pragma unroll
  for (int i = 0; i < kVecs; ++i) {
    const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
    if (vec >= num_vecs) continue;
    float w[kSize];
    load_vec(weight, vec, w);
#pragma unroll
    for (int k = 0; k < kSize; ++k) v[i][k] = v[i][k] * inv_rms * w[k];
    store_row_vec<T>(y, vec, v[i]);
  }
  if (threadIdx.x == 0 && rstd != nullptr) rstd[row] = inv_rms;
}

template <typename T, int kVecs>
__global__ void __launch_bounds__(kRowVectorMaxThreads)
    rms_norm_backward_vec_kernel(T* dx, const T* dout, const T* x, const T* weight, const float* rstd, int64_t rows,
                                 int64_t channels, int64_t rows_per_block, float* weight_partials) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float scratch[kWarpSize];
  const int64_t num_vecs = channels / kSize;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = std::min(rows, first_row + rows_per_block);
  float weight_sum[kVecs][kSize] = {};
  for (int64_t row = first_row; row < end_row; ++row) {
    float in[kVecs][kSize];
    float g[kVecs][kSize];
    load_row_vectors<T, kVecs>(x + row * channels, num_vecs, in);
    load_row_vectors<T, kVecs>(dout + row * channels, num_vecs, g);
    const float r = rstd[row];
    float dot = 0.0F;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
      if (vec >= num_vecs) continue;
      float w[kSize];
      load_vec(weight, vec, w);
#pragma unroll
      for (int k = 0; k < kSize; ++k) {
        dot += g[i][k] * w[k] * in[i][k];
        weight_sum[i][k] += g[i][k] * in[i][k] * r;
      }
    }
    const float correction = block_sum(dot, scratch) * r * r * r / static_cast<float>(channels);
    T* d = dx + row * channels;
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t vec = threadIdx.x + static_cast<int64_t>(i) * blockDim.x;
      if (vec >= num_vecs) continue;
      float w[kSize];
      load_vec(weight, vec, w);
#pragma unroll
      for (int k = 0; k < kSize; ++k) g[i][k] = r * g[i][k] * w[k] - in[i][k] * correction;
      store_vec(d, vec, g[i]);
    }
  }
  store_partials<T, kVecs>(weight_partials, channels, num_vecs, weight_sum);
}

}  // namespace

int64_t norm_backward_num_partials(int64_t rows) { return ceil_div(rows, rows_per_partial(rows)); }

void launch_layer_norm(FloatBuffer out, float* mean, float* rstd, ConstFloatBuffer x, ConstFloatBuffer weight,
                       ConstFloatBuffer bias, int64_t rows, int64_t channels, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(x.dtype, {x, weight, bias}) && out_vector_ready(x.dtype, out)) {
    bool launched = false;
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kForwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_output<T>(out.dtype, [&](auto out_tag) {
        using O = decltype(out_tag);
        dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
          if constexpr (vecs() * kVecSize<T> <= kForwardMaxElems) {
            layer_norm_vec_kernel<T, O, vecs()><<<static_cast<unsigned>(rows), plan.threads, 0, stream>>>(
                static_cast<O*>(out.data), mean, rstd, static_cast<const T*>(x.data),
                static_cast<const T*>(weight.data), static_cast<const T*>(bias.data), channels, eps);
            launched = true;
          }
        });
      });
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  layer_norm_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(out, mean, rstd, x, weight, bias,
                                                                                       channels, eps);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_layer_norm_backward(FloatBuffer dx, float* dweight, float* dbias, ConstFloatBuffer dout, ConstFloatBuffer x,
                                ConstFloatBuffer weight, const float* mean, const float* rstd, int64_t rows,
                                int64_t channels, float* partials, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t num_partials = norm_backward_num_partials(rows);
  float* weight_partials = dweight != nullptr ? partials : nullptr;
  float* bias_partials = dbias != nullptr ? partials + num_partials * channels : nullptr;
  bool launched = false;
  if (vector_ready(x.dtype, {as_const(dx), dout, x, weight})) {
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kBackwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
        if constexpr (vecs() * kVecSize<T> <= kBackwardMaxElems) {
          layer_norm_backward_vec_kernel<T, vecs()><<<static_cast<unsigned>(num_partials), plan.threads, 0, stream>>>(
              static_cast<T*>(dx.data), static_cast<const T*>(dout.data), static_cast<const T*>(x.data),
              static_cast<const T*>(weight.data), mean, rstd, rows, channels, rows_per_partial(rows), weight_partials,
              bias_partials, ResidualGrad{});
          launched = true;
        }
      });
    });
  }
  if (!launched) {
    layer_norm_backward_kernel<<<static_cast<unsigned>(num_partials), row_threads(channels), 0, stream>>>(
        dx, dout, x, weight, mean, rstd, rows, channels, rows_per_partial(rows), weight_partials, bias_partials);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
  const std::array<float*, 2> outs = {dweight, dbias};
  launch_add_column_sums(partials, num_partials, channels, outs, stream);
}

bool launch_layer_norm_backward_residual(float* dres, void* dres_low, float* dweight, float* dbias, float* dres_sums,
                                         const float* dout, const float* x, const float* weight, const float* mean,
                                         const float* rstd, int64_t rows, int64_t channels, float* partials,
                                         cudaStream_t stream) {
  if (rows == 0) return true;
  const auto aligned = [](const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
  const RowVectorPlan plan = plan_row_vectors<float>(channels, kBackwardMaxElems);
  if (plan.vecs_per_thread == 0 || !aligned(dres, 16) || !aligned(dout, 16) || !aligned(x, 16) ||
      !aligned(weight, 16) || !aligned(dres_low, 8)) {
    return false;
  }
  const int64_t num_partials = norm_backward_num_partials(rows);
  float* weight_partials = dweight != nullptr ? partials : nullptr;
  float* bias_partials = dbias != nullptr ? partials + num_partials * channels : nullptr;
  float* sum_partials = dres_sums != nullptr ? partials + 2 * num_partials * channels : nullptr;
  const ResidualGrad residual{dres, static_cast<__nv_bfloat16*>(dres_low), sum_partials};
  dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
    if constexpr (vecs() * kVecSize<float> <= kBackwardMaxElems) {
      layer_norm_backward_vec_kernel<float, vecs()><<<static_cast<unsigned>(num_partials), plan.threads, 0, stream>>>(
          nullptr, dout, x, weight, mean, rstd, rows, channels, rows_per_partial(rows), weight_partials, bias_partials,
          residual);
    }
  });
  ANVIL_CUDA_CHECK_LAUNCH();
  const std::array<float*, 3> outs = {dweight, dbias, dres_sums};
  launch_add_column_sums(partials, num_partials, channels, outs, stream);
  return true;
}

void launch_rms_norm(FloatBuffer out, float* rstd, ConstFloatBuffer x, ConstFloatBuffer weight, int64_t rows,
                     int64_t channels, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  if (vector_ready(x.dtype, {x, weight}) && out_vector_ready(x.dtype, out)) {
    bool launched = false;
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kForwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_output<T>(out.dtype, [&](auto out_tag) {
        using O = decltype(out_tag);
        dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
          if constexpr (vecs() * kVecSize<T> <= kForwardMaxElems) {
            rms_norm_vec_kernel<T, O, vecs()><<<static_cast<unsigned>(rows), plan.threads, 0, stream>>>(
                static_cast<O*>(out.data), rstd, static_cast<const T*>(x.data), static_cast<const T*>(weight.data),
                channels, eps);
            launched = true;
          }
        });
      });
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  rms_norm_kernel<<<static_cast<unsigned>(rows), row_threads(channels), 0, stream>>>(out, rstd, x, weight, channels,
                                                                                     eps);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_rms_norm_backward(FloatBuffer dx, float* dweight, ConstFloatBuffer dout, ConstFloatBuffer x,
                              ConstFloatBuffer weight, const float* rstd, int64_t rows, int64_t channels,
                              float* partials, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t num_partials = norm_backward_num_partials(rows);
  float* weight_partials = dweight != nullptr ? partials : nullptr;
  bool launched = false;
  if (vector_ready(x.dtype, {as_const(dx), dout, x, weight})) {
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      const RowVectorPlan plan = plan_row_vectors<T>(channels, kBackwardMaxElems);
      if (plan.vecs_per_thread == 0) return;
      dispatch_vecs_per_thread(plan.vecs_per_thread, [&](auto vecs) {
        if constexpr (vecs() * kVecSize<T> <= kBackwardMaxElems) {
          rms_norm_backward_vec_kernel<T, vecs()><<<static_cast<unsigned>(num_partials), plan.threads, 0, stream>>>(
              static_cast<T*>(dx.data), static_cast<const T*>(dout.data), static_cast<const T*>(x.data),
              static_cast<const T*>(weight.data), rstd, rows, channels, rows_per_partial(rows), weight_partials);
          launched = true;
        }
      });
    });
  }
  if (!launched) {
    rms_norm_backward_kernel<<<static_cast<unsigned>(num_partials), row_threads(channels), 0, stream>>>(
        dx, dout, x, weight, rstd, rows, channels, rows_per_partial(rows), weight_partials);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
  const std::array<float*, 1> outs = {dweight};
  launch_add_column_sums(partials, num_partials, channels, outs, stream);
}

namespace {

// The vector kernel into out (f32) or, when codes is given, quantized_matmul's activations;
// false (nothing launched) when the rows do not suit it.
bool launch_add_rms_norm_vec(FloatBuffer out, const QuantizedActivations* codes, FloatBuffer x, ConstFloatBuffer delta,
                             ConstFloatBuffer weight, int64_t rows, int64_t channels, float eps, cudaStream_t stream) {
  // The vector kernel: f32 stream, delta and out, 16-byte aligned rows of whole groups, at
  // most 4 groups per thread of up to kRowVectorMaxThreads.
  const int64_t groups = channels / kNormGroup;
  const bool aligned = reinterpret_cast<uintptr_t>(weight.data) % 16 == 0;
  const bool out_ready = codes != nullptr || vector_ready(DType::F32, {as_const(out)});
  if (channels % kNormGroup != 0 || !aligned || !out_ready || !vector_ready(DType::F32, {as_const(x), delta}) ||
      groups > 4 * kRowVectorMaxThreads) {
    return false;
  }
  const int per_thread = groups <= kRowVectorPreferredThreads ? 1 : groups <= 2 * kRowVectorPreferredThreads ? 2 : 4;
  const int64_t busy_threads = ceil_div(groups, per_thread);
  const auto threads = static_cast<unsigned>(ceil_div(busy_threads, kWarpSize) * kWarpSize);
  const QuantizedActivations no_codes{};
  dispatch_storage(weight.dtype, [&](auto zero) {
    using W = decltype(zero);
    const auto launch = [&](auto kernel) {
      launch_dependent(kernel, static_cast<unsigned>(rows), threads, 0, stream, static_cast<float*>(out.data),
                       codes != nullptr ? *codes : no_codes, static_cast<float*>(x.data),
                       static_cast<const float*>(delta.data), static_cast<const W*>(weight.data), channels, eps);
    };
    const auto with_lanes = [&](auto lanes) {
      if (per_thread == 1) return launch(add_rms_norm_vec_kernel<W, 1, lanes()>);
      if (per_thread == 2) return launch(add_rms_norm_vec_kernel<W, 2, lanes()>);
      launch(add_rms_norm_vec_kernel<W, 4, lanes()>);
    };
    if (codes == nullptr) return with_lanes(std::integral_constant<int, 0>{});
    if (codes->block == kQuantBlock) return with_lanes(std::integral_constant<int, kLegacyCodeLanes>{});
    with_lanes(std::integral_constant<int, kSuperCodeLanes>{});
  });
  return true;
}

}  // namespace

void launch_add_rms_norm(FloatBuffer out, FloatBuffer x, ConstFloatBuffer delta, ConstFloatBuffer weight, int64_t rows,
                         int64_t channels, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  if (launch_add_rms_norm_vec(out, nullptr, x, delta, weight, rows, channels, eps, stream)) return;
  launch_dependent(add_rms_norm_kernel, static_cast<unsigned>(rows), row_threads(channels), 0, stream, out, x, delta,
                   weight, channels, eps);
}

bool launch_add_rms_norm_codes(const QuantizedActivations& codes, FloatBuffer x, ConstFloatBuffer delta,
                               ConstFloatBuffer weight, int64_t rows, int64_t channels, float eps,
                               cudaStream_t stream) {
  if (rows == 0) return true;
  return launch_add_rms_norm_vec(FloatBuffer{}, &codes, x, delta, weight, rows, channels, eps, stream);
}

}  // namespace anvil::cuda
