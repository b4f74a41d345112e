// The decode GEMV (M = 1). A profile of the one-warp-per-row kernels (quantized_matmul_kernels.cu)
// showed them latency-bound: one load of one row in flight per lane, half the warps resident
// (the registers of an 8-row activation tile), 62-74% of DRAM peak for bf16 and 36-55% for the
// quantized formats. Here a block of kThreads threads takes kRows consecutive weight rows and
// splits K over all of its threads, so each thread issues the loads of kRows rows (and, for
// f16/bf16, kUnroll steps) before it uses any of them, and the activations it reads serve
// every row. Weight bytes are streamed past L1 (f16/bf16) or read in aligned 32-bit words
// (quantized blocks, qdecode::load_words).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "anvil/core/quant.h"
#include "cuda/cuda_check.h"
#include "cuda/decode_gemv_kernels.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/quant_block_decode.cuh"

namespace anvil::cuda {
namespace {

using namespace qdecode;  // NOLINT(google-build-using-namespace): the block formats

constexpr int kWarpSize = 32;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarpSize;
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kSubBlock = 32;   // elements of one legacy block / K-quant sub-block
constexpr int kHalfVector = 8;  // f16/bf16 weights per 16-byte load

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// out[first_row + r] = the sum of acc[r] over the block's threads (a warp tree, then the
// warps in order), for the rows below n.
template <int kRows, int kBlockWarps = kWarps>
__device__ __forceinline__ void store_rows(const float (&acc)[kRows], float* out, int64_t first_row, int64_t n) {
  __shared__ float partial[kRows][kBlockWarps];
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0) partial[r][warp] = sum;
  }
  __syncthreads();
  if (threadIdx.x < kRows && first_row + threadIdx.x < n) {
    float total = 0.0F;
    for (int w = 0; w < kBlockWarps; ++w) total += partial[threadIdx.x][w];
    out[first_row + threadIdx.x] = total;
  }
}

// Row first_row + r, clamped to the last row (a partial last block reads a real row and
// does not store it).
__device__ __forceinline__ int64_t clamped_row(int64_t first_row, int r, int64_t n) {
  return first_row + r < n ? first_row + r : n - 1;
}

// A weight vector read once: no L1 allocation (x stays there), L2 fetches 256-byte runs.
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ float2 to_float2(__nv_bfloat162 pair) { return __bfloat1622float2(pair); }
__device__ __forceinline__ float2 to_float2(__half2 pair) { return __half22float2(pair); }

// The f32 dot of 8 f16/bf16 weights with x[0..8) (a, b), in the order of
// quantized_matmul_kernels.cu's half_weight_matmul_kernel.
template <typename Pair>
__device__ __forceinline__ float dot8(const uint4& w, const float4& a, const float4& b) {
  const Pair* pairs = reinterpret_cast<const Pair*>(&w);
  const float2 w0 = to_float2(pairs[0]);
  const float2 w1 = to_float2(pairs[1]);
  const float2 w2 = to_float2(pairs[2]);
  const float2 w3 = to_float2(pairs[3]);
  return w0.x * a.x + w0.y * a.y + w1.x * a.z + w1.y * a.w + w2.x * b.x + w2.y * b.y + w3.x * b.z + w3.y * b.w;
}

// weight (N, K) f16/bf16 as 16-byte vectors (K / 8 per row), x (K) f32: grid ceil(N / kRows),
// block kThreads; thread t takes vectors t, t + kThreads, ... of each of the block's rows.
template <typename Pair, int kRows, int kUnroll>
__global__ void __launch_bounds__(kThreads) half_gemv_kernel(const uint4* __restrict__ weight, const float* x,
                                                             float* __restrict__ out, int64_t n, int64_t vectors) {
  allow_dependents();  // the next kernel may launch into the slots this grid frees
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint4* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = weight + clamped_row(first_row, r, n) * vectors;
  const auto* x_vectors = reinterpret_cast<const float4*>(x);
  float acc[kRows] = {};
  bool waited = false;
  for (int64_t base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 w[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * kThreads;
#pragma unroll
      for (int r = 0; r < kRows; ++r) w[u][r] = v < vectors ? load_stream(rows[r] + v) : make_uint4(0, 0, 0, 0);
    }
    if (!waited) wait_for_producer(), waited = true;  // x comes from the previous kernel
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * kThreads;
      if (v >= vectors) break;
      const float4 a = __ldca(x_vectors + 2 * v);
      const float4 b = __ldca(x_vectors + 2 * v + 1);
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r] += dot8<Pair>(w[u][r], a, b);
    }
  }
  if (!waited) wait_for_producer();
  store_rows(acc, out, first_row, n);
}

