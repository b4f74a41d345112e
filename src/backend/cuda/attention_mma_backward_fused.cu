// Tensor-core attention backward in one pass over the keys (FlashAttention-2's layout)
// for bf16/f16 storage and head dims 64 and 128. Needs delta = rowsum(dout * out) and a
// zeroed f32 dQ accumulator (B, T, Hq, D), which dq_accum_to_dq rounds into dq afterwards.
// With the scores in the exp2 domain, P = exp2(scale log2(e) q.k - lse log2(e)) and
// dS = P (dout.v - delta); dV = P^T dout, dK = scale dS^T Q, dQ = scale dS K.
//
// Grid (ceil(T / 128), Hkv, B), 8 warps: the key blocks of one head run side by side, so
// the Q / dout tiles they walk and the dQ rows they add to stay in L2. A block owns 128
// keys of one (b, kv head), K and V resident in shared memory, and walks the query heads
// of its group and, for each, the query tiles of Q = 64 (128 when D = 64) that can see its
// keys (Q, dout, lse, delta double-buffered with cp.async):
//  1. S = Q K^T and dP = dout V^T (Q x 128): warp w takes queries Q/2 (w % 2) .. + Q/2 - 1
//     and keys 32 (w / 2) .. + 31, so each K / V fragment feeds Q / 8 mmas;
//  2. P and dS, rounded to the storage dtype, go to shared memory (Q x 128 each);
//  3. dV += P^T dout and dK += dS^T Q (128 x D): warp w owns keys 32 (w % 4) .. + 31 and
//     half of the columns, accumulating in registers for the whole loop;
//  4. dQ += dS K (Q x D): warp w takes queries Q/2 (w % 2) .. and a quarter of the columns,
//     added to the f32 accumulator with vector atomics (the order of the additions between
//     key blocks is not fixed: dQ may differ in the last bits from run to run, as in
//     FlashAttention-2; dK and dV are written once and are deterministic).
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"

namespace anvil::cuda::attention {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockKeys = 128;
constexpr int kPStride = kBlockKeys + 8;  // P / dS tiles (kBlockQ, kBlockKeys), padded like kTileStride

template <int kD, int kBlockQ>
constexpr size_t fused_smem_bytes() {
  // K, V; 2 buffers of Q and dout; P and dS (16-bit); 2 buffers of lse and delta (f32).
  return sizeof(uint16_t) * (static_cast<size_t>(kTileStride<kD>) * (2 * kBlockKeys + 4 * kBlockQ) +
                             2 * static_cast<size_t>(kBlockQ) * kPStride) +
         sizeof(float) * 4 * kBlockQ;
}

// ldmatrix row address of an A fragment (16 x 16 at m0, k0) read transposed from a tile
// stored (k, m) row-major: with .trans, matrix j of the x4 is (m0 + 8 (j & 1), k0 + 8 (j / 2)).
__device__ __forceinline__ int at_frag_offset(int lane, int m0, int k0, int stride) {
  return (k0 + (lane & 7) + ((lane >> 4) << 3)) * stride + m0 + ((lane >> 3) & 1) * 8;
}

// acc (2 m-tiles x kCols / 8) += A B, A = the transpose of rows k of `at_tile` (stored
// (k = query, m = key), so A is 32 keys x kBlockQ queries), B = (kBlockQ, kCols) columns
// col0.. of `b_tile` (stored (query, D)). For dV += P^T dout and dK += dS^T Q.
template <typename T, int kD, int kBlockQ, int kCols>
__device__ __forceinline__ void warp_at_b(float (&acc)[2][kCols / 8][4], const T* at_tile, int key0, const T* b_tile,
                                          int col0, int lane) {
#pragma unroll
  for (int kk = 0; kk < kBlockQ / 16; ++kk) {
    uint32_t a[2][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
      ldmatrix_x4_trans(a[mt], at_tile + at_frag_offset(lane, key0 + 16 * mt, 16 * kk, kPStride));
#pragma unroll
    for (int dp = 0; dp < kCols / 16; ++dp) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b_tile + bt_frag_offset(lane, 16 * kk, col0 + 16 * dp, kTileStride<kD>));
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        mma_16816<T>(acc[mt][2 * dp], a[mt], bf[0], bf[1]);
        mma_16816<T>(acc[mt][2 * dp + 1], a[mt], bf[2], bf[3]);
      }
    }
  }
}

