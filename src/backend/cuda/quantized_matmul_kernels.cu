// quantized_matmul kernels: activation quantisation, then one warp per weight row that
// decodes each weight block once into packed 8-bit codes and dots it (dp4a) with up to
// kRowsPerTile activation rows. Decode (M = 1) streams every weight byte exactly once, in
// coalesced runs of consecutive blocks across the lanes. Block layouts: anvil/core/quant.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "anvil/core/error.h"
#include "anvil/core/quant.h"
#include "cuda/cuda_check.h"
#include "cuda/decode_gemv_kernels.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/device_float.cuh"
#include "cuda/quant_block_decode.cuh"
#include "cuda/quantized_matmul_kernels.h"
#include "cuda/quantized_matmul_mma.h"

namespace anvil::cuda {
namespace {

using namespace qdecode;  // NOLINT(google-build-using-namespace): the block formats

constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = 4;  // weight rows per thread block
constexpr int kRowsPerTile = 8;    // activation rows per weight-row decode
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kSubBlock = 32;  // elements one lane decodes at a time

// The 32 activation codes at `codes` (32-byte aligned) as eight packed words.
__device__ __forceinline__ void load_codes(const int8_t* codes, int (&x)[8]) {
  const int4 low = reinterpret_cast<const int4*>(codes)[0];
  const int4 high = reinterpret_cast<const int4*>(codes)[1];
  x[0] = low.x, x[1] = low.y, x[2] = low.z, x[3] = low.w;
  x[4] = high.x, x[5] = high.y, x[6] = high.z, x[7] = high.w;
}

__device__ __forceinline__ int dot_words(const int (&w)[8], const int (&x)[8], int first, int count) {
  int sum = 0;
  for (int i = first; i < first + count; ++i) sum = __dp4a(w[i], x[i], sum);
  return sum;
}

__device__ __forceinline__ int sum_words(const int (&x)[8]) {
  int sum = 0;
  for (int i = 0; i < 8; ++i) sum = __dp4a(x[i], 0x01010101, sum);
  return sum;
}

// Lane l takes blocks l, l + 32, ...; per block and activation row, the CPU's two terms:
// (d * dx) * dot + m * s, s the block's fp16(d * sum(x codes)).
template <typename Format>
__device__ void accumulate_legacy(const uint8_t* weight_row, int64_t k, const int8_t* codes, const float* scales,
                                  const float* block_sums, int rows, int lane, float (&acc)[kRowsPerTile]) {
  const int64_t num_blocks = k / kQuantBlock;
  for (int64_t b = lane; b < num_blocks; b += kWarpSize) {
    const LegacyBlock block = Format::decode(weight_row + b * Format::kBytes);
#pragma unroll
    for (int r = 0; r < kRowsPerTile; ++r) {
      if (r >= rows) break;
      int x[8];
      load_codes(codes + r * k + b * kQuantBlock, x);
      const float dx = scales[r * num_blocks + b];
      acc[r] += (block.d * dx) * static_cast<float>(dot_words(block.w, x, 0, 8));
      if (Format::kHasMin) acc[r] += block.m * block_sums[r * num_blocks + b];
    }
  }
}

// ---------------------------------------------------------------------------------------
// K-quant super-blocks (256 elements): eight lanes share one super-block, lane j of the
// eight decoding elements [32 j, 32 j + 32). Their integer dots are summed across the
// eight lanes (exact), so each super-block adds the CPU's two f32 terms once.

// Sum over the eight lanes of a super-block group (lanes 8g .. 8g + 7).
__device__ __forceinline__ int sum_over_group(int value) {
  for (int offset = 1; offset < 8; offset <<= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

template <typename Format>
__device__ void accumulate_k(const uint8_t* weight_row, int64_t k, const int8_t* codes, const float* scales, int rows,
                             int lane, float (&acc)[kRowsPerTile]) {
  constexpr int kGroups = kWarpSize / 8;  // super-blocks per warp step
  const int64_t num_super = k / kQuantSuperBlock;
  const int j = lane % 8;
  for (int64_t base = 0; base < num_super; base += kGroups) {  // uniform across the warp
    const int64_t sb = base + lane / 8;
    const bool valid = sb < num_super;
    KSubBlock sub;
    if (valid) sub = Format::decode(weight_row + sb * Format::kBytes, j);
#pragma unroll
    for (int r = 0; r < kRowsPerTile; ++r) {
      if (r >= rows) break;
      int scaled_dot = 0;
      int min_dot = 0;
      if (valid) {
        int x[8];
        load_codes(codes + r * k + sb * kQuantSuperBlock + j * kSubBlock, x);
        scaled_dot = sub.scale_low * dot_words(sub.w, x, 0, 4) + sub.scale_high * dot_words(sub.w, x, 4, 4);
        if (Format::kHasMin) min_dot = sub.min * sum_words(x);
      }
      scaled_dot = sum_over_group(scaled_dot);
      if (Format::kHasMin) min_dot = sum_over_group(min_dot);
      if (valid && j == 0) {
        const float dx = scales[r * num_super + sb];
        acc[r] += (sub.d * dx) * static_cast<float>(scaled_dot);
        if (Format::kHasMin) acc[r] -= (sub.dmin * dx) * static_cast<float>(min_dot);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Kernels.

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// x (M, K) in blocks of 32 * kPerLane; one warp per block, lane l holding elements
// [kPerLane l, kPerLane (l + 1)). codes (M, K) i8, scales (M * K / block) f32: the CPU's
// quantize_row_scalar, operation for operation; sums (M * K / 32) i32: code sums per 32.
template <int kPerLane>
__global__ void quantize_activations_kernel(const float* x, int8_t* __restrict__ codes, float* __restrict__ scales,
                                            int32_t* __restrict__ sums, float* __restrict__ block_sums,
                                            int64_t num_blocks) {
  // Launched as a programmatic dependent: the blocks are resident before the kernel ahead
  // (which may still read the codes this kernel writes) has finished, and wait for it here.
  // Only then may the GEMV after it launch, so at most one kernel ahead is waiting.
  wait_for_producer();
  allow_dependents();  // the GEMV may launch and start loading its weights
  const int64_t block = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (block >= num_blocks) return;  // whole warps leave together
  const int64_t first = block * kWarpSize * kPerLane + lane * kPerLane;
  float values[kPerLane];
  float amax = 0.0F;
  for (int i = 0; i < kPerLane; ++i) {
    values[i] = __ldca(x + first + i);  // written by the kernel ahead (dependent_launch.cuh)
    const float magnitude = values[i] < 0.0F ? -values[i] : values[i];
    amax = magnitude > amax ? magnitude : amax;  // NaN is skipped
  }
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(kFullMask, amax, offset);
    amax = other > amax ? other : amax;
  }
  const float inverse = amax > 0.0F ? 127.0F / amax : 0.0F;
  int code_sum = 0;
  for (int i = 0; i < kPerLane; ++i) {
    float value = values[i] * inverse;
    value = value >= -127.0F ? value : -127.0F;  // NaN becomes -127, as on the CPU
    value = value <= 127.0F ? value : 127.0F;
    const int code = __float2int_rn(value);  // ties to even
    codes[first + i] = static_cast<int8_t>(code);
    code_sum += code;
  }
  // Lanes of one 32-element group: 32 / kPerLane consecutive lanes.
  for (int offset = 1; offset < kQuantBlock / kPerLane; offset <<= 1) {
    code_sum += __shfl_xor_sync(kFullMask, code_sum, offset);
  }
  if (lane % (kQuantBlock / kPerLane) == 0) sums[first / kQuantBlock] = code_sum;
  const float d = amax / 127.0F;
  if (lane == 0 && kPerLane * kWarpSize == kQuantBlock) {  // a legacy block: ggml's f16 d and s
    scales[block] = __half2float(__float2half_rn(d));
    block_sums[block] = __half2float(__float2half_rn(d * static_cast<float>(code_sum)));
  } else if (lane == 0) {
    scales[block] = d;
  }
}

// out (M, N): warp w of the grid takes weight row n = w for activation rows
// [kRowsPerTile * blockIdx.y, + kRowsPerTile); lanes split the row's blocks.
template <typename Format, bool kKQuant>
__global__ void quantized_matmul_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes,
                                        const int8_t* __restrict__ codes, const float* __restrict__ scales,
                                        const float* __restrict__ block_sums, float* __restrict__ out, int64_t m,
                                        int64_t n, int64_t k) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (col >= n) return;  // whole warps leave together
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * kRowsPerTile;
  const int rows = static_cast<int>(std::min<int64_t>(kRowsPerTile, m - first_row));
  const int64_t scales_per_row = k / (kKQuant ? kQuantSuperBlock : kQuantBlock);
  float acc[kRowsPerTile] = {};
  const uint8_t* weight_row = weight + col * row_bytes;
  const int8_t* tile_codes = codes + first_row * k;
  const float* tile_scales = scales + first_row * scales_per_row;
  if constexpr (kKQuant) {
    accumulate_k<Format>(weight_row, k, tile_codes, tile_scales, rows, lane, acc);
  } else {
    accumulate_legacy<Format>(weight_row, k, tile_codes, tile_scales, block_sums + first_row * (k / kQuantBlock), rows,
                              lane, acc);
  }
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    if (r >= rows) break;
    const float total = warp_sum(acc[r]);
    if (lane == 0) out[(first_row + r) * n + col] = total;
  }
}

// Plain weights (N, K) of type W: the same decomposition, x used unquantised.
template <typename W>
__global__ void plain_weight_matmul_kernel(const W* __restrict__ weight, const float* __restrict__ x,
                                           float* __restrict__ out, int64_t m, int64_t n, int64_t k) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (col >= n) return;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * kRowsPerTile;
  const int rows = static_cast<int>(std::min<int64_t>(kRowsPerTile, m - first_row));
  float acc[kRowsPerTile] = {};
  for (int64_t i = lane; i < k; i += kWarpSize) {
    const float w = load_float(weight + col * k + i);
#pragma unroll
    for (int r = 0; r < kRowsPerTile; ++r) {
      if (r < rows) acc[r] += w * x[(first_row + r) * k + i];
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    if (r >= rows) break;
    const float total = warp_sum(acc[r]);
    if (lane == 0) out[(first_row + r) * n + col] = total;
  }
}

// bf16 / f16 weights (N, K), K a multiple of 8, 16-byte aligned: the decode GEMV. Each lane
// reads 16 bytes (8 weights) per step, four steps in flight, so a warp streams its weight
// row at full width; x rows are read as float4 pairs (they stay in L1/L2).
constexpr int kHalfVector = 8;

__device__ __forceinline__ float2 to_float2(__nv_bfloat162 pair) { return __bfloat1622float2(pair); }
__device__ __forceinline__ float2 to_float2(__half2 pair) { return __half22float2(pair); }

template <typename Pair>
__global__ void half_weight_matmul_kernel(const uint4* __restrict__ weight, const float* __restrict__ x,
                                          float* __restrict__ out, int64_t m, int64_t n, int64_t k) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (col >= n) return;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * kRowsPerTile;
  const int rows = static_cast<int>(std::min<int64_t>(kRowsPerTile, m - first_row));
  const int64_t vectors = k / kHalfVector;
  const uint4* row = weight + col * vectors;
  float acc[kRowsPerTile] = {};
  constexpr int kUnroll = 4;
  for (int64_t base = 0; base < vectors; base += kWarpSize * kUnroll) {
    uint4 w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * kWarpSize + lane;
      w[u] = v < vectors ? __ldg(row + v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * kWarpSize + lane;
      if (v >= vectors) break;
      const Pair* pairs = reinterpret_cast<const Pair*>(&w[u]);
      float2 wf[4];
#pragma unroll
      for (int p = 0; p < 4; ++p) wf[p] = to_float2(pairs[p]);
#pragma unroll
      for (int r = 0; r < kRowsPerTile; ++r) {
        if (r >= rows) break;
        const float4* xs = reinterpret_cast<const float4*>(x + (first_row + r) * k + v * kHalfVector);
        const float4 a = xs[0];
        const float4 b = xs[1];
        acc[r] += wf[0].x * a.x + wf[0].y * a.y + wf[1].x * a.z + wf[1].y * a.w + wf[2].x * b.x + wf[2].y * b.y +
                  wf[3].x * b.z + wf[3].y * b.w;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerTile; ++r) {
    if (r >= rows) break;
    const float total = warp_sum(acc[r]);
    if (lane == 0) out[(first_row + r) * n + col] = total;
  }
}

dim3 matmul_grid(int64_t m, int64_t n) {
  const int64_t row_tiles = (m + kRowsPerTile - 1) / kRowsPerTile;
  ANVIL_CHECK(row_tiles <= 65535, "cuda quantized_matmul: ", m, " activation rows exceed the grid (max ",
              65535 * kRowsPerTile, ")");
  return {static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(row_tiles)};
}

template <typename Format, bool kKQuant>
void launch_format(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  const int64_t row_bytes = dtype_bytes_for(args.weight_dtype, args.k);
  quantized_matmul_kernel<Format, kKQuant><<<matmul_grid(args.m, args.n), kWarpsPerBlock * kWarpSize, 0, stream>>>(
      static_cast<const uint8_t*>(args.weight), row_bytes, acts.codes, acts.scales, acts.block_sums, args.out, args.m,
      args.n, args.k);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_quantize_activations(const float* x, int64_t m, int64_t k, const QuantizedActivations& acts,
                                 cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t num_blocks = m * k / acts.block;
  const int64_t grid = (num_blocks * kWarpSize + kThreads - 1) / kThreads;
  // A programmatic dependent (see quantize_activations_kernel): its blocks are resident and
  // start the moment the kernel ahead ends, without a launch gap.
  if (acts.block == kQuantSuperBlock) {
    launch_dependent(quantize_activations_kernel<kQuantSuperBlock / kWarpSize>, static_cast<unsigned>(grid), kThreads,
                     0, stream, x, acts.codes, acts.scales, acts.sums, acts.block_sums, num_blocks);
  } else {
    launch_dependent(quantize_activations_kernel<kQuantBlock / kWarpSize>, static_cast<unsigned>(grid), kThreads, 0,
                     stream, x, acts.codes, acts.scales, acts.sums, acts.block_sums, num_blocks);
  }
}

bool quantized_matmul_supported(DType weight_dtype) {
  switch (weight_dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return true;
    default:
      return false;
  }
}

QuantizedActivationLayout activation_layout(DType weight_dtype, int64_t m, int64_t k) {
  QuantizedActivationLayout layout;
  layout.block = dtype_info(weight_dtype).block_elems == kQuantSuperBlock ? kQuantSuperBlock : kQuantBlock;
  constexpr size_t kAlign = 256;
  const auto align = [](size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; };
  layout.scales_offset = align(static_cast<size_t>(m * k));
  layout.sums_offset = align(layout.scales_offset + static_cast<size_t>(m * (k / layout.block)) * sizeof(float));
  layout.block_sums_offset = align(layout.sums_offset + static_cast<size_t>(m * (k / kQuantBlock)) * sizeof(int32_t));
  layout.total_bytes = layout.block_sums_offset + static_cast<size_t>(m * (k / kQuantBlock)) * sizeof(float);
  return layout;
}

void launch_quantized_matmul(const QuantizedMatmulArgs& args, const QuantizedActivationLayout& layout, void* scratch,
                             cudaStream_t stream) {
  QuantizedActivations acts;
  acts.block = layout.block;
  acts.codes = static_cast<int8_t*>(scratch);
  acts.scales = reinterpret_cast<float*>(static_cast<char*>(scratch) + layout.scales_offset);
  acts.sums = reinterpret_cast<int32_t*>(static_cast<char*>(scratch) + layout.sums_offset);
  acts.block_sums = reinterpret_cast<float*>(static_cast<char*>(scratch) + layout.block_sums_offset);
  launch_quantize_activations(args.x, args.m, args.k, acts, stream);
  launch_quantized_matmul_codes(args, acts, stream);
}

QuantizedActivations activations_at(void* data, DType activation_dtype, int64_t m, int64_t k) {
  ANVIL_CHECK(reinterpret_cast<uintptr_t>(data) % 16 == 0, "cuda quantized_matmul: ", dtype_name(activation_dtype),
              " activations must start 16-byte aligned");
  const ActivationLayout layout = activation_layout(activation_dtype, m * k);
  auto* bytes = static_cast<char*>(data);
  QuantizedActivations acts;
  acts.block = layout.block;
  acts.codes = reinterpret_cast<int8_t*>(bytes);
  acts.scales = reinterpret_cast<float*>(bytes + layout.scales_offset);
  acts.sums = reinterpret_cast<int32_t*>(bytes + layout.sums_offset);
  acts.block_sums = layout.block == kQuantBlock ? reinterpret_cast<float*>(bytes + layout.block_sums_offset) : nullptr;
  return acts;
}

void launch_quantized_matmul_codes(const QuantizedMatmulArgs& args, const QuantizedActivations& acts,
                                   cudaStream_t stream) {
  if (args.m >= kMmaMinRows) {
    launch_quantized_matmul_mma(args, acts, stream);
    return;
  }
  if (launch_decode_gemv(args, &acts, stream)) return;  // M = 1
  switch (args.weight_dtype) {
    case DType::Q8_0:
      return launch_format<Q8_0Format, false>(args, acts, stream);
    case DType::Q4_0:
      return launch_format<Q4_0Format, false>(args, acts, stream);
    case DType::Q4_1:
      return launch_format<Q4_1Format, false>(args, acts, stream);
    case DType::Q5_0:
      return launch_format<Q5_0Format, false>(args, acts, stream);
    case DType::Q5_1:
      return launch_format<Q5_1Format, false>(args, acts, stream);
    case DType::Q4_K:
      return launch_format<Q4_KFormat, true>(args, acts, stream);
    case DType::Q5_K:
      return launch_format<Q5_KFormat, true>(args, acts, stream);
    case DType::Q6_K:
      return launch_format<Q6_KFormat, true>(args, acts, stream);
    default:
      throw make_error("cuda quantized_matmul: weight dtype ", dtype_name(args.weight_dtype),
                       " is not block-quantized");
  }
}

void launch_plain_weight_matmul(const QuantizedMatmulArgs& args, cudaStream_t stream) {
  if (launch_decode_gemv(args, nullptr, stream)) return;  // M = 1, f16/bf16
  const bool aligned = reinterpret_cast<uintptr_t>(args.weight) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(args.x) % 16 == 0 && args.k % kHalfVector == 0;
  if (aligned && (args.weight_dtype == DType::BF16 || args.weight_dtype == DType::F16)) {
    const auto* weight = static_cast<const uint4*>(args.weight);
    if (args.weight_dtype == DType::BF16) {
      half_weight_matmul_kernel<__nv_bfloat162><<<matmul_grid(args.m, args.n), kWarpsPerBlock * kWarpSize, 0, stream>>>(
          weight, args.x, args.out, args.m, args.n, args.k);
    } else {
      half_weight_matmul_kernel<__half2><<<matmul_grid(args.m, args.n), kWarpsPerBlock * kWarpSize, 0, stream>>>(
          weight, args.x, args.out, args.m, args.n, args.k);
    }
    ANVIL_CUDA_CHECK_LAUNCH();
    return;
  }
  dispatch_float_dtype(args.weight_dtype, "cuda quantized_matmul", [&](auto weight_type) {
    using W = decltype(weight_type);
    plain_weight_matmul_kernel<W><<<matmul_grid(args.m, args.n), kWarpsPerBlock * kWarpSize, 0, stream>>>(
        static_cast<const W*>(args.weight), args.x, args.out, args.m, args.n, args.k);
    ANVIL_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace anvil::cuda