// The 32 activation codes at `codes` (32-byte aligned) as eight packed words. The codes (and
// scales, sums, x) come from the kernel ahead: read with __ldca after wait_for_producer(), never
// through `const __restrict__` parameters, whose loads nvcc may hoist above the wait
// (dependent_launch.cuh).
__device__ __forceinline__ void load_codes(const int8_t* codes, int (&x)[8]) {
  const int4 low = __ldca(reinterpret_cast<const int4*>(codes));
  const int4 high = __ldca(reinterpret_cast<const int4*>(codes) + 1);
  x[0] = low.x, x[1] = low.y, x[2] = low.z, x[3] = low.w;
  x[4] = high.x, x[5] = high.y, x[6] = high.z, x[7] = high.w;
}

__device__ __forceinline__ int dot_words(const int (&w)[8], const int (&x)[8], int first, int count) {
  int sum = 0;
  for (int i = first; i < first + count; ++i) sum = __dp4a(w[i], x[i], sum);
  return sum;
}

// Legacy blocks (32 elements): grid ceil(N / kRows), block kBlockThreads; thread t takes
// blocks t, t + kBlockThreads, ... of each row. Per block and row the CPU's terms (d * dx) * dot (+ m * s).
template <typename Format, int kRows, int kBlockThreads, int kMinBlocks = 1>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocks)
    legacy_gemv_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes, const int8_t* codes, const float* scales,
                       const float* block_sums, float* __restrict__ out, int64_t n, int64_t num_blocks) {
  allow_dependents();  // the next kernel may launch into the slots this grid frees
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = weight + clamped_row(first_row, r, n) * row_bytes;
  float acc[kRows] = {};
  bool waited = false;
  for (int64_t b = threadIdx.x; b < num_blocks; b += kBlockThreads) {
    LegacyBlock blocks[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) blocks[r] = Format::decode(rows[r] + b * Format::kBytes);
    if (!waited) wait_for_producer(), waited = true;  // the codes come from the quantiser
    int x[8];
    load_codes(codes + b * kSubBlock, x);
    const float dx = __ldca(scales + b);
    const float s = Format::kHasMin ? __ldca(block_sums + b) : 0.0F;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      acc[r] += (blocks[r].d * dx) * static_cast<float>(dot_words(blocks[r].w, x, 0, 8));
      if (Format::kHasMin) acc[r] += blocks[r].m * s;
    }
  }
  if (!waited) wait_for_producer();
  store_rows<kRows, kBlockThreads / kWarpSize>(acc, out, first_row, n);
}