template <typename T, int kD, int kBlockQ>
__global__ void __launch_bounds__(kThreads, 1) mma_backward_fused_kernel(Args args, float* dq_accum) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kQMTiles = kBlockQ / 32;  // m-tiles of queries per warp in steps 1 and 4
  constexpr int kKvCols = kD / 2;         // dK / dV columns per warp
  constexpr int kDqCols = kD / 4;         // dQ columns per warp
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* k_s = reinterpret_cast<T*>(smem_raw);
  T* v_s = k_s + kBlockKeys * kStride;
  T* q_s = v_s + kBlockKeys * kStride;  // 2 buffers of (kBlockQ, kStride)
  T* do_s = q_s + 2 * kBlockQ * kStride;
  T* p_s = do_s + 2 * kBlockQ * kStride;  // (kBlockQ, kPStride)
  T* ds_s = p_s + kBlockQ * kPStride;
  float* lse_s = reinterpret_cast<float*>(ds_s + kBlockQ * kPStride);  // 2 buffers of kBlockQ
  float* delta_s = lse_s + 2 * kBlockQ;

  const int seq = args.seq;
  const int group = args.group();
  const int b = static_cast<int>(blockIdx.z);
  const int kv_h = static_cast<int>(blockIdx.y);
  const int k0 = static_cast<int>(blockIdx.x) * kBlockKeys;  // causal: earliest keys see most queries: first
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_lane = lane & 3;
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const int first_q_tile = args.causal ? k0 / kBlockQ : 0;
  const int q_tiles = max((seq + kBlockQ - 1) / kBlockQ - first_q_tile, 0);
  const int steps = group * q_tiles;  // (query head, query tile) pairs, head-major
  // Phase 1 / 4 layout (queries x keys or queries x D) and phase 3 layout (keys x D).
  const int sq0 = (kBlockQ / 2) * (warp & 1);  // this warp's first query of the tile
  const int sk0 = 32 * (warp >> 1);            // its first key (phase 1) of the block
  const int kv_key0 = 32 * (warp & 3);
  const int kv_col0 = kKvCols * (warp >> 2);
  const int dq_col0 = kDqCols * (warp >> 1);

  auto load_step = [&](int step, int buffer) {
    const int h = kv_h * group + step / q_tiles;
    const int q0 = (first_q_tile + step % q_tiles) * kBlockQ;
    const int64_t row0 = args.q_offset(b, 0, h);
    load_tile_async<T, kD, kBlockQ, kThreads>(q_s + buffer * kBlockQ * kStride, static_cast<const T*>(args.q) + row0,
                                              q_step, q0, seq);
    load_tile_async<T, kD, kBlockQ, kThreads>(do_s + buffer * kBlockQ * kStride,
                                              static_cast<const T*>(args.dout) + row0, q_step, q0, seq);
    if (threadIdx.x < kBlockQ) {
      const int t = q0 + static_cast<int>(threadIdx.x);
      const bool valid = t < seq;
      const int64_t stat = args.stat_offset(b, h) + (valid ? t : 0);
      cp_async_4(lse_s + buffer * kBlockQ + threadIdx.x, args.lse + stat, valid);
      cp_async_4(delta_s + buffer * kBlockQ + threadIdx.x, args.delta + stat, valid);
    }
  };

  load_tile_async<T, kD, kBlockKeys, kThreads>(k_s, static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h), kv_step,
                                               k0, seq);
  load_tile_async<T, kD, kBlockKeys, kThreads>(v_s, static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h), kv_step,
                                               k0, seq);
  if (steps > 0) load_step(0, 0);
  cp_async_commit();

  float dk[2][kKvCols / 8][4] = {};
  float dv[2][kKvCols / 8][4] = {};
  for (int step = 0; step < steps; ++step) {
    const int buffer = step & 1;
    if (step + 1 < steps) {
      load_step(step + 1, buffer ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int h = kv_h * group + step / q_tiles;
    const int q0 = (first_q_tile + step % q_tiles) * kBlockQ;
    const T* q_tile = q_s + buffer * kBlockQ * kStride;
    const T* do_tile = do_s + buffer * kBlockQ * kStride;
    const float* lse_tile = lse_s + buffer * kBlockQ;
    const float* delta_tile = delta_s + buffer * kBlockQ;

    // 1-2. S, dP; P and dS into shared memory.
    {
      float s[kQMTiles][4][4];
      float dp[kQMTiles][4][4];
      constexpr bool kSingleA = kQMTiles > 2;  // registers: S and dP are both live
      warp_mma_abt<T, kD, 32, kQMTiles, kSingleA>(s, q_tile + sq0 * kStride, k_s + sk0 * kStride, lane);
      warp_mma_abt<T, kD, 32, kQMTiles, kSingleA>(dp, do_tile + sq0 * kStride, v_s + sk0 * kStride, lane);
      // Some query of the tile is past T or before some key of the block, or a key past T.
      const bool need_mask = q0 + kBlockQ > seq || k0 + kBlockKeys > seq || (args.causal && q0 < k0 + kBlockKeys - 1);
#pragma unroll
      for (int mt = 0; mt < kQMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int qi = sq0 + 16 * mt + 8 * r + (lane >> 2);
          const int query = q0 + qi;
          const float lse2 = lse_tile[qi] * kLog2e;
          const float delta = delta_tile[qi];
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            float pv[2];
            float dsv[2];
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int key = k0 + sk0 + 8 * nt + 2 * quad_lane + c;
              const bool visible = !need_mask || (query < seq && key < seq && (!args.causal || key <= query));
              const float p = visible ? fast_exp2(fmaf(s[mt][nt][2 * r + c], args.scale_log2, -lse2)) : 0.0F;
              pv[c] = p;
              dsv[c] = p * (dp[mt][nt][2 * r + c] - delta);
            }
            const int offset = qi * kPStride + sk0 + 8 * nt + 2 * quad_lane;
            *reinterpret_cast<uint32_t*>(p_s + offset) = pack2<T>(pv[0], pv[1]);
            *reinterpret_cast<uint32_t*>(ds_s + offset) = pack2<T>(dsv[0], dsv[1]);
          }
        }
      }
    }
    __syncthreads();

    // 3. dV += P^T dout; dK += dS^T Q.
    warp_at_b<T, kD, kBlockQ, kKvCols>(dv, p_s, kv_key0, do_tile, kv_col0, lane);
    warp_at_b<T, kD, kBlockQ, kKvCols>(dk, ds_s, kv_key0, q_tile, kv_col0, lane);

    // 4. dQ += dS K, into the f32 accumulator.
    {
      float dq[kQMTiles][kDqCols / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kBlockKeys / 16; ++kk) {
        uint32_t a[kQMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kQMTiles; ++mt)
          ldmatrix_x4(a[mt], ds_s + a_frag_offset(lane, sq0 + 16 * mt, 16 * kk, kPStride));
#pragma unroll
        for (int dp = 0; dp < kDqCols / 16; ++dp) {
          uint32_t bf[4];
          ldmatrix_x4_trans(bf, k_s + bt_frag_offset(lane, 16 * kk, dq_col0 + 16 * dp, kStride));
#pragma unroll
          for (int mt = 0; mt < kQMTiles; ++mt) {
            mma_16816<T>(dq[mt][2 * dp], a[mt], bf[0], bf[1]);
            mma_16816<T>(dq[mt][2 * dp + 1], a[mt], bf[2], bf[3]);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < kQMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int query = q0 + sq0 + 16 * mt + 8 * r + (lane >> 2);
          if (query < seq) {
            float* row = dq_accum + args.q_offset(b, query, h) + dq_col0 + 2 * quad_lane;
#pragma unroll
            for (int nt = 0; nt < kDqCols / 8; ++nt) {
              atomicAdd(reinterpret_cast<float2*>(row + 8 * nt), make_float2(dq[mt][nt][2 * r], dq[mt][nt][2 * r + 1]));
            }
          }
        }
      }
    }
    __syncthreads();  // P, dS and the buffer are consumed before the next step overwrites them
  }
  if (steps == 0) cp_async_wait<0>();  // the K/V loads are still ours to wait for
  __syncthreads();                     // every warp is done with K and V: stage dK / dV there

  T* dk_stage = k_s;
  T* dv_stage = v_s;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kKvCols / 8; ++nt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int offset = (kv_key0 + 16 * mt + 8 * r + (lane >> 2)) * kStride + kv_col0 + 8 * nt + 2 * quad_lane;
        *reinterpret_cast<uint32_t*>(dk_stage + offset) =
            pack2<T>(dk[mt][nt][2 * r] * args.scale, dk[mt][nt][2 * r + 1] * args.scale);
        *reinterpret_cast<uint32_t*>(dv_stage + offset) = pack2<T>(dv[mt][nt][2 * r], dv[mt][nt][2 * r + 1]);
      }
    }
  }
  __syncthreads();
  constexpr int kChunksPerRow = kD / 8;
  T* dk_out = static_cast<T*>(args.dk);
  T* dv_out = static_cast<T*>(args.dv);
  for (int id = static_cast<int>(threadIdx.x); id < kBlockKeys * kChunksPerRow; id += kThreads) {
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const int key = k0 + r;
    if (key < seq) {
      const int64_t offset = args.kv_offset(b, key, kv_h) + c;
      *reinterpret_cast<uint4*>(dk_out + offset) = *reinterpret_cast<const uint4*>(dk_stage + r * kStride + c);
      *reinterpret_cast<uint4*>(dv_out + offset) = *reinterpret_cast<const uint4*>(dv_stage + r * kStride + c);
    }
  }
}

