// Tensor-core attention forward (FlashAttention-2 style) for bf16/f16 storage and head
// dims 64 and 128: mma.sync m16n8k16 with f32 accumulators, operands from shared memory
// through ldmatrix, K/V tiles double-buffered with cp.async, online softmax in registers.
//
// Grid (B * Hq, ceil(T / 64)), 4 warps. A block owns 64 query rows of one (b, h), warp w
// rows 16w .. 16w + 15 (its Q fragments stay in registers). For each key tile of 64:
//   S = Q K^T (16 x 64 per warp, f32), scaled by scale * log2(e) and masked,
//   m' = max(m, rowmax S); P = exp2(S - m'); l = l * exp2(m - m') + rowsum P,
//   O = O * exp2(m - m') + P V  (P rounded to bf16/f16 as the A operand).
// Each row lives in one quad of lanes (rows g and g + 8 of the warp's 16, g = lane / 4),
// so row max and sum take two shuffles. Finally out = O / l (staged through shared memory
// for 16-byte stores) and lse = (m + log2 l) ln 2.
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"

namespace anvil::cuda::attention {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockQ = 64;  // query rows per block (16 per warp)
constexpr int kBlockK = 64;  // keys per tile

template <int kD>
constexpr size_t forward_smem_bytes() {
  return sizeof(uint16_t) * static_cast<size_t>(kTileStride<kD>) * (kBlockQ + 4 * kBlockK);  // Q, 2 x (K, V)
}

// kDelta: instead of out and lse, write delta = rowsum(dout * O) with O still in f32.
template <typename T, int kD, bool kDelta>
__global__ void __launch_bounds__(kThreads) mma_forward_kernel(Args args) {
  constexpr int kStride = kTileStride<kD>;
  constexpr int kKeySteps = kD / 16;        // k-steps of Q K^T
  constexpr int kScoreTiles = kBlockK / 8;  // n-tiles of S
  constexpr int kOutTiles = kD / 8;         // n-tiles of O
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);
  T* k_s = q_s + kBlockQ * kStride;  // 2 buffers of (kBlockK, kStride)
  T* v_s = k_s + 2 * kBlockK * kStride;

  const int seq = args.seq;
  const int b = static_cast<int>(blockIdx.x) / args.q_heads;
  const int h = static_cast<int>(blockIdx.x) % args.q_heads;
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.y - 1 - blockIdx.y) * kBlockQ;  // causal: heaviest first
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int quad_lane = lane & 3;
  const int row_a = q0 + warp * 16 + (lane >> 2);  // this thread's rows: row_a and row_a + 8
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const T* q = static_cast<const T*>(args.q) + args.q_offset(b, 0, h);
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  const int key_end = args.causal ? min(seq, q0 + kBlockQ) : seq;
  const int num_tiles = (key_end + kBlockK - 1) / kBlockK;

  load_tile_async<T, kD, kBlockQ, kThreads>(q_s, q, q_step, q0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(k_s, k, kv_step, 0, seq);
  load_tile_async<T, kD, kBlockK, kThreads>(v_s, v, kv_step, 0, seq);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qa[kKeySteps][4];
#pragma unroll
  for (int ks = 0; ks < kKeySteps; ++ks) ldmatrix_x4(qa[ks], q_s + a_frag_offset(lane, warp * 16, ks * 16, kStride));

  float o[kOutTiles][4] = {};
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0F, 0.0F};
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
    const T* k_tile = k_s + buffer * kBlockK * kStride;
    const T* v_tile = v_s + buffer * kBlockK * kStride;

    float s[kScoreTiles][4] = {};