// Sum over the eight lanes of a super-block group (lanes 8g .. 8g + 7).
__device__ __forceinline__ int sum_over_group(int value) {
  for (int offset = 1; offset < 8; offset <<= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// K-quant super-blocks (256 elements, 8 sub-blocks): grid ceil(N / kRows), block kThreads;
// thread t takes sub-blocks t, t + kThreads, ... of each row, so eight consecutive lanes
// share a super-block; their integer dots are summed across the eight (exact) and the
// super-block adds the CPU's two f32 terms once. sums: the code sum of each 32 activations.
template <typename Format, int kRows>
__global__ void __launch_bounds__(kThreads)
    kquant_gemv_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes, const int8_t* codes, const float* scales,
                       const int32_t* sums, float* __restrict__ out, int64_t n, int64_t num_super) {
  allow_dependents();  // the next kernel may launch into the slots this grid frees
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = weight + clamped_row(first_row, r, n) * row_bytes;
  const int j = static_cast<int>(threadIdx.x % 8);
  const int64_t num_sub = num_super * 8;
  float acc[kRows] = {};
  for (int64_t base = 0; base < num_sub; base += kThreads) {  // uniform: every lane shuffles
    const int64_t u = base + threadIdx.x;
    const bool valid = u < num_sub;  // whole groups of eight (num_sub is a multiple of 8)
    const int64_t sb = u / 8;
    int scaled_dot[kRows] = {};
    int min_dot[kRows] = {};
    float d[kRows] = {};
    float dmin[kRows] = {};
    if (valid) {
      KSubBlock subs[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) subs[r] = Format::decode(rows[r] + sb * Format::kBytes, j);
      wait_for_producer();  // the codes come from the quantiser (repeated waits return at once)
      int x[8];
      load_codes(codes + u * kSubBlock, x);
      const int code_sum = Format::kHasMin ? __ldca(sums + u) : 0;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        scaled_dot[r] =
            subs[r].scale_low * dot_words(subs[r].w, x, 0, 4) + subs[r].scale_high * dot_words(subs[r].w, x, 4, 4);
        if (Format::kHasMin) min_dot[r] = subs[r].min * code_sum;
        d[r] = subs[r].d;
        dmin[r] = subs[r].dmin;
      }
    } else {
      wait_for_producer();
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      scaled_dot[r] = sum_over_group(scaled_dot[r]);
      if (Format::kHasMin) min_dot[r] = sum_over_group(min_dot[r]);
    }
    if (valid && j == 0) {
      const float dx = __ldca(scales + sb);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        acc[r] += (d[r] * dx) * static_cast<float>(scaled_dot[r]);
        if (Format::kHasMin) acc[r] -= (dmin[r] * dx) * static_cast<float>(min_dot[r]);
      }
    }
  }
  store_rows(acc, out, first_row, n);
}

// ---------------------------------------------------------------------------------------
// Q4_K and Q6_K with four lanes per super-block: lane q takes two sub-blocks that share their
// quant bytes (Q4_K: the low and high nibbles of qs[32 q, 32 q + 32), sub-blocks 2 q and
// 2 q + 1; Q6_K: quarters p and p + 2 of half h, q = 2 h + p, which share ql and qh), so
// each weight byte is loaded by one lane only, Q4_K's in three 16-byte loads.

struct KTerms {
  int scaled = 0;  // sum over the lane's sub-blocks of scale * dot(codes)
  int min = 0;     // sum of min * sum(codes) (Q4_K)
  float d = 0.0F;
  float dmin = 0.0F;
};

__device__ __forceinline__ uint4 load_vector(const uint8_t* p) { return *reinterpret_cast<const uint4*>(p); }

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
__device__ __forceinline__ int byte_of(const uint4& v, int i) {
  return static_cast<int>((word_of(v, i / 4) >> (8 * (i % 4))) & 0xFFU);
}

// 32 activation codes at `codes` (32-byte aligned) into x[8 * half, 8 * half + 8).
__device__ __forceinline__ void load_codes_into(const int8_t* codes, int (&x)[16], int half) {
  int part[8];
  load_codes(codes, part);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[8 * half + i] = part[i];
}

