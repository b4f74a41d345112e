// Tensor-core attention forward (FlashAttention-2 style) for bf16/f16 storage and head
// dims 64 and 128: mma.sync m16n8k16 with f32 accumulators, operands from shared memory
// through ldmatrix (each step's fragments loaded while the previous step's mmas run), K/V
// tiles double-buffered with cp.async, online softmax in registers.
//
// Grid (ceil(T / 128), Hq, B), 4 warps: the query blocks of one head run side by side and
// share its K/V through L2. A block owns 128 query rows of one (b, h), warp w rows
// 32w .. 32w + 31 as two m16 tiles, so every K/V fragment loaded from shared memory feeds
// four mmas. For each key tile of 64 (32 when D = 128):
//   S = Q K^T (32 x 64 per warp, f32), masked only on tiles crossing T or the diagonal,
//   m' = max(m, scale log2(e) rowmax S); P = exp2(scale log2(e) S - m') (one FMA + MUFU),
//   l = l * exp2(m - m') + rowsum P,
//   O = O * exp2(m - m') + P V  (P rounded to bf16/f16 in registers as the A operand; the
//   rescale is skipped when no row maximum of the warp moved).
// Each row lives in one quad of lanes (rows g and g + 8 of an m16 tile, g = lane / 4), so
// row max and sum take two shuffles. Finally out = O / l (staged through shared memory for
// 16-byte stores) and lse = (m + log2 l) ln 2.
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"

namespace anvil::cuda::attention {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// Keys per tile: S (kMTiles x kKeysPerTile / 8 n-tiles) and O (kMTiles x D / 8) stay in
// registers without spilling. FlashAttention-2's 128 / 64 keys spill here and measured
// slower on the H100 (293 vs 314 TFLOP/s at D = 128, T = 4096).
template <int kD>
constexpr int kKeysPerTile = kD <= 64 ? 64 : 32;
// m16 tiles of query rows per warp: each K / V fragment read from shared memory feeds
// 2 kMTiles mmas. (One m-tile per warp, 16 warps per SM, measured 14-18% slower at D = 128.)
constexpr int kMTilesPerWarp = 2;

// A block owns kWarps * 16 * kM query rows; K and V tiles double-buffered.
template <int kD, int kBlockK, int kM>
constexpr size_t forward_smem_bytes() {
  constexpr int kBlockQ = kWarps * 16 * kM;
  return sizeof(uint16_t) * static_cast<size_t>(kTileStride<kD>) * (kBlockQ + 4 * kBlockK);  // Q, 2 x (K, V)
}

// One key tile for the warp's rows: S = Q K^T, (kMask: mask keys past T and, causal, after
// the row), online softmax update of m / l / O, O += P V.
template <typename T, int kD, int kBlockK, int kMTiles, bool kDelta, bool kMask>
__device__ __forceinline__ void forward_tile(float (&o)[kMTiles][kD / 8][4], float (&m)[kMTiles][2],
                                             float (&l)[kMTiles][2], const T* q_rows, const T* k_tile, const T* v_tile,
                                             int n0, int row_a, int seq, bool causal, float scale_log2, int lane) {
  constexpr int kScoreTiles = kBlockK / 8;  // n-tiles of S
  constexpr int kOutTiles = kD / 8;         // n-tiles of O
  float s[kMTiles][kScoreTiles][4];
  warp_mma_abt<T, kD, kBlockK, kMTiles, (kBlockK > 32)>(s, q_rows, k_tile, lane);

  // Mask, update the running max and sum, rescale O, and round P into A fragments. The
  // scale is folded into the exponent's FMA.
  uint32_t pa[kMTiles][kBlockK / 16][4];
  uint32_t pa_lo[kDelta ? kMTiles : 1][kBlockK / 16][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
    float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kScoreTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if constexpr (kMask) {
          const int col = n0 + nt * 8 + 2 * (lane & 3) + (e & 1);
          const int row = row_a + mt * 16 + (e >> 1) * 8;
          if (col >= seq || (causal && col > row)) s[mt][nt][e] = -INFINITY;
        }
        row_max[e >> 1] = fmaxf(row_max[e >> 1], s[mt][nt][e]);
      }
    }
    float m_use[2];
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[mt][r], quad_max(row_max[r]) * scale_log2);
      m_use[r] = m_new == -INFINITY ? 0.0F : m_new;  // no key seen yet: keep exp2 finite
      alpha[r] = fast_exp2(m[mt][r] - m_use[r]);
      m[mt][r] = m_new;
      l[mt][r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < kScoreTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = fast_exp2(fmaf(s[mt][nt][e], scale_log2, -m_use[e >> 1]));
        s[mt][nt][e] = p;
        l[mt][e >> 1] += p;  // this thread's part of the row sum; the quad is summed at the end
      }
    }
