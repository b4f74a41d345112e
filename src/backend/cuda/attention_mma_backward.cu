// Tensor-core attention backward (FlashAttention-2 style) for bf16/f16 storage and head
// dims 64 and 128. Needs delta = rowsum(dout * out) (B, Hq, T) f32 from the pre-pass.
// With the scores in the exp2 domain, P = exp2(scale log2(e) q.k - lse log2(e)) and
// dS = P (dout.v - delta); then dV = P^T dout, dK = scale dS^T Q, dQ = scale dS K.
//
// Two kernels, both deterministic (no atomics; every sum in a fixed order):
//  - dK/dV: one block per 64 keys of one (b, kv head); warp w owns keys 16w .. 16w + 15.
//    It walks the query heads of the group in order and, for each, the query tiles that
//    can see its keys (Q, dout, lse, delta tiles double-buffered with cp.async), computing
//    S^T = K Q^T and dP^T = V dout^T per warp, then dV += P^T dout and dK += dS^T Q with
//    P^T / dS^T rounded to bf16/f16 as the A operands. dK/dV of a GQA group are summed
//    in registers, so each is written once.
//  - dQ: one block per 128 query rows of one (b, h), warp w owns rows 32w .. 32w + 31;
//    per key tile (K, V double-buffered) S = Q K^T, dP = dout V^T, then dQ += dS K.
// This recomputes S and dP once more than an atomic dQ would, in exchange for determinism.
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"

namespace anvil::cuda::attention {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockRows = 64;  // keys per dK/dV block: 16 per warp
// The dQ kernel: warps own two m16 tiles of query rows; keys per tile bounded by registers.
constexpr int kDqMTiles = 2;
constexpr int kDqWarpRows = 16 * kDqMTiles;
constexpr int kDqBlockQ = kWarps * kDqWarpRows;
template <int kD>
constexpr int kDqBlockK = kD <= 64 ? 64 : 32;

// Queries per tile of the dK/dV kernel: fewer for D = 128 to bound the registers (the
// dK and dV accumulators alone are 128 floats per thread there).
template <int kD>
constexpr int kDkdvBlockQ = kD <= 64 ? 64 : 32;

template <int kD>
constexpr size_t dkdv_smem_bytes() {
  // K, V (64 rows); 2 buffers of Q and dout (kDkdvBlockQ rows); 2 buffers of lse and delta.
  return sizeof(uint16_t) * static_cast<size_t>(kTileStride<kD>) *
         (2 * kBlockRows + 4 * kDkdvBlockQ<kD>)+sizeof(float) * 4 * kDkdvBlockQ<kD>;
}

template <int kD>
constexpr size_t dq_smem_bytes() {
  // Q, dout (kDqBlockQ rows); 2 buffers of K and V.
  return sizeof(uint16_t) * static_cast<size_t>(kTileStride<kD>) * (2 * kDqBlockQ + 4 * kDqBlockK<kD>);
}

// Grid (B * Hkv, ceil(T / 64)), 4 warps; see the file comment.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) mma_dkdv_kernel(Args args) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kBlockQ = kDkdvBlockQ<kD>;
  constexpr int kQueryTiles = kBlockQ / 8;  // n-tiles of S^T
  constexpr int kOutTiles = kD / 8;         // n-tiles of dK, dV
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* k_s = reinterpret_cast<T*>(smem_raw);
  T* v_s = k_s + kBlockRows * kStride;
  T* q_s = v_s + kBlockRows * kStride;  // 2 buffers of (kBlockQ, kStride)
  T* do_s = q_s + 2 * kBlockQ * kStride;
  float* lse_s = reinterpret_cast<float*>(do_s + 2 * kBlockQ * kStride);  // 2 buffers of kBlockQ
  float* delta_s = lse_s + 2 * kBlockQ;

  const int seq = args.seq;
  const int group = args.group();
  const int b = static_cast<int>(blockIdx.x) / args.kv_heads;
  const int kv_h = static_cast<int>(blockIdx.x) % args.kv_heads;
  const int k0 = static_cast<int>(blockIdx.y) * kBlockRows;  // causal: earliest keys see most queries: first
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_lane = lane & 3;
  const int key_a = k0 + warp * 16 + (lane >> 2);  // this thread's keys: key_a and key_a + 8
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const int first_q_tile = args.causal ? k0 / kBlockQ : 0;
  const int q_tiles = (seq + kBlockQ - 1) / kBlockQ - first_q_tile;
  const int steps = group * q_tiles;  // (query head, query tile) pairs, head-major