struct Q4KPair {
  static constexpr int kBytes = sizeof(BlockQ4_K);
  static constexpr bool kHasMin = true;
  static constexpr bool kNeedsAlignedRows = true;  // 16-byte loads
  struct Data {
    uint4 head;  // d, dmin, 12 packed scale / min bytes
    uint4 qs[2];
  };
  __device__ static Data load(const uint8_t* block, int q) {
    return {load_vector(block), {load_vector(block + 16 + 32 * q), load_vector(block + 32 + 32 * q)}};
  }
  __device__ static void codes(const int8_t* super_codes, int q, int (&x)[16]) {
    load_codes_into(super_codes + 64 * q, x, 0);
    load_codes_into(super_codes + 64 * q + 32, x, 1);
  }
  // ggml's get_scale_min_k4 for sub-block j of the packed bytes (head bytes 4..15).
  __device__ static void scale_min(const uint4& head, int j, int& scale, int& min) {
    const auto packed = [&](int i) { return byte_of(head, 4 + i); };
    if (j < 4) {
      scale = packed(j) & 63;
      min = packed(j + 4) & 63;
    } else {
      scale = (packed(j + 4) & 0x0F) | ((packed(j - 4) >> 6) << 4);
      min = (packed(j + 4) >> 4) | ((packed(j) >> 6) << 4);
    }
  }
  __device__ static KTerms terms(const Data& data, int q, const int (&x)[16], const int32_t* super_sums) {
    int low_dot = 0;
    int high_dot = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t word = word_of(data.qs[i / 4], i % 4);
      low_dot = __dp4a(static_cast<int>(word & 0x0F0F0F0FU), x[i], low_dot);
      high_dot = __dp4a(static_cast<int>((word >> 4) & 0x0F0F0F0FU), x[8 + i], high_dot);
    }
    int scale_low = 0, min_low = 0, scale_high = 0, min_high = 0;
    scale_min(data.head, 2 * q, scale_low, min_low);
    scale_min(data.head, 2 * q + 1, scale_high, min_high);
    KTerms out;
    out.scaled = scale_low * low_dot + scale_high * high_dot;
    out.min = min_low * __ldca(super_sums + 2 * q) + min_high * __ldca(super_sums + 2 * q + 1);
    out.d = __half2float(__ushort_as_half(static_cast<unsigned short>(data.head.x & 0xFFFFU)));
    out.dmin = __half2float(__ushort_as_half(static_cast<unsigned short>(data.head.x >> 16)));
    return out;
  }
};

struct Q6KPair {
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr bool kHasMin = false;
  static constexpr bool kNeedsAlignedRows = false;  // 210-byte blocks: aligned 32-bit words
  struct Data {
    uint32_t ql[8];        // ql[64 h + 32 p, + 32)
    uint32_t qh[8];        // qh[32 h, + 32)
    uint32_t scales_low;   // int8 scales 2 j, 2 j + 1 of the first sub-block (j = 4 h + p)
    uint32_t scales_high;  // of the second (j + 2)
    float d;
  };
  __device__ static Data load(const uint8_t* block, int q) {
    const int h = q / 2;
    const int p = q % 2;
    Data data;
    load_words(block + 64 * h + 32 * p, data.ql);
    load_words(block + 128 + 32 * h, data.qh);
    data.scales_low = load_u16(block + 192 + 2 * (4 * h + p));
    data.scales_high = load_u16(block + 192 + 2 * (4 * h + p + 2));
    data.d = load_f16(block + 208);
    return data;
  }
  __device__ static void codes(const int8_t* super_codes, int q, int (&x)[16]) {
    const int j = 4 * (q / 2) + q % 2;
    load_codes_into(super_codes + 32 * j, x, 0);
    load_codes_into(super_codes + 32 * (j + 2), x, 1);
  }
  __device__ static int scale(uint32_t pair, int which) { return static_cast<int8_t>((pair >> (8 * which)) & 0xFFU); }
  __device__ static KTerms terms(const Data& data, int q, const int (&x)[16], const int32_t* /*super_sums*/) {
    const int p = q % 2;
    int dots[4] = {};  // (first sub-block low 16, high 16), (second ...)
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const uint32_t first = (data.ql[i] & 0x0F0F0F0FU) | (((data.qh[i] >> (2 * p)) & 0x03030303U) << 4);
      const uint32_t second = ((data.ql[i] >> 4) & 0x0F0F0F0FU) | (((data.qh[i] >> (2 * p + 4)) & 0x03030303U) << 4);
      dots[i / 4] = __dp4a(static_cast<int>(__vsub4(first, 0x20202020U)), x[i], dots[i / 4]);
      dots[2 + i / 4] = __dp4a(static_cast<int>(__vsub4(second, 0x20202020U)), x[8 + i], dots[2 + i / 4]);
    }
    KTerms out;
    out.scaled = scale(data.scales_low, 0) * dots[0] + scale(data.scales_low, 1) * dots[1] +
                 scale(data.scales_high, 0) * dots[2] + scale(data.scales_high, 1) * dots[3];
    out.d = data.d;
    return out;
  }
};

// Sum over the four lanes of a super-block (lanes 4g .. 4g + 3).
__device__ __forceinline__ int sum_over_four(int value) {
  value += __shfl_xor_sync(kFullMask, value, 1);
  return value + __shfl_xor_sync(kFullMask, value, 2);
}

