#pragma once
// Writing quantized_matmul's 8-bit activations (Q8Act / Q8KAct) from the kernel that makes
// the values (add_rms_norm, swiglu), so that the GEMV after it reads them without a
// quantiser kernel in between. Same operations as quantize_activations_kernel
// (quantized_matmul_kernels.cu) and the CPU's quantize_row_*: amax of the block, codes
// round-half-even(clamp(x * (127 / amax))), d = amax / 127; legacy blocks keep fp16(d) and
// fp16(d * code sum). Every step is exact or the same f32 operation, so the bits do not
// depend on how the elements are spread over the threads.
#include <cuda_fp16.h>

#include <cstdint>

#include "anvil/core/quant.h"
#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// Lanes that hold one block when each lane holds 8 consecutive elements.
constexpr int kLegacyCodeLanes = 4;  // blocks of 32
constexpr int kSuperCodeLanes = 32;  // super-blocks of 256

// This lane's 8 consecutive values, elements [first, first + 8) of the flat (M * K) tensor,
// quantised into `acts`; kLanes consecutive, kLanes-aligned lanes hold one block. Every lane
// of the warp calls it (shuffles); `valid` is false for a whole block's lanes past the end.
template <int kLanes>
__device__ __forceinline__ void quantize_eight(const float (&values)[8], int64_t first, bool valid,
                                               const QuantizedActivations& acts) {
  constexpr unsigned kFull = 0xffffffffU;
  float amax = 0.0F;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float magnitude = values[i] < 0.0F ? -values[i] : values[i];
    amax = magnitude > amax ? magnitude : amax;  // NaN is skipped
  }
#pragma unroll
  for (int offset = 1; offset < kLanes; offset <<= 1) {
    const float other = __shfl_xor_sync(kFull, amax, offset);
    amax = other > amax ? other : amax;
  }
  const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
  int code_sum = 0;
  uint32_t packed[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    float value = values[i] * inverse;
    value = value >= -127.0F ? value : -127.0F;  // NaN becomes -127, as on the CPU
    value = value <= 127.0F ? value : 127.0F;
    const int code = __float2int_rn(value);  // ties to even
    packed[i / 4] |= (static_cast<uint32_t>(code) & 0xFFU) << (8 * (i % 4));
    code_sum += code;
  }
  // Code sums of each 32 elements: 4 lanes.
  code_sum += __shfl_xor_sync(kFull, code_sum, 1);
  code_sum += __shfl_xor_sync(kFull, code_sum, 2);
  if (!valid) return;
  *reinterpret_cast<uint2*>(acts.codes + first) = make_uint2(packed[0], packed[1]);
  const int lane = static_cast<int>(threadIdx.x % kLanes);
  if (lane % 4 == 0) acts.sums[first / 32] = code_sum;
  if (lane != 0) return;
  const float d = amax / 127.0F;
  if constexpr (kLanes == kLegacyCodeLanes) {  // ggml's f16 d and s
    acts.scales[first / 32] = __half2float(__float2half_rn(d));
    acts.block_sums[first / 32] = __half2float(__float2half_rn(d * static_cast<float>(code_sum)));
  } else {
    acts.scales[first / 256] = d;
  }
}

// A warp's 32 consecutive values, one per lane, element `index` of the flat tensor (lane 0's
// index a multiple of 32), quantised into Q8Act `acts` as one block. Every lane calls it.
__device__ __forceinline__ void quantize_warp_block(float value, int64_t index, const QuantizedActivations& acts) {
  constexpr unsigned kFull = 0xffffffffU;
  float amax = value < 0.0F ? -value : value;
  amax = amax == amax ? amax : 0.0F;  // NaN is skipped
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const float other = __shfl_xor_sync(kFull, amax, offset);
    amax = other > amax ? other : amax;
  }
  const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
  float scaled = value * inverse;
  scaled = scaled >= -127.0F ? scaled : -127.0F;  // NaN becomes -127, as on the CPU
  scaled = scaled <= 127.0F ? scaled : 127.0F;
  const int code = __float2int_rn(scaled);  // ties to even
  acts.codes[index] = static_cast<int8_t>(code);
  int code_sum = code;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) code_sum += __shfl_xor_sync(kFull, code_sum, offset);
  if (index % 32 != 0) return;
  const float d = amax / 127.0F;
  acts.sums[index / 32] = code_sum;
  acts.scales[index / 32] = __half2float(__float2half_rn(d));  // ggml's f16 d and s
  acts.block_sums[index / 32] = __half2float(__float2half_rn(d * static_cast<float>(code_sum)));
}

}  // namespace anvil::cuda
