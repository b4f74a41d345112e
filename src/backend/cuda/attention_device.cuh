#pragma once
// Device-side pieces shared by the CUDA attention kernels (attention_*.cu): the argument
// block every kernel takes, index helpers for the (B, T, H, D) layouts, element
// conversions, warp reductions, and thin wrappers over the PTX the tensor-core kernels use
// (cp.async, ldmatrix, mma.sync m16n8k16 with f32 accumulate). Also the entry points of
// the two implementations, called by the dispatcher in attention_kernels.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil::cuda::attention {

constexpr float kLog2e = 1.4426950408889634F;
constexpr float kLn2 = 0.6931471805599453F;

// Everything a kernel needs about one call. Pointers are typed by the kernel's template
// (the storage dtype); unused ones are null. q/out/dout/dq (B, T, Hq, D); k/v/dk/dv
// (B, T, Hkv, D); lse/delta (B, Hq, T) f32.
struct Args {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // forward: may be null (not wanted)
  const void* dout = nullptr;
  float* delta = nullptr;  // rowsum(dout * out), written by the pre-pass, read by the backward
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  int batch = 0;
  int seq = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  float scale = 1.0F;       // resolved softmax scale
  float scale_log2 = 1.0F;  // scale * log2(e): scores are kept in the exp2 domain
  bool causal = true;

  [[nodiscard]] __host__ __device__ int group() const { return q_heads / kv_heads; }
  // Element offset of row (b, t, h) of q/out/dout/dq.
  [[nodiscard]] __device__ int64_t q_offset(int b, int t, int h) const {
    return ((static_cast<int64_t>(b) * seq + t) * q_heads + h) * head_dim;
  }
  // Element offset of row (b, t, kv head h) of k/v/dk/dv.
  [[nodiscard]] __device__ int64_t kv_offset(int b, int t, int h) const {
    return ((static_cast<int64_t>(b) * seq + t) * kv_heads + h) * head_dim;
  }
  // Offset of the (b, h) row of lse/delta (T entries).
  [[nodiscard]] __device__ int64_t stat_offset(int b, int h) const {
    return (static_cast<int64_t>(b) * q_heads + h) * seq;
  }
};

// ---- Element conversions (compute is f32; stores round once) ----

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// Two floats as one 32-bit register of two 16-bit values, `lo` in the low half (the
// element with the smaller column index in an mma fragment).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <typename T>
__device__ __forceinline__ float2 unpack2(uint32_t bits);
template <>
__device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t bits) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits));
}
template <>
__device__ __forceinline__ float2 unpack2<__half>(uint32_t bits) {
  return __half22float2(*reinterpret_cast<const __half2*>(&bits));
}

// 2^x as the bare MUFU instruction with flush-to-zero (exp2f adds scaling steps for
// denormal results). The softmax exponents are <= 0, so only results below 2^-126 differ:
// they flush to 0, far below what an f32 row sum of terms up to 1 can register.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- Warp reductions ----

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffU, x, offset);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffU, x, offset));
  return x;
}
// Over the 4 lanes of a quad (the lanes holding one row of an mma accumulator).
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffU, x, 1);
  return x + __shfl_xor_sync(0xffffffffU, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffU, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffU, x, 2));
}

// ---- PTX wrappers for the tensor-core kernels ----

__device__ __forceinline__ uint32_t smem_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (then `src` is not read).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
// 4 bytes global -> shared, zero-filled when !valid.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most `kPending` committed groups of this thread are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Four 8x8 16-bit matrices; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}
// Same, each matrix transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

// c (16x8 f32) += a (16x16) @ b (16x8), a and b in T (bf16 or f16).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The accumulators of two adjacent 16x8 tiles (columns 0-7 and 8-15) as the A operand
// (16x16) of the next mma, rounded to T.
template <typename T>
__device__ __forceinline__ void accumulators_to_a(uint32_t (&a)[4], const float (&left)[4], const float (&right)[4]) {
  a[0] = pack2<T>(left[0], left[1]);
  a[1] = pack2<T>(left[2], left[3]);
  a[2] = pack2<T>(right[0], right[1]);
  a[3] = pack2<T>(right[2], right[3]);
}

// Row stride (elements) of a (rows, kHeadDim) 16-bit tile in shared memory: padded by 16 B
// so that the 8 row addresses of one ldmatrix matrix fall in 8 different 16-byte bank groups.
template <int kHeadDim>
constexpr int kTileStride = kHeadDim + 8;