// grid ceil(N / kRows), block kBlockThreads; thread t takes the units (super-block, lane q)
// t, t + kBlockThreads, ... of each row; the four lanes' integer terms are summed (exact) and
// the super-block adds the CPU's f32 terms once, as in kquant_gemv_kernel. K = 4096 has 64
// units per row: blocks of 64 threads keep every thread busy.
template <typename Format, int kRows, int kBlockThreads>
__global__ void __launch_bounds__(kBlockThreads)
    kquant_pair_gemv_kernel(const uint8_t* __restrict__ weight, int64_t row_bytes, const int8_t* codes,
                            const float* scales, const int32_t* sums, float* __restrict__ out, int64_t n,
                            int64_t num_super) {
  allow_dependents();  // the next kernel may launch into the slots this grid frees
  constexpr int kLanes = 4;
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * kRows;
  const uint8_t* rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rows[r] = weight + clamped_row(first_row, r, n) * row_bytes;
  const int q = static_cast<int>(threadIdx.x % kLanes);
  const int64_t units = num_super * kLanes;
  float acc[kRows] = {};
  bool waited = false;
  for (int64_t base = 0; base < units; base += kBlockThreads) {  // uniform: every lane shuffles
    const int64_t u = base + threadIdx.x;
    const bool valid = u < units;  // whole groups of four
    const int64_t sb = u / kLanes;
    typename Format::Data data[kRows];
    if (valid) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) data[r] = Format::load(rows[r] + sb * Format::kBytes, q);
    }
    if (!waited) wait_for_producer(), waited = true;  // the codes come from the quantiser
    KTerms terms[kRows];
    if (valid) {
      int x[16];
      Format::codes(codes + sb * kQuantSuperBlock, q, x);
#pragma unroll
      for (int r = 0; r < kRows; ++r) terms[r] = Format::terms(data[r], q, x, sums + sb * 8);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      terms[r].scaled = sum_over_four(terms[r].scaled);
      if (Format::kHasMin) terms[r].min = sum_over_four(terms[r].min);
    }
    if (valid && q == 0) {
      const float dx = __ldca(scales + sb);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        acc[r] += (terms[r].d * dx) * static_cast<float>(terms[r].scaled);
        if (Format::kHasMin) acc[r] -= (terms[r].dmin * dx) * static_cast<float>(terms[r].min);
      }
    }
  }
  if (!waited) wait_for_producer();
  store_rows<kRows, kBlockThreads / kWarpSize>(acc, out, first_row, n);
}

unsigned row_blocks(int64_t n, int rows) { return static_cast<unsigned>((n + rows - 1) / rows); }

template <typename Pair>
void launch_half(const QuantizedMatmulArgs& args, cudaStream_t stream) {
  const auto* weight = static_cast<const uint4*>(args.weight);
  const int64_t vectors = args.k / kHalfVector;
  // Four rows per block once that still gives every SM several blocks; two for short outputs.
  if (args.n >= 8192) {
    launch_dependent(half_gemv_kernel<Pair, 4, 2>, row_blocks(args.n, 4), kThreads, 0, stream, weight, args.x, args.out,
                     args.n, vectors);
  } else {
    launch_dependent(half_gemv_kernel<Pair, 2, 4>, row_blocks(args.n, 2), kThreads, 0, stream, weight, args.x, args.out,
                     args.n, vectors);
  }
}

constexpr int kQuantRows = 4;
constexpr int kLongRowMinBlocks = 8;

// Rows of up to kThreads blocks (K <= 4096) take blocks of kThreads threads, each one block
// per row. Longer rows take the same blocks compiled for 8 per SM (at most 64 registers), so
// that N = 4096 is one wave (1024 blocks; at 7 per SM they were 1.1 waves, and the 64-thread
// blocks used before left half the threads idle: 4096 x 14336 from codes 77 -> 89% of copy
// for Q4_0, docs/perf.md).
template <typename Format>
void launch_legacy(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  const int64_t num_blocks = args.k / kQuantBlock;
  const auto launch = [&](auto kernel, int threads) {
    launch_dependent(kernel, row_blocks(args.n, kQuantRows), threads, 0, stream,
                     static_cast<const uint8_t*>(args.weight), dtype_bytes_for(args.weight_dtype, args.k), acts.codes,
                     acts.scales, acts.block_sums, args.out, args.n, num_blocks);
  };
  if (num_blocks <= kThreads) return launch(legacy_gemv_kernel<Format, kQuantRows, kThreads>, kThreads);
  launch(legacy_gemv_kernel<Format, kQuantRows, kThreads, kLongRowMinBlocks>, kThreads);
}

