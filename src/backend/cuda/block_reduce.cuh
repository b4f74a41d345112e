#pragma once
// Warp and block reductions in a fixed order: for a given blockDim the tree is always the
// same, so results are reproducible run to run (no atomics).
#include <cuda_runtime.h>

namespace anvil::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarpMask = 0xffffffffU;

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullWarpMask, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(kFullWarpMask, value, offset));
  return value;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (at most
// 1024) and every thread must call it. `scratch` is 32 floats of shared memory; the call may
// be repeated with the same scratch (it synchronises before reuse).
__device__ __forceinline__ float block_sum(float value, float* scratch) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int num_warps = static_cast<int>(blockDim.x) / kWarpSize;
  value = warp_sum(value);
  __syncthreads();  // a previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < num_warps ? scratch[lane] : 0.0F;
  return warp_sum(value);
}

// Two sums at once (one pair of barriers instead of two). `scratch` is 64 floats.
__device__ __forceinline__ float2 block_sum2(float2 value, float* scratch) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int num_warps = static_cast<int>(blockDim.x) / kWarpSize;
  value.x = warp_sum(value.x);
  value.y = warp_sum(value.y);
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = value.x;
    scratch[kWarpSize + warp] = value.y;
  }
  __syncthreads();
  value.x = lane < num_warps ? scratch[lane] : 0.0F;
  value.y = lane < num_warps ? scratch[kWarpSize + lane] : 0.0F;
  return {warp_sum(value.x), warp_sum(value.y)};
}

__device__ __forceinline__ float block_max(float value, float* scratch) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int num_warps = static_cast<int>(blockDim.x) / kWarpSize;
  value = warp_max(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < num_warps ? scratch[lane] : -INFINITY;
  return warp_max(value);
}

// A running softmax denominator: sum of exp(x - max) over the values seen.
struct MaxSum {
  float max;
  float sum;
};

// Merges two partial (max, sum) pairs; an empty side has max -inf and sum 0.
__device__ __forceinline__ MaxSum merge_max_sum(MaxSum a, MaxSum b) {
  const float max = fmaxf(a.max, b.max);
  if (max == -INFINITY) return {max, 0.0F};
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

// Adds one value to a running (max, sum).
__device__ __forceinline__ MaxSum add_to_max_sum(MaxSum state, float value) {
  if (value == -INFINITY) return state;  // adds exp(-inf) = 0; avoids -inf - -inf
  if (value <= state.max) return {state.max, state.sum + expf(value - state.max)};
  // value > max (so value is not -inf): rescale the old sum to the new max.
  return {value, state.sum * expf(state.max - value) + 1.0F};
}

// (max, sum) over the block, returned to every thread. Same contract as block_sum;
// `scratch` is 64 floats of shared memory.
__device__ __forceinline__ MaxSum block_max_sum(MaxSum state, float* scratch) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int num_warps = static_cast<int>(blockDim.x) / kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const MaxSum other{__shfl_xor_sync(kFullWarpMask, state.max, offset),
                       __shfl_xor_sync(kFullWarpMask, state.sum, offset)};
    state = merge_max_sum(state, other);
  }
  __syncthreads();
  if (lane == 0) {
    scratch[warp] = state.max;
    scratch[kWarpSize + warp] = state.sum;
  }
  __syncthreads();
  state = lane < num_warps ? MaxSum{scratch[lane], scratch[kWarpSize + lane]} : MaxSum{-INFINITY, 0.0F};
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const MaxSum other{__shfl_xor_sync(kFullWarpMask, state.max, offset),
                       __shfl_xor_sync(kFullWarpMask, state.sum, offset)};
    state = merge_max_sum(state, other);
  }
  return state;
}

}  // namespace anvil::cuda
