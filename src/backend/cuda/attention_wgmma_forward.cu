// Attention forward on Hopper's warpgroup MMA (wgmma, sm_90a) for bf16/f16 storage and head
// dims 64 and 128: FlashAttention-3's math and its intra-warpgroup pipeline, without its
// producer warps (every thread queues cp.async copies one tile ahead).
//
// Grid (ceil(T / 128), Hq, B), 2 warpgroups of 128 threads. A block owns 128 query rows of
// one (b, h); warpgroup g rows 64 g .. 64 g + 63. Q, and K / V tiles of N keys
// (double-buffered), sit in shared memory in the 128-byte-swizzle layout of wgmma.cuh. N = 128
// at D = 128 (one block per SM, 254 registers); N = 64 at D = 64 (126 registers, two blocks
// per SM, so that one block's matmuls run during the other's softmax).
// Per key tile j and warpgroup:
//   S_j = Q K_j^T: D / 16 wgmma m64nNk16, both operands from shared memory (64 x N f32,
//   N / 2 registers per thread), issued together with O += P_{j-1} V_{j-1}: N / 16 wgmma m64nDk16, P
//   rounded to bf16/f16 in registers as the A operand, V read transposed (MN-major) from its
//   row-major tile;
//   once S_j is done (the P V wgmmas still running): mask (only tiles crossing T or the
//   diagonal), online softmax in registers (each row lives in one quad of lanes);
//   once P V is done: O *= exp2(m_old - m_new) (skipped once the maxima settle), P_j packed.
// Finally out = O / l (staged through the warpgroup's rows of the Q tile for 16-byte stores)
// and lse = (m + log2 l) ln 2.
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"
#include "cuda/wgmma.cuh"

namespace anvil::cuda::attention {
namespace {

constexpr int kStages = 2;  // K/V tiles in shared memory

constexpr int kWarpGroups = 2;  // 64 query rows each (3 measured slower at D = 64)
constexpr int kThreads = kWarpGroups * 128;
constexpr int kBlockM = kWarpGroups * 64;

template <int kD, int kBlockN>
constexpr size_t wgmma_forward_smem_bytes() {
  // Q, kStages x (K, V), and 1 KB to align the tiles to the swizzle's 1024 bytes.
  return sizeof(uint16_t) * kD * (static_cast<size_t>(kBlockM) + 2 * kStages * kBlockN) + 1024;
}

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

template <typename T, int kD, int kBlockN>
__global__ void __launch_bounds__(kThreads, kBlockN == 64 ? 2 : 1) wgmma_forward_kernel(Args args) {
  constexpr uint32_t kQBytes = kBlockM * kD * 2;
  constexpr uint32_t kQBlockBytes = kBlockM * 128;  // one 64-column block of the Q tile
  constexpr uint32_t kKVBytes = kBlockN * kD * 2;   // one K or V tile
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t q_s = (smem_address(smem_raw) + 1023U) & ~1023U;
  const uint32_t k_s = q_s + kQBytes;             // kStages tiles
  const uint32_t v_s = k_s + kStages * kKVBytes;  // kStages tiles

  const int seq = args.seq;
  const int b = static_cast<int>(blockIdx.z);
  const int h = static_cast<int>(blockIdx.y);
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kBlockM;  // causal: heaviest first
  const int tid = static_cast<int>(threadIdx.x);
  const int group = tid / 128;
  const int warp = (tid / 32) % 4;  // within the warpgroup
  const int lane = tid % 32;
  const int group_row0 = q0 + group * 64;
  // This thread's rows: row_a and row_a + 8.
  const int row_a = group_row0 + warp * 16 + (lane >> 2);
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const T* q = static_cast<const T*>(args.q) + args.q_offset(b, 0, h);
  const T* k = static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h);
  const T* v = static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h);
  const int key_end = args.causal ? min(seq, q0 + kBlockM) : seq;
  const int num_tiles = (key_end + kBlockN - 1) / kBlockN;
  const float scale_log2 = args.scale_log2;