  // Queues the Q, dout, lse and delta tiles of step `step` into buffer `buffer`.
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

  load_tile_async<T, kD, kBlockRows, kThreads>(k_s, static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h), kv_step,
                                               k0, seq);
  load_tile_async<T, kD, kBlockRows, kThreads>(v_s, static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h), kv_step,
                                               k0, seq);
  if (steps > 0) load_step(0, 0);
  cp_async_commit();

  float dk[1][kOutTiles][4] = {};
  float dv[1][kOutTiles][4] = {};
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
    const int q0 = (first_q_tile + step % q_tiles) * kBlockQ;
    const T* q_tile = q_s + buffer * kBlockQ * kStride;
    const T* do_tile = do_s + buffer * kBlockQ * kStride;
    const float* lse_tile = lse_s + buffer * kBlockQ;
    const float* delta_tile = delta_s + buffer * kBlockQ;

    float st[1][kQueryTiles][4];   // S^T (16 keys x kBlockQ queries), then P^T
    float dpt[1][kQueryTiles][4];  // dP^T, then dS^T
    warp_mma_abt<T, kD, kBlockQ, 1>(st, k_s + warp * 16 * kStride, q_tile, lane);
    warp_mma_abt<T, kD, kBlockQ, 1>(dpt, v_s + warp * 16 * kStride, do_tile, lane);

    // Some query of the tile is past T, or (causal) before some key of the block.
    const bool need_mask = q0 + kBlockQ > seq || (args.causal && q0 < k0 + kBlockRows - 1);
#pragma unroll
    for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = nt * 8 + 2 * quad_lane + (e & 1);
        const int query = q0 + qi;
        const int key = key_a + (e >> 1) * 8;
        const bool visible = !need_mask || (query < seq && (!args.causal || key <= query));
        const float p = visible ? fast_exp2(fmaf(st[0][nt][e], args.scale_log2, -lse_tile[qi] * kLog2e)) : 0.0F;
        st[0][nt][e] = p;
        dpt[0][nt][e] = p * (dpt[0][nt][e] - delta_tile[qi]);
      }
    }

    // dV += P^T dout;  dK += dS^T Q.
    uint32_t pa[1][kBlockQ / 16][4];
    uint32_t dsa[1][kBlockQ / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBlockQ / 16; ++kk) {
      accumulators_to_a<T>(pa[0][kk], st[0][2 * kk], st[0][2 * kk + 1]);
      accumulators_to_a<T>(dsa[0][kk], dpt[0][2 * kk], dpt[0][2 * kk + 1]);
    }
    warp_mma_ab<T, kD, kBlockQ, 1>(dv, pa, do_tile, lane);
    warp_mma_ab<T, kD, kBlockQ, 1>(dk, dsa, q_tile, lane);
    __syncthreads();  // the buffer is consumed before the next prefetch overwrites it
  }
  if (steps == 0) cp_async_wait<0>();  // the K/V loads are still ours to wait for

  // Stage dK and dV in the warp's own rows of k_s / v_s (read only by this warp), then
  // write them out in 16-byte chunks.
  T* dk_stage = k_s + warp * 16 * kStride;
  T* dv_stage = v_s + warp * 16 * kStride;
#pragma unroll
  for (int dt = 0; dt < kOutTiles; ++dt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int offset = ((lane >> 2) + 8 * r) * kStride + dt * 8 + 2 * quad_lane;
      *reinterpret_cast<uint32_t*>(dk_stage + offset) =
          pack2<T>(dk[0][dt][2 * r] * args.scale, dk[0][dt][2 * r + 1] * args.scale);
      *reinterpret_cast<uint32_t*>(dv_stage + offset) = pack2<T>(dv[0][dt][2 * r], dv[0][dt][2 * r + 1]);
    }
  }
  __syncwarp();
  constexpr int kChunksPerRow = kD / 8;
  T* dk_out = static_cast<T*>(args.dk);
  T* dv_out = static_cast<T*>(args.dv);
  for (int id = lane; id < 16 * kChunksPerRow; id += 32) {
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const int key = k0 + warp * 16 + r;
    if (key < seq) {
      const int64_t offset = args.kv_offset(b, key, kv_h) + c;
      *reinterpret_cast<uint4*>(dk_out + offset) = *reinterpret_cast<const uint4*>(dk_stage + r * kStride + c);
      *reinterpret_cast<uint4*>(dv_out + offset) = *reinterpret_cast<const uint4*>(dv_stage + r * kStride + c);
    }
  }
}