template <typename Format>
void launch_kquant(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  launch_dependent(kquant_gemv_kernel<Format, kQuantRows>, row_blocks(args.n, kQuantRows), kThreads, 0, stream,
                   static_cast<const uint8_t*>(args.weight), dtype_bytes_for(args.weight_dtype, args.k), acts.codes,
                   acts.scales, acts.sums, args.out, args.n, args.k / kQuantSuperBlock);
}

// Q4_K / Q6_K: the four-lane kernel, or the eight-lane one where Q4_K's rows are not 16-byte aligned.
template <typename Pair, typename Format>
void launch_kquant_pair(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream) {
  if (Pair::kNeedsAlignedRows && reinterpret_cast<uintptr_t>(args.weight) % 16 != 0) {
    return launch_kquant<Format>(args, acts, stream);
  }
  const auto run = [&](auto kernel, int rows, int threads) {
    launch_dependent(kernel, row_blocks(args.n, rows), threads, 0, stream, static_cast<const uint8_t*>(args.weight),
                     dtype_bytes_for(args.weight_dtype, args.k), acts.codes, acts.scales, acts.sums, args.out, args.n,
                     args.k / kQuantSuperBlock);
  };
  // Rows longer than 4096 (more units than 64 threads take in one step): 128 threads, with 2
  // rows per block for Q4_K and 4 for Q6_K. At 4096 x 14336 from codes (graph % of copy, one
  // call): Q6_K 72 -> 82%, Q4_K 68 -> 72% (docs/perf.md).
  if (args.k > 4096) {
    if constexpr (std::is_same_v<Pair, Q4KPair>) return run(kquant_pair_gemv_kernel<Pair, 2, 128>, 2, 128);
    return run(kquant_pair_gemv_kernel<Pair, 4, 128>, 4, 128);
  }
  // 64 threads: K = 4096 has 64 units per row; 4 rows (~128 registers, 8 blocks per SM) so that
  // N = 4096 is one wave of blocks.
  run(kquant_pair_gemv_kernel<Pair, 4, 64>, 4, 64);
}

}  // namespace

bool launch_decode_gemv(const QuantizedMatmulArgs& args, const QuantizedActivations* acts, cudaStream_t stream) {
  if (args.m != 1) return false;
  if (acts == nullptr) {
    const bool aligned = reinterpret_cast<uintptr_t>(args.weight) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(args.x) % 16 == 0 && args.k % kHalfVector == 0;
    if (!aligned) return false;
    if (args.weight_dtype == DType::BF16) return launch_half<__nv_bfloat162>(args, stream), true;
    if (args.weight_dtype == DType::F16) return launch_half<__half2>(args, stream), true;
    return false;
  }
  switch (args.weight_dtype) {
    case DType::Q8_0:
      return launch_legacy<Q8_0Format>(args, *acts, stream), true;
    case DType::Q4_0:
      return launch_legacy<Q4_0Format>(args, *acts, stream), true;
    case DType::Q4_1:
      return launch_legacy<Q4_1Format>(args, *acts, stream), true;
    case DType::Q5_0:
      return launch_legacy<Q5_0Format>(args, *acts, stream), true;
    case DType::Q5_1:
      return launch_legacy<Q5_1Format>(args, *acts, stream), true;
    case DType::Q4_K:
      return launch_kquant_pair<Q4KPair, Q4_KFormat>(args, *acts, stream), true;
    case DType::Q5_K:
      return launch_kquant<Q5_KFormat>(args, *acts, stream), true;
    case DType::Q6_K:
      return launch_kquant_pair<Q6KPair, Q6_KFormat>(args, *acts, stream), true;
    default:
      return false;
  }
}

}  // namespace anvil::cuda
