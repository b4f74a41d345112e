#pragma once
// The per-tile softmax steps and the output of the wgmma attention forward kernels
// (attention_wgmma_forward.cu, attention_wgmma_tma_forward.cu): each thread holds 2 rows of
// a 64 x kBlockN tile of S in the wgmma accumulator layout (wgmma.cuh), every row in one quad
// of lanes.
#include "cuda/attention_device.cuh"
#include "cuda/wgmma.cuh"

namespace anvil::cuda::attention::wgmma_softmax {

// Online softmax over one tile of S (this thread's 2 rows x 32 columns): S becomes the
// unnormalised probabilities P, m and l move to the tile, alpha = exp2(m_old - m_new) per row.
template <int kBlockN, bool kMask>
__device__ __forceinline__ void softmax_scores(float (&s)[kBlockN / 2], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                               int n0, int row_a, int seq, bool causal, float scale_log2, int lane) {
  float row_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int i = 0; i < kBlockN / 2; ++i) {
    if constexpr (kMask) {
      const int col = n0 + (i / 4) * 8 + 2 * (lane & 3) + (i & 1);
      const int row = row_a + ((i >> 1) & 1) * 8;
      if (col >= seq || (causal && col > row)) s[i] = -INFINITY;
    }
    row_max[(i >> 1) & 1] = fmaxf(row_max[(i >> 1) & 1], s[i]);
  }
  float m_use[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float m_new = fmaxf(m[r], quad_max(row_max[r]) * scale_log2);
    m_use[r] = m_new == -INFINITY ? 0.0F : m_new;  // no key seen yet: keep exp2 finite
    alpha[r] = fast_exp2(m[r] - m_use[r]);
    m[r] = m_new;
    l[r] *= alpha[r];
  }
#pragma unroll
  for (int i = 0; i < kBlockN / 2; ++i) {
    const float e = fast_exp2(fmaf(s[i], scale_log2, -m_use[(i >> 1) & 1]));
    s[i] = e;
    l[(i >> 1) & 1] += e;  // this thread's part of the row sum; the quad is summed at the end
  }
}

// Scores of a tile that crosses T or the diagonal are masked; the others skip the index math.
template <int kBlockN>
__device__ __forceinline__ void softmax_tile(float (&s)[kBlockN / 2], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                             int n0, int row_a, int row_first, int seq, bool causal, float scale_log2,
                                             int lane) {
  if (n0 + kBlockN > seq || (causal && n0 + kBlockN - 1 > row_first)) {
    softmax_scores<kBlockN, true>(s, m, l, alpha, n0, row_a, seq, causal, scale_log2, lane);
  } else {
    softmax_scores<kBlockN, false>(s, m, l, alpha, n0, row_a, seq, causal, scale_log2, lane);
  }
}

// O *= alpha per row; once the row maxima settle alpha is exactly 1 for the whole warp and
// the multiplies are skipped.
template <int kD>
__device__ __forceinline__ void rescale(float (&o)[kD / 2], const float (&alpha)[2]) {
  if (__any_sync(0xffffffffU, alpha[0] != 1.0F || alpha[1] != 1.0F)) {
#pragma unroll
    for (int i = 0; i < kD / 2; ++i) o[i] *= alpha[(i >> 1) & 1];
  }
}

// P rounded into the A registers of O += P V: per k-step, two adjacent 8-column tiles of
// accumulators (4 floats each, the mma.sync layout) as accumulators_to_a packs them.
template <typename T, int kBlockN>
__device__ __forceinline__ void pack_probabilities(uint32_t (&p)[kBlockN / 16][4], const float (&s)[kBlockN / 2]) {
  const auto& tiles = reinterpret_cast<const float(&)[kBlockN / 8][4]>(s);
#pragma unroll
  for (int kk = 0; kk < kBlockN / 16; ++kk) accumulators_to_a<T>(p[kk], tiles[2 * kk], tiles[2 * kk + 1]);
}

// The end of a warpgroup's 64 query rows (from group_row0, of batch b and head h): out =
// O / l and lse = (m + log2 l) ln 2. O is staged, rounded, in the warpgroup's own rows
// (group * 64 ..) of the block's swizzled Q tile of kTileRows rows at q_s (its wgmmas there
// must be done), then written out in 16-byte chunks; `barrier` is a named barrier id for the
// warpgroup's 128 threads.
template <typename T, int kD, int kTileRows>
__device__ __forceinline__ void write_output(const float (&o)[kD / 2], const float (&m)[2], float (&l)[2], uint32_t q_s,
                                             int group, int barrier, int group_row0, int b, int h, const Args& args) {
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = (tid / 32) % 4;
  const int lane = tid % 32;
  const int seq = args.seq;
  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    inv_l[r] = 1.0F / l[r];
  }
  const int local_row = group * 64 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int nt = 0; nt < kD / 8; ++nt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint32_t address = q_s + wgmma::swizzled_offset<kTileRows>(local_row + 8 * r, nt) + 4U * (lane & 3);
      const uint32_t bits = pack2<T>(o[4 * nt + 2 * r] * inv_l[r], o[4 * nt + 2 * r + 1] * inv_l[r]);
      wgmma::store_shared(address, bits);
    }
  }
  asm volatile("bar.sync %0, 128;\n" ::"r"(barrier) : "memory");  // this warpgroup's 128 threads
  constexpr int kChunksPerRow = kD / 8;
  T* out = static_cast<T*>(args.out);
  for (int id = tid % 128; id < 64 * kChunksPerRow; id += 128) {
    const int r = id / kChunksPerRow;
    const int c = id % kChunksPerRow;
    const int row = group_row0 + r;
    if (row < seq) {
      *reinterpret_cast<uint4*>(out + args.q_offset(b, row, h) + c * 8) =
          wgmma::load_shared_16(q_s + wgmma::swizzled_offset<kTileRows>(group * 64 + r, c));
    }
  }
  if (args.lse != nullptr && (lane & 3) == 0) {
    const int64_t stat = args.stat_offset(b, h);
    const int row_a = group_row0 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row_a + r * 8;
      if (row < seq) args.lse[stat + row] = (m[r] + log2f(l[r])) * kLn2;
    }
  }
}

}  // namespace anvil::cuda::attention::wgmma_softmax