// Grid (B * Hq, ceil(T / 128)), 4 warps; see the file comment. Warp w owns query rows
// 32w .. 32w + 31 as two m16 tiles, so each K/V fragment read from shared memory feeds two mmas.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) mma_dq_kernel(Args args) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kBlockK = kDqBlockK<kD>;
  constexpr int kScoreTiles = kBlockK / 8;  // n-tiles of S
  constexpr int kOutTiles = kD / 8;         // n-tiles of dQ
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);
  T* do_s = q_s + kDqBlockQ * kStride;
  T* k_s = do_s + kDqBlockQ * kStride;  // 2 buffers of (kBlockK, kStride)
  T* v_s = k_s + 2 * kBlockK * kStride;

  const int seq = args.seq;
  const int b = static_cast<int>(blockIdx.x) / args.q_heads;
  const int h = static_cast<int>(blockIdx.x) % args.q_heads;
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.y - 1 - blockIdx.y) * kDqBlockQ;  // causal: heaviest first
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_lane = lane & 3;
  const int warp_row0 = q0 + warp * kDqWarpRows;
  // This thread's rows: row_a + 16 mt + 8 r for m-tile mt and half r.
  const int row_a = warp_row0 + (lane >> 2);
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  const int key_end = args.causal ? min(seq, q0 + kDqBlockQ) : seq;
  const int num_tiles = (key_end + kBlockK - 1) / kBlockK;

  load_tile_async<T, kD, kDqBlockQ, kThreads>(q_s, static_cast<const T*>(args.q) + args.q_offset(b, 0, h), q_step, q0,
                                              seq);
  load_tile_async<T, kD, kDqBlockQ, kThreads>(do_s, static_cast<const T*>(args.dout) + args.q_offset(b, 0, h), q_step,
                                              q0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(k_s, k, kv_step, 0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(v_s, v, kv_step, 0, seq);
  cp_async_commit();

  float lse2[kDqMTiles][2];
  float delta[kDqMTiles][2];
  const int64_t stat = args.stat_offset(b, h);
#pragma unroll
  for (int mt = 0; mt < kDqMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row_a + 16 * mt + 8 * r;
      lse2[mt][r] = row < seq ? args.lse[stat + row] * kLog2e : 0.0F;
      delta[mt][r] = row < seq ? args.delta[stat + row] : 0.0F;
    }
  }

  float dq[kDqMTiles][kOutTiles][4] = {};
  for (int tile = 0; tile < num_tiles; ++tile) {
    const int buffer = tile & 1;
    if (tile + 1 < num_tiles) {
      const int next = (tile + 1) * kBlockK;
      load_tile_async<T, kD, kBlockK, kThreads>(k_s + (buffer ^ 1) * kBlockK * kStride, k, kv_step, next, seq);
      load_tile_async<T, kD, kBlockK, kThreads>(v_s + (buffer ^ 1) * kBlockK * kStride, v, kv_step, next, seq);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int n0 = tile * kBlockK;
    // Causal: a warp whose rows all precede the tile has nothing to add (no barrier inside).
    if (!args.causal || n0 <= warp_row0 + kDqWarpRows - 1) {
      const T* k_tile = k_s + buffer * kBlockK * kStride;
      const T* v_tile = v_s + buffer * kBlockK * kStride;

      float s[kDqMTiles][kScoreTiles][4];   // S
      float ds[kDqMTiles][kScoreTiles][4];  // dP, then dS
      warp_mma_abt<T, kD, kBlockK, kDqMTiles>(s, q_s + warp * kDqWarpRows * kStride, k_tile, lane);
      warp_mma_abt<T, kD, kBlockK, kDqMTiles>(ds, do_s + warp * kDqWarpRows * kStride, v_tile, lane);

      const bool need_mask = n0 + kBlockK > seq || (args.causal && n0 + kBlockK - 1 > warp_row0);
#pragma unroll
      for (int mt = 0; mt < kDqMTiles; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kScoreTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            const int key = n0 + nt * 8 + 2 * quad_lane + (e & 1);
            const bool visible = !need_mask || (key < seq && (!args.causal || key <= row_a + 16 * mt + 8 * r));
            const float p = visible ? fast_exp2(fmaf(s[mt][nt][e], args.scale_log2, -lse2[mt][r])) : 0.0F;
            ds[mt][nt][e] = p * (ds[mt][nt][e] - delta[mt][r]);
          }
        }
      }

      // dQ += dS K.
      uint32_t dsa[kDqMTiles][kBlockK / 16][4];
#pragma unroll
      for (int mt = 0; mt < kDqMTiles; ++mt) {
#pragma unroll
        for (int kk = 0; kk < kBlockK / 16; ++kk) accumulators_to_a<T>(dsa[mt][kk], ds[mt][2 * kk], ds[mt][2 * kk + 1]);
      }
      warp_mma_ab<T, kD, kBlockK, kDqMTiles>(dq, dsa, k_tile, lane);
    }
    __syncthreads();  // the buffer is consumed before the next prefetch overwrites it
  }
  if (num_tiles == 0) cp_async_wait<0>();

  // Stage dQ in the warp's own rows of q_s (read only by this warp), then write it out.
  T* stage = q_s + warp * kDqWarpRows * kStride;