// Queues the cp.async copy of rows first .. first + kRows - 1 of one head (row t at
// base + t * row_step, kHeadDim elements of T) into dst (kRows, kTileStride); rows at or
// past seq are zero-filled. All kThreads threads of the block take part.
template <typename T, int kHeadDim, int kRows, int kThreads>
__device__ __forceinline__ void load_tile_async(T* dst, const T* base, int64_t row_step, int first, int seq) {
  constexpr int kChunksPerRow = kHeadDim / 8;  // 16-byte chunks
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "tile chunks must split evenly over the block");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int id = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const int t = first + r;
    const bool valid = t < seq;
    cp_async_16(dst + r * kTileStride<kHeadDim> + c, base + (valid ? t * row_step + c : 0), valid);
  }
}

// ldmatrix row addresses (element offsets into a tile of row stride `stride`) for the
// three operand shapes of m16n8k16, given the 16-row / 16-column origin of the block:
// A (16x16, rows = M): registers a0..a3.
__device__ __forceinline__ int a_frag_offset(int lane, int row0, int col0, int stride) {
  return (row0 + (lane & 15)) * stride + col0 + (lane >> 4) * 8;
}
// B from a tile stored (n, k) row-major (e.g. K for Q K^T): two n-tiles of 8, registers
// {b0, b1} of n-tile 0 then of n-tile 1.
__device__ __forceinline__ int b_frag_offset(int lane, int n0, int k0, int stride) {
  return (n0 + (lane & 7) + ((lane >> 4) << 3)) * stride + k0 + ((lane >> 3) & 1) * 8;
}
// B from a tile stored (k, n) row-major, loaded with ldmatrix .trans (e.g. V for P V):
// two n-tiles of 8, registers {b0, b1} of n-tile 0 then of n-tile 1.
__device__ __forceinline__ int bt_frag_offset(int lane, int k0, int n0, int stride) {
  return (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * stride + n0 + (lane >> 4) * 8;
}

// acc (kMTiles x kN / 8 n-tiles of m16n8) = A B^T for one warp: A is kMTiles * 16 rows of
// a (rows, kD) tile at a_rows, B the first kN rows of the (rows, kD) tile b_tile (e.g.
// S = Q K^T, dP = dout V^T). Steps of 16 B rows x 16 columns; the fragments of the next
// step are loaded while the mmas of this one run (A fragments change every kN / 16 steps).
template <typename T, int kD, int kN, int kMTiles, bool kSingleA = false>
__device__ __forceinline__ void warp_mma_abt(float (&acc)[kMTiles][kN / 8][4], const T* a_rows, const T* b_tile,
                                             int lane) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kPairs = kN / 16;  // ldmatrix_x4 of B per 16 columns: two n-tiles each
  constexpr int kSteps = kD / 16 * kPairs;
  // kSingleA: one set of A registers, each m-tile's reloaded right after its last mma of a
  // 16-column step (saves 4 kMTiles registers where the accumulators fill the file).
  uint32_t a[kSingleA ? 1 : 2][kMTiles][4];
  uint32_t bf[2][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kN / 8; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0F;
  }
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) ldmatrix_x4(a[0][mt], a_rows + a_frag_offset(lane, mt * 16, 0, kStride));
  ldmatrix_x4(bf[0], b_tile + b_frag_offset(lane, 0, 0, kStride));
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int ks = step / kPairs;
    const int np = step % kPairs;
    const int slot = kSingleA ? 0 : ks & 1;
    if (step + 1 < kSteps) {
      const int next_ks = (step + 1) / kPairs;
      const int next_np = (step + 1) % kPairs;
      if (!kSingleA && next_np == 0) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          ldmatrix_x4(a[next_ks & 1][mt], a_rows + a_frag_offset(lane, mt * 16, next_ks * 16, kStride));
        }
      }
      ldmatrix_x4(bf[(step + 1) & 1], b_tile + b_frag_offset(lane, next_np * 16, next_ks * 16, kStride));
    }
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      mma_16816<T>(acc[mt][2 * np], a[slot][mt], bf[step & 1][0], bf[step & 1][1]);
      mma_16816<T>(acc[mt][2 * np + 1], a[slot][mt], bf[step & 1][2], bf[step & 1][3]);
      if (kSingleA && np == kPairs - 1 && step + 1 < kSteps) {
        ldmatrix_x4(a[0][mt], a_rows + a_frag_offset(lane, mt * 16, (ks + 1) * 16, kStride));
      }
    }
  }
}

