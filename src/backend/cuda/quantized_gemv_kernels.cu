// The decode GEMV of quantized_matmul (few activation rows): weight rows are streamed into
// shared memory with 16-byte cp.async copies (several chunks in flight per warp) and the
// blocks are decoded from there, so every weight byte costs one wide, coalesced load;
// reading the blocks straight from global memory with the decoders' 16-bit loads made
// each 34-byte block 17 requests. The arithmetic is quantized_matmul_kernels.cu's: each
// weight block's exact integer dot with the activation codes, then the CPU's f32 terms.
//
// Block of 4 warps = 4 / split weight rows; warp w takes row w / split and chunks
// w % split, + split, ... of the row (split > 1 for short outputs, so that enough warps
// stream at once); the split parts are added in order through shared memory.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "anvil/core/error.h"
#include "anvil/core/quant.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"
#include "cuda/quant_block_decode.cuh"
#include "cuda/quantized_gemv.h"

namespace anvil::cuda {
namespace {

using namespace qdecode;  // NOLINT(google-build-using-namespace): the block formats
using attention::cp_async_16;
using attention::cp_async_commit;
using attention::cp_async_wait;

constexpr int kWarpSize = 32;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kRows = 8;    // activation rows per block (blockIdx.y tiles them)
constexpr int kStages = 4;  // chunks per warp in flight (3) plus the one being decoded
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kSubBlock = 32;

// A chunk: 32 legacy blocks (one per lane) or 8 K-quant super-blocks (two steps of four,
// eight lanes each); its bytes are a multiple of 16 for every format.
template <typename Format, bool kKQuant>
struct Chunk {
  static constexpr int kBlocks = kKQuant ? 8 : kWarpSize;
  static constexpr int kBytes = kBlocks * Format::kBytes;
  static constexpr int kPieces = kBytes / 16;
  static_assert(kBytes % 16 == 0, "chunks must be whole 16-byte pieces");
};

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

__device__ __forceinline__ int sum_over_group(int value) {
  for (int offset = 1; offset < 8; offset <<= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// Legacy blocks: lane l decodes block first + l of the chunk (the CPU's two terms per
// activation row: (d * dx) * dot + m * s).
template <typename Format>
__device__ __forceinline__ void accumulate_legacy(const uint8_t* chunk, int64_t first, int64_t num_blocks, int64_t k,
                                                  const int8_t* codes, const float* scales, const float* block_sums,
                                                  int rows, int lane, float (&acc)[kRows]) {
  const int64_t b = first + lane;
  if (b >= num_blocks) return;
  const LegacyBlock block = Format::decode(chunk + lane * Format::kBytes);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    int x[8];
    load_codes(codes + r * k + b * kQuantBlock, x);
    const float dx = scales[r * num_blocks + b];
    acc[r] += (block.d * dx) * static_cast<float>(dot_words(block.w, x, 0, 8));
    if (Format::kHasMin) acc[r] += block.m * block_sums[r * num_blocks + b];
  }
}

// K-quant super-blocks: two steps of four, lane j = l % 8 of a group decoding elements
// [32 j, 32 j + 32); the group's integer dots are summed exactly before the f32 terms.
template <typename Format>
__device__ __forceinline__ void accumulate_k(const uint8_t* chunk, int64_t first, int64_t num_super, int64_t k,
                                             const int8_t* codes, const float* scales, int rows, int lane,
                                             float (&acc)[kRows]) {
  const int j = lane % 8;
#pragma unroll
  for (int step = 0; step < 2; ++step) {
    const int local = step * 4 + lane / 8;
    const int64_t sb = first + local;
    const bool valid = sb < num_super;
    KSubBlock sub;
    if (valid) sub = Format::decode(chunk + local * Format::kBytes, j);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
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

// Queues chunk `c` of a row (the last may be short; row_bytes is a multiple of 16).
template <typename Format, bool kKQuant>
__device__ __forceinline__ void load_chunk(const uint8_t* row, int64_t row_bytes, int64_t c, uint8_t* dst, int lane) {
  using Ch = Chunk<Format, kKQuant>;
  const int64_t offset = c * Ch::kBytes;
  const int64_t pieces = std::min<int64_t>(Ch::kPieces, (row_bytes - offset) / 16);
  for (int p = lane; p < pieces; p += kWarpSize) cp_async_16(dst + p * 16, row + offset + p * 16, true);
}

// out (M, N): block (row group, activation row tile).
template <typename Format, bool kKQuant>
__global__ void __launch_bounds__(kThreads)
    staged_gemv_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes, const int8_t* __restrict__ codes,
                       const float* __restrict__ scales, const float* __restrict__ block_sums, float* __restrict__ out,
                       int64_t m, int64_t n, int64_t k, int split) {
  using Ch = Chunk<Format, kKQuant>;
  __shared__ __align__(16) uint8_t stages[kWarps][kStages][Ch::kBytes];
  __shared__ float parts[kWarps][kRows];
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * (kWarps / split) + warp / split;
  const int part = warp % split;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * kRows;
  const int rows = static_cast<int>(std::min<int64_t>(kRows, m - first_row));
  const int64_t num_blocks = k / (kKQuant ? kQuantSuperBlock : kQuantBlock);
  const int64_t chunks = (num_blocks + Ch::kBlocks - 1) / Ch::kBlocks;
  // This warp's chunks: part, part + split, ... (none for a column past n).
  const int64_t mine = col < n && part < chunks ? (chunks - part + split - 1) / split : 0;
  const uint8_t* row = weight + col * row_bytes;
  const int8_t* tile_codes = codes + first_row * k;
  const float* tile_scales = scales + first_row * num_blocks;
  const float* tile_sums = kKQuant ? nullptr : block_sums + first_row * num_blocks;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < mine) load_chunk<Format, kKQuant>(row, row_bytes, part + s * split, stages[warp][s], lane);
    cp_async_commit();
  }
  float acc[kRows] = {};
  for (int64_t i = 0; i < mine; ++i) {
    cp_async_wait<kStages - 2>();
    __syncwarp();  // chunk i landed for every lane; the buffer of chunk i - 1 is free
    const int64_t ahead = i + kStages - 1;
    if (ahead < mine) {
      load_chunk<Format, kKQuant>(row, row_bytes, part + ahead * split, stages[warp][ahead % kStages], lane);
    }
    cp_async_commit();
    const uint8_t* chunk = stages[warp][i % kStages];
    const int64_t first = (part + i * split) * Ch::kBlocks;
    if constexpr (kKQuant) {
      accumulate_k<Format>(chunk, first, num_blocks, k, tile_codes, tile_scales, rows, lane, acc);
    } else {
      accumulate_legacy<Format>(chunk, first, num_blocks, k, tile_codes, tile_scales, tile_sums, rows, lane, acc);
    }
  }
  cp_async_wait<0>();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    const float total = warp_sum(acc[r]);
    if (lane == 0) parts[warp][r] = total;
  }
  __syncthreads();
  if (part != 0 || col >= n || lane >= rows) return;
  float total = 0.0F;
  for (int p = 0; p < split; ++p) total += parts[warp + p][lane];  // the parts in order
  out[(first_row + lane) * n + col] = total;
}

template <typename Format, bool kKQuant>
void launch_format(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, int64_t row_bytes,
                   cudaStream_t stream) {
  const int split = gemv_split(args.n);
  const int64_t row_tiles = (args.m + kRows - 1) / kRows;
  const dim3 grid(static_cast<unsigned>((args.n * split + kWarps - 1) / kWarps), static_cast<unsigned>(row_tiles));
  staged_gemv_kernel<Format, kKQuant>
      <<<grid, kThreads, 0, stream>>>(static_cast<const uint8_t*>(args.weight), row_bytes, acts.codes, acts.scales,
                                      acts.block_sums, args.out, args.m, args.n, args.k, split);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

int gemv_split(int64_t n) {
  // Enough warps in flight for the H100's memory (132 SMs): about 8192 for a GEMV.
  constexpr int64_t kWantedWarps = 8192;
  if (n >= kWantedWarps) return 1;
  if (n * 2 >= kWantedWarps) return 2;
  return 4;
}

bool launch_staged_gemv(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  const int64_t row_bytes = dtype_bytes_for(args.weight_dtype, args.k);
  if (args.m > kRows * 65535 || row_bytes % 16 != 0 || reinterpret_cast<uintptr_t>(args.weight) % 16 != 0) {
    return false;
  }
  switch (args.weight_dtype) {
    case DType::Q8_0:
      launch_format<Q8_0Format, false>(args, acts, row_bytes, stream);
      return true;
    case DType::Q4_0:
      launch_format<Q4_0Format, false>(args, acts, row_bytes, stream);
      return true;
    case DType::Q4_1:
      launch_format<Q4_1Format, false>(args, acts, row_bytes, stream);
      return true;
    case DType::Q5_0:
      launch_format<Q5_0Format, false>(args, acts, row_bytes, stream);
      return true;
    case DType::Q5_1:
      launch_format<Q5_1Format, false>(args, acts, row_bytes, stream);
      return true;
    case DType::Q4_K:
      launch_format<Q4_KFormat, true>(args, acts, row_bytes, stream);
      return true;
    case DType::Q5_K:
      launch_format<Q5_KFormat, true>(args, acts, row_bytes, stream);
      return true;
    case DType::Q6_K:
      launch_format<Q6_KFormat, true>(args, acts, row_bytes, stream);
      return true;
    default:
      return false;
  }
}

}  // namespace anvil::cuda