#pragma unroll
  for (int mt = 0; mt < kDqMTiles; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        *reinterpret_cast<uint32_t*>(stage + (16 * mt + (lane >> 2) + 8 * r) * kStride + dt * 8 + 2 * quad_lane) =
            pack2<T>(dq[mt][dt][2 * r] * args.scale, dq[mt][dt][2 * r + 1] * args.scale);
      }
    }
  }
  __syncwarp();
  constexpr int kChunksPerRow = kD / 8;
  T* dq_out = static_cast<T*>(args.dq);
  for (int id = lane; id < kDqWarpRows * kChunksPerRow; id += 32) {
    const int r = id / kChunksPerRow;
    const int c = (id % kChunksPerRow) * 8;
    const int row = warp_row0 + r;
    if (row < seq) {
      *reinterpret_cast<uint4*>(dq_out + args.q_offset(b, row, h) + c) =
          *reinterpret_cast<const uint4*>(stage + r * kStride + c);
    }
  }
}

template <typename Kernel>
void launch(Kernel kernel, dim3 grid, size_t smem_bytes, const Args& args, cudaStream_t stream) {
  ANVIL_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
  kernel<<<grid, kThreads, smem_bytes, stream>>>(args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T, int kD>
void backward_typed(const Args& args, cudaStream_t stream) {
  const auto key_blocks = static_cast<unsigned>((args.seq + kBlockRows - 1) / kBlockRows);
  launch(mma_dkdv_kernel<T, kD>, dim3(static_cast<unsigned>(args.batch * args.kv_heads), key_blocks),
         dkdv_smem_bytes<kD>(), args, stream);
  const auto query_blocks = static_cast<unsigned>((args.seq + kDqBlockQ - 1) / kDqBlockQ);
  launch(mma_dq_kernel<T, kD>, dim3(static_cast<unsigned>(args.batch * args.q_heads), query_blocks),
         dq_smem_bytes<kD>(), args, stream);
}

template <typename T>
void backward_by_dim(const Args& args, cudaStream_t stream) {
  if (args.head_dim == 64) return backward_typed<T, 64>(args, stream);
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no tensor-core backward for head_dim ", args.head_dim);
  backward_typed<T, 128>(args, stream);
}

}  // namespace

void mma_backward(const Args& args, DType dtype, cudaStream_t stream) {
  if (dtype == DType::BF16) return backward_by_dim<__nv_bfloat16>(args, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no tensor-core backward for ", dtype_name(dtype));
  backward_by_dim<__half>(args, stream);
}

}  // namespace anvil::cuda::attention