  float o[kD / 2];
  float s[kBlockN / 2];
  uint32_t p[kBlockN / 16][4];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.0F;
  float m[2] = {-INFINITY, -INFINITY};  // running max, in the exp2 domain (raw score * scale_log2)
  float l[2] = {0.0F, 0.0F};
  float alpha[2];
  const uint32_t q_rows = q_s + group * 64 * 128;  // this warpgroup's rows, in each column block
  const auto k_tile = [&](int tile) { return k_s + static_cast<uint32_t>(tile % kStages) * kKVBytes; };
  const auto v_tile = [&](int tile) { return v_s + static_cast<uint32_t>(tile % kStages) * kKVBytes; };

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): iteration j issues
  // S_j = Q K_j and O += P_{j-1} V_{j-1} together, then runs tile j's softmax while the
  // P V wgmmas run. Copies run one tile ahead, V one step behind K: group j = {K_{j+1}, V_j}.
  // Prologue, written out so that every loop iteration commits the same two groups (the
  // compiler then knows which accumulators each wait releases; otherwise it serialises).
  wgmma::load_rows_swizzled<T, kD, kBlockM, kThreads>(q_s, q, q_step, q0, seq);
  wgmma::load_rows_swizzled<T, kD, kBlockN, kThreads>(k_tile(0), k, kv_step, 0, seq);
  cp_async_commit();
  cp_async_wait<0>();
  wgmma::fence_shared_for_async();
  __syncthreads();
  if (num_tiles > 1) wgmma::load_rows_swizzled<T, kD, kBlockN, kThreads>(k_tile(1), k, kv_step, kBlockN, seq);
  wgmma::load_rows_swizzled<T, kD, kBlockN, kThreads>(v_tile(0), v, kv_step, 0, seq);
  cp_async_commit();
  wgmma::fence();
  wgmma::gemm_kmajor<T, kD, kBlockN>(s, q_rows, kQBlockBytes, k_tile(0), kBlockN * 128);
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::fence_operands(s);
  softmax_tile<kBlockN>(s, m, l, alpha, 0, row_a, group_row0, seq, args.causal, scale_log2, lane);
  pack_probabilities<T, kBlockN>(p, s);  // O is still 0: no rescale
  for (int tile = 1; tile < num_tiles; ++tile) {
    // Group tile - 1 has landed (K_tile, V_{tile-1}); every warpgroup is done with S_{tile-1}
    // and P V_{tile-2}, whose K and V slots the next group refills.
    cp_async_wait<0>();
    wgmma::fence_shared_for_async();
    __syncthreads();
    if (tile + 1 < num_tiles) {
      wgmma::load_rows_swizzled<T, kD, kBlockN, kThreads>(k_tile(tile + 1), k, kv_step, (tile + 1) * kBlockN, seq);
    }
    wgmma::load_rows_swizzled<T, kD, kBlockN, kThreads>(v_tile(tile), v, kv_step, tile * kBlockN, seq);
    cp_async_commit();
    wgmma::fence_operands(s);
    wgmma::fence_operands(p);
    wgmma::fence_operands(o);
    wgmma::fence();
    wgmma::gemm_kmajor<T, kD, kBlockN>(s, q_rows, kQBlockBytes, k_tile(tile), kBlockN * 128);
    wgmma::commit();
    wgmma::gemm_registers_mn<T, kBlockN, kD>(o, p, v_tile(tile - 1), kBlockN * 128);
    wgmma::commit();
    wgmma::wait<1>();  // S_tile done; P V may still run
    wgmma::fence_operands(s);
    softmax_tile<kBlockN>(s, m, l, alpha, tile * kBlockN, row_a, group_row0, seq, args.causal, scale_log2, lane);
    wgmma::wait<0>();
    wgmma::fence_operands(o);
    wgmma::fence_operands(p);
    rescale<kD>(o, alpha);
    pack_probabilities<T, kBlockN>(p, s);
  }
  // Epilogue: the last tile's P V.
  cp_async_wait<0>();
  wgmma::fence_shared_for_async();
  __syncthreads();
  wgmma::fence_operands(p);
  wgmma::fence_operands(o);
  wgmma::fence();
  wgmma::gemm_registers_mn<T, kBlockN, kD>(o, p, v_tile(num_tiles - 1), kBlockN * 128);
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::fence_operands(o);

  float inv_l[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    inv_l[r] = 1.0F / l[r];
  }
  // Stage the warpgroup's output rows in its own rows of the Q tile (its wgmmas there are
  // done), then write them out in 16-byte chunks.
  const int local_row = group * 64 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int nt = 0; nt < kD / 8; ++nt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint32_t address = q_s + wgmma::swizzled_offset<kBlockM>(local_row + 8 * r, nt) + 4U * (lane & 3);
      const uint32_t bits = pack2<T>(o[4 * nt + 2 * r] * inv_l[r], o[4 * nt + 2 * r + 1] * inv_l[r]);
      wgmma::store_shared(address, bits);
    }
  }
  asm volatile("bar.sync %0, 128;\n" ::"r"(group + 1) : "memory");  // this warpgroup's 128 threads
  constexpr int kChunksPerRow = kD / 8;
  T* out = static_cast<T*>(args.out);
  for (int id = tid % 128; id < 64 * kChunksPerRow; id += 128) {
    const int r = id / kChunksPerRow;
    const int c = id % kChunksPerRow;
    const int row = group_row0 + r;
    if (row < seq) {
      *reinterpret_cast<uint4*>(out + args.q_offset(b, row, h) + c * 8) =
          wgmma::load_shared_16(q_s + wgmma::swizzled_offset<kBlockM>(group * 64 + r, c));
    }
  }
  if (args.lse != nullptr && (lane & 3) == 0) {
    const int64_t stat = args.stat_offset(b, h);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row_a + r * 8;
      if (row < seq) args.lse[stat + row] = (m[r] + log2f(l[r])) * kLn2;
    }
  }
}

template <typename T, int kD, int kBlockN>
void launch(const Args& args, cudaStream_t stream) {
  constexpr size_t kSmem = wgmma_forward_smem_bytes<kD, kBlockN>();
  auto kernel = wgmma_forward_kernel<T, kD, kBlockN>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  ANVIL_CHECK(args.q_heads <= 65535 && args.batch <= 65535, "cuda attention: too many heads or sequences");
  const dim3 grid(static_cast<unsigned>((args.seq + kBlockM - 1) / kBlockM), static_cast<unsigned>(args.q_heads),
                  static_cast<unsigned>(args.batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T>
void forward_typed(const Args& args, cudaStream_t stream) {
  // D = 64: 64-key tiles, 2 blocks per SM (126 registers): 1.24x the 128-key tiles at one
  // block per SM, whose softmax the matmuls of one block cannot hide (docs/perf.md).
  if (args.head_dim == 64) return launch<T, 64, 64>(args, stream);
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no wgmma forward for head_dim ", args.head_dim);
  launch<T, 128, 128>(args, stream);
}

}  // namespace

void wgmma_forward(const Args& args, DType dtype, cudaStream_t stream) {
  if (dtype == DType::BF16) return forward_typed<__nv_bfloat16>(args, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no wgmma forward for ", dtype_name(dtype));
  forward_typed<__half>(args, stream);
}

}  // namespace anvil::cuda::attention