// acc (kMTiles x kD / 8 n-tiles) += A B for one warp: A given as bf16/f16 fragments
// (kMTiles x kK / 16, e.g. P or dS from accumulators_to_a), B the first kK rows of the
// (rows, kD) tile b_tile read with ldmatrix .trans (e.g. O += P V, dQ += dS K). The B
// fragments of the next step are loaded while the mmas of this one run.
template <typename T, int kD, int kK, int kMTiles>
__device__ __forceinline__ void warp_mma_ab(float (&acc)[kMTiles][kD / 8][4], const uint32_t (&a)[kMTiles][kK / 16][4],
                                            const T* b_tile, int lane) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kColPairs = kD / 16;
  constexpr int kSteps = kK / 16 * kColPairs;  // (kk, dp) pairs, dp fastest
  uint32_t bf[2][4];
  ldmatrix_x4_trans(bf[0], b_tile + bt_frag_offset(lane, 0, 0, kStride));
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int kk = step / kColPairs;
    const int dp = step % kColPairs;
    if (step + 1 < kSteps) {
      ldmatrix_x4_trans(bf[(step + 1) & 1], b_tile + bt_frag_offset(lane, (step + 1) / kColPairs * 16,
                                                                    (step + 1) % kColPairs * 16, kStride));
    }
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
      mma_16816<T>(acc[mt][2 * dp], a[mt][kk], bf[step & 1][0], bf[step & 1][1]);
      mma_16816<T>(acc[mt][2 * dp + 1], a[mt][kk], bf[step & 1][2], bf[step & 1][3]);
    }
  }
}

// Same, split into hi + lo parts (hi = round(x), lo = round(x - hi)) so that two mmas give
// the product with ~16 significant bits of the accumulators instead of 8 (bf16) or 11 (f16).
template <typename T>
__device__ __forceinline__ void accumulators_to_a_split(uint32_t (&hi)[4], uint32_t (&lo)[4], const float (&left)[4],
                                                        const float (&right)[4]) {
  accumulators_to_a<T>(hi, left, right);
  float2 rounded = unpack2<T>(hi[0]);
  lo[0] = pack2<T>(left[0] - rounded.x, left[1] - rounded.y);
  rounded = unpack2<T>(hi[1]);
  lo[1] = pack2<T>(left[2] - rounded.x, left[3] - rounded.y);
  rounded = unpack2<T>(hi[2]);
  lo[2] = pack2<T>(right[0] - rounded.x, right[1] - rounded.y);
  rounded = unpack2<T>(hi[3]);
  lo[3] = pack2<T>(right[2] - rounded.x, right[3] - rounded.y);
}

// ---- Entry points of the implementations (attention_generic.cu, attention_mma_*.cu) ----

// Generic path: any head_dim up to kGenericMaxHeadDim, f32/bf16/f16, f32 CUDA-core math.
constexpr int kGenericMaxHeadDim = 256;
// Forward; with `delta_mode` it writes delta = rowsum(dout * O) from the f32 O instead of
// out and lse (the exact Delta of the reference backward).
void generic_forward(const Args& args, DType dtype, bool delta_mode, cudaStream_t stream);
void generic_backward(const Args& args, DType dtype, cudaStream_t stream);  // needs delta

// Tensor-core path: bf16/f16, head_dim 64 or 128, 16-byte aligned pointers.
void mma_forward(const Args& args, DType dtype, bool delta_mode, cudaStream_t stream);
// Hopper (sm_90a) forward: out and lse only.
void wgmma_forward(const Args& args, DType dtype, cudaStream_t stream);
// The same warp-specialised (TMA producer warpgroup, attention_wgmma_tma_forward.cu);
// `variant` picks its tiling (AttentionShape::forward_variant).
void wgmma_tma_forward(const Args& args, DType dtype, int variant, cudaStream_t stream);
void mma_backward(const Args& args, DType dtype, cudaStream_t stream);  // needs delta
// One pass over the keys, dQ added up in `dq_accum` (B, T, Hq, D) f32 scratch, which the
// caller zeroes before and rounds into dq with dq_accum_to_dq after.
void mma_backward_fused(const Args& args, DType dtype, float* dq_accum, cudaStream_t stream);  // needs delta
// The same on Hopper's wgmma (sm_90a); at D = 128 its dq_accum is tiled (wgmma_dq_accum_elements
// floats, at most B * Hq * (T rounded up to 128) * D), and wgmma_dq_accum_to_dq (either head dim)
// rounds it into dq.
void wgmma_backward(const Args& args, DType dtype, float* dq_accum, cudaStream_t stream);  // needs delta
int64_t wgmma_dq_accum_elements(const Args& args);
void wgmma_dq_accum_to_dq(const Args& args, DType dtype, const float* dq_accum, cudaStream_t stream);
// dq = scale * dq_accum rounded to the storage dtype.
void dq_accum_to_dq(const Args& args, DType dtype, const float* dq_accum, cudaStream_t stream);

}  // namespace anvil::cuda::attention