// dq = scale * dq_accum rounded to T; 8 elements (two float4) per thread.
template <typename T>
__global__ void __launch_bounds__(256) dq_convert_kernel(const float* dq_accum, T* dq, int64_t chunks, float scale) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const float4 a = reinterpret_cast<const float4*>(dq_accum)[2 * i];
  const float4 c = reinterpret_cast<const float4*>(dq_accum)[2 * i + 1];
  uint4 packed;
  packed.x = pack2<T>(a.x * scale, a.y * scale);
  packed.y = pack2<T>(a.z * scale, a.w * scale);
  packed.z = pack2<T>(c.x * scale, c.y * scale);
  packed.w = pack2<T>(c.z * scale, c.w * scale);
  reinterpret_cast<uint4*>(dq)[i] = packed;
}

template <typename T, int kD, int kBlockQ>
void fused_typed(const Args& args, float* dq_accum, cudaStream_t stream) {
  constexpr size_t kSmem = fused_smem_bytes<kD, kBlockQ>();
  auto kernel = mma_backward_fused_kernel<T, kD, kBlockQ>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  // The key blocks of one head are adjacent in launch order: the blocks in flight walk the same
  // Q / dout tiles and add into the same dQ rows, which stay in L2.
  ANVIL_CHECK(args.kv_heads <= 65535 && args.batch <= 65535, "cuda attention: too many heads or sequences");
  const dim3 grid(static_cast<unsigned>((args.seq + kBlockKeys - 1) / kBlockKeys), static_cast<unsigned>(args.kv_heads),
                  static_cast<unsigned>(args.batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(args, dq_accum);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T>
void convert_dq(const Args& args, const float* dq_accum, cudaStream_t stream) {
  const int64_t chunks = static_cast<int64_t>(args.batch) * args.seq * args.q_heads * args.head_dim / 8;
  dq_convert_kernel<T><<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(
      dq_accum, static_cast<T*>(args.dq), chunks, args.scale);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T>
void fused_by_dim(const Args& args, float* dq_accum, cudaStream_t stream) {
  // 128 queries per step at D = 64 (1-3% faster there than 64), 64 at D = 128 (registers).
  if (args.head_dim == 64) return fused_typed<T, 64, 128>(args, dq_accum, stream);
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no tensor-core backward for head_dim ", args.head_dim);
  fused_typed<T, 128, 64>(args, dq_accum, stream);
}

}  // namespace

void dq_accum_to_dq(const Args& args, DType dtype, const float* dq_accum, cudaStream_t stream) {
  if (dtype == DType::BF16) return convert_dq<__nv_bfloat16>(args, dq_accum, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no tensor-core backward for ", dtype_name(dtype));
  convert_dq<__half>(args, dq_accum, stream);
}

void mma_backward_fused(const Args& args, DType dtype, float* dq_accum, cudaStream_t stream) {
  if (dtype == DType::BF16) return fused_by_dim<__nv_bfloat16>(args, dq_accum, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no tensor-core backward for ", dtype_name(dtype));
  fused_by_dim<__half>(args, dq_accum, stream);
}

}  // namespace anvil::cuda::attention