#pragma unroll
    for (int kk = 0; kk < kBlockK / 16; ++kk) {
      if constexpr (kDelta) {
        accumulators_to_a_split<T>(pa[mt][kk], pa_lo[mt][kk], s[mt][2 * kk], s[mt][2 * kk + 1]);
      } else {
        accumulators_to_a<T>(pa[mt][kk], s[mt][2 * kk], s[mt][2 * kk + 1]);
      }
    }
    // Once the row maxima settle, alpha is exactly 1 for the whole warp: skip the D / 2
    // multiplies per thread (the largest f32 cost per tile at D = 128).
    if (__any_sync(0xffffffffU, alpha[0] != 1.0F || alpha[1] != 1.0F)) {
#pragma unroll
      for (int dt = 0; dt < kOutTiles; ++dt) {
        o[mt][dt][0] *= alpha[0];
        o[mt][dt][1] *= alpha[0];
        o[mt][dt][2] *= alpha[1];
        o[mt][dt][3] *= alpha[1];
      }
    }
  }

  // O += P V. For delta, P goes in as hi + lo parts: delta = dout . O feeds every dS of
  // its row, so O is kept to ~f32 accuracy there (the exact Delta of the reference backward).
  warp_mma_ab<T, kD, kBlockK, kMTiles>(o, pa, v_tile, lane);
  if constexpr (kDelta) warp_mma_ab<T, kD, kBlockK, kMTiles>(o, pa_lo, v_tile, lane);
}

// kDelta: instead of out and lse, write delta = rowsum(dout * O) with O still in f32.
template <typename T, int kD, int kBlockK, int kMTiles, bool kDelta>
__global__ void __launch_bounds__(kThreads, kMTiles == 1 ? 4 : 2) mma_forward_kernel(Args args) {
  constexpr int kWarpRows = 16 * kMTiles;  // query rows per warp
  constexpr int kBlockQ = kWarps * kWarpRows;
  constexpr int kStride = kTileStride<kD>;
  constexpr int kOutTiles = kD / 8;  // n-tiles of O
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);
  T* k_s = q_s + kBlockQ * kStride;  // 2 buffers of (kBlockK, kStride)
  T* v_s = k_s + 2 * kBlockK * kStride;

  const int seq = args.seq;
  const int b = static_cast<int>(blockIdx.z);
  const int h = static_cast<int>(blockIdx.y);
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kBlockQ;  // causal: heaviest first
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_lane = lane & 3;
  const int warp_row0 = q0 + warp * kWarpRows;
  // This thread's rows: warp_row0 + 16 mt + 8 r + lane / 4 for m-tile mt and half r.
  const int row_a = warp_row0 + (lane >> 2);
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const T* q = static_cast<const T*>(args.q) + args.q_offset(b, 0, h);
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  const int key_end = args.causal ? min(seq, q0 + kBlockQ) : seq;
  const int num_tiles = (key_end + kBlockK - 1) / kBlockK;
  const float scale_log2 = args.scale_log2;

  load_tile_async<T, kD, kBlockQ, kThreads>(q_s, q, q_step, q0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(k_s, k, kv_step, 0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(v_s, v, kv_step, 0, seq);
  cp_async_commit();

  float o[kMTiles][kOutTiles][4] = {};
  float m[kMTiles][2];  // running max, in the exp2 domain (raw score * scale_log2)
  float l[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0F;
  }
  for (int tile = 0; tile < num_tiles; ++tile) {
    const int buffer = tile & 1;
    if (tile + 1 < num_tiles) {  // prefetch the next K/V tile into the other buffer
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
    if (!args.causal || n0 <= warp_row0 + kWarpRows - 1) {
      const T* k_tile = k_s + buffer * kBlockK * kStride;
      const T* v_tile = v_s + buffer * kBlockK * kStride;
      const T* q_rows = q_s + warp * kWarpRows * kStride;
      // Only tiles crossing T or the diagonal are masked: a separate copy of the tile code
      // keeps the index arithmetic out of the others.
      if (n0 + kBlockK > seq || (args.causal && n0 + kBlockK - 1 > warp_row0)) {
        forward_tile<T, kD, kBlockK, kMTiles, kDelta, true>(o, m, l, q_rows, k_tile, v_tile, n0, row_a, seq,
                                                            args.causal, scale_log2, lane);
      } else {
        forward_tile<T, kD, kBlockK, kMTiles, kDelta, false>(o, m, l, q_rows, k_tile, v_tile, n0, row_a, seq,
                                                             args.causal, scale_log2, lane);
      }
    }
    __syncthreads();  // the buffer is consumed before the next prefetch overwrites it
  }
  if (num_tiles == 0) cp_async_wait<0>();

  float inv_l[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[mt][r] = quad_sum(l[mt][r]);
      inv_l[mt][r] = 1.0F / l[mt][r];
    }
  }
  const int64_t stat = args.stat_offset(b, h);
  if constexpr (kDelta) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row_a + mt * 16 + r * 8;
        float sum = 0.0F;
        if (row < seq) {
          const T* dout = static_cast<const T*>(args.dout) + args.q_offset(b, row, h);
#pragma unroll
          for (int dt = 0; dt < kOutTiles; ++dt) {
            const float2 g = unpack2<T>(*reinterpret_cast<const uint32_t*>(dout + dt * 8 + 2 * quad_lane));
            sum = fmaf(o[mt][dt][2 * r] * inv_l[mt][r], g.x, sum);
            sum = fmaf(o[mt][dt][2 * r + 1] * inv_l[mt][r], g.y, sum);
          }
        }
        sum = quad_sum(sum);
        if (row < seq && quad_lane == 0) args.delta[stat + row] = sum;
      }
    }
  } else {
    // Stage the warp's output rows in its own rows of q_s (read only by this warp), then
    // write them out in 16-byte chunks.
    T* stage = q_s + warp * kWarpRows * kStride;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int dt = 0; dt < kOutTiles; ++dt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          *reinterpret_cast<uint32_t*>(stage + (mt * 16 + (lane >> 2) + 8 * r) * kStride + dt * 8 + 2 * quad_lane) =
              pack2<T>(o[mt][dt][2 * r] * inv_l[mt][r], o[mt][dt][2 * r + 1] * inv_l[mt][r]);
        }
      }
    }
    __syncwarp();
    constexpr int kChunksPerRow = kD / 8;
    T* out = static_cast<T*>(args.out);
    for (int id = lane; id < kWarpRows * kChunksPerRow; id += 32) {
      const int r = id / kChunksPerRow;
      const int c = (id % kChunksPerRow) * 8;
      const int row = warp_row0 + r;
      if (row < seq) {
        *reinterpret_cast<uint4*>(out + args.q_offset(b, row, h) + c) =
            *reinterpret_cast<const uint4*>(stage + r * kStride + c);
      }
    }
    if (args.lse != nullptr && quad_lane == 0) {
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = row_a + mt * 16 + r * 8;
          if (row < seq) args.lse[stat + row] = (m[mt][r] + log2f(l[mt][r])) * kLn2;
        }
      }
    }
  }
}