#pragma unroll
    for (int ks = 0; ks < kKeySteps; ++ks) {
#pragma unroll
      for (int np = 0; np < kScoreTiles / 2; ++np) {
        uint32_t bk[4];
        ldmatrix_x4(bk, k_tile + b_frag_offset(lane, np * 16, ks * 16, kStride));
        mma_16816<T>(s[2 * np], qa[ks], bk[0], bk[1]);
        mma_16816<T>(s[2 * np + 1], qa[ks], bk[2], bk[3]);
      }
    }

    // Scale into the exp2 domain, mask, and update the running max.
    const int n0 = tile * kBlockK;
    const bool need_mask = n0 + kBlockK > seq || (args.causal && n0 + kBlockK - 1 > q0);
    float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kScoreTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * args.scale_log2;
        if (need_mask) {
          const int col = n0 + nt * 8 + 2 * quad_lane + (e & 1);
          const int row = row_a + (e >> 1) * 8;
          if (col >= seq || (args.causal && col > row)) x = -INFINITY;
        }
        s[nt][e] = x;
        row_max[e >> 1] = fmaxf(row_max[e >> 1], x);
      }
    }
    float m_use[2];
    float alpha[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(row_max[r]));
      m_use[r] = m_new == -INFINITY ? 0.0F : m_new;  // no key seen yet: keep exp2 finite
      alpha[r] = exp2f(m[r] - m_use[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int nt = 0; nt < kScoreTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[nt][e] - m_use[e >> 1]);
        s[nt][e] = p;
        l[e >> 1] += p;  // this thread's part of the row sum; the quad is summed at the end
      }
    }
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }

    // O += P V.
#pragma unroll
    for (int kk = 0; kk < kBlockK / 16; ++kk) {
      uint32_t pa[4];
      accumulators_to_a<T>(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t bv[4];
        ldmatrix_x4_trans(bv, v_tile + bt_frag_offset(lane, kk * 16, dp * 16, kStride));
        mma_16816<T>(o[2 * dp], pa, bv[0], bv[1]);
        mma_16816<T>(o[2 * dp + 1], pa, bv[2], bv[3]);
      }
    }
    __syncthreads();  // the buffer is consumed before the next prefetch overwrites it
  }

  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    inv_l[r] = 1.0F / l[r];
  }
  const int64_t stat = args.stat_offset(b, h);
  if constexpr (kDelta) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row_a + r * 8;
      float sum = 0.0F;
      if (row < seq) {
        const T* dout = static_cast<const T*>(args.dout) + args.q_offset(b, row, h);
#pragma unroll
        for (int dt = 0; dt < kOutTiles; ++dt) {
          const float2 g = unpack2<T>(*reinterpret_cast<const uint32_t*>(dout + dt * 8 + 2 * quad_lane));
          sum = fmaf(o[dt][2 * r] * inv_l[r], g.x, sum);
          sum = fmaf(o[dt][2 * r + 1] * inv_l[r], g.y, sum);
        }
      }
      sum = quad_sum(sum);
      if (row < seq && quad_lane == 0) args.delta[stat + row] = sum;
    }
  } else {
    // Stage the warp's 16 output rows in its own rows of q_s (read only by this warp, at
    // the start), then write them out in 16-byte chunks.
    T* stage = q_s + warp * 16 * kStride;
#pragma unroll
    for (int dt = 0; dt < kOutTiles; ++dt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        *reinterpret_cast<uint32_t*>(stage + ((lane >> 2) + 8 * r) * kStride + dt * 8 + 2 * quad_lane) =
            pack2<T>(o[dt][2 * r] * inv_l[r], o[dt][2 * r + 1] * inv_l[r]);
      }
    }
    __syncwarp();
    constexpr int kChunksPerRow = kD / 8;
    T* out = static_cast<T*>(args.out);
#pragma unroll
    for (int id = lane; id < 16 * kChunksPerRow; id += 32) {
      const int r = id / kChunksPerRow;
      const int c = (id % kChunksPerRow) * 8;
      const int row = q0 + warp * 16 + r;
      if (row < seq) {
        *reinterpret_cast<uint4*>(out + args.q_offset(b, row, h) + c) =
            *reinterpret_cast<const uint4*>(stage + r * kStride + c);
      }
    }
    if (args.lse != nullptr && quad_lane == 0) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row_a + r * 8;
        if (row < seq) args.lse[stat + row] = (m[r] + log2f(l[r])) * kLn2;
      }
    }
  }
}

template <typename T, int kD, bool kDelta>
void launch_forward(const Args& args, cudaStream_t stream) {
  constexpr size_t kSmem = forward_smem_bytes<kD>();
  auto kernel = mma_forward_kernel<T, kD, kDelta>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  const dim3 grid(static_cast<unsigned>(args.batch * args.q_heads),
                  static_cast<unsigned>((args.seq + kBlockQ - 1) / kBlockQ));
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