template <typename T, int kD, bool kDelta>
void launch_forward(const Args& args, cudaStream_t stream) {
  constexpr int kBlockK = kKeysPerTile<kD>;
  constexpr int kMTiles = kMTilesPerWarp;
  constexpr int kBlockQ = kWarps * 16 * kMTiles;
  constexpr size_t kSmem = forward_smem_bytes<kD, kBlockK, kMTiles>();
  auto kernel = mma_forward_kernel<T, kD, kBlockK, kMTiles, kDelta>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  // The query blocks of one head are adjacent in launch order, so the blocks in flight share
  // their head's K and V through L2 (FlashAttention-2's order).
  ANVIL_CHECK(args.q_heads <= 65535 && args.batch <= 65535, "cuda attention: too many heads or sequences");
  const dim3 grid(static_cast<unsigned>((args.seq + kBlockQ - 1) / kBlockQ), static_cast<unsigned>(args.q_heads),
                  static_cast<unsigned>(args.batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T>
void forward_typed(const Args& args, bool delta_mode, cudaStream_t stream) {
  if (args.head_dim == 64) {
    return delta_mode ? launch_forward<T, 64, true>(args, stream) : launch_forward<T, 64, false>(args, stream);
  }
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no tensor-core forward for head_dim ", args.head_dim);
  return delta_mode ? launch_forward<T, 128, true>(args, stream) : launch_forward<T, 128, false>(args, stream);
}

}  // namespace

void mma_forward(const Args& args, DType dtype, bool delta_mode, cudaStream_t stream) {
  if (dtype == DType::BF16) return forward_typed<__nv_bfloat16>(args, delta_mode, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no tensor-core forward for ", dtype_name(dtype));
  forward_typed<__half>(args, delta_mode, stream);
}

}  // namespace anvil::cuda::attention
