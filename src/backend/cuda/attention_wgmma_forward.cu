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
#include "cuda/attention_wgmma_softmax.cuh"
#include "cuda/wgmma.cuh"

namespace anvil::cuda::attention {
namespace {

using wgmma_softmax::pack_probabilities;
using wgmma_softmax::rescale;
using wgmma_softmax::softmax_tile;
using wgmma_softmax::write_output;

constexpr int kStages = 2;  // K/V tiles in shared memory

constexpr int kWarpGroups = 2;  // 64 query rows each (3 measured slower at D = 64)
constexpr int kThreads = kWarpGroups * 128;
constexpr int kBlockM = kWarpGroups * 64;

template <int kD, int kBlockN>
constexpr size_t wgmma_forward_smem_bytes() {
  // Q, kStages x (K, V), and 1 KB to align the tiles to the swizzle's 1024 bytes.
  return sizeof(uint16_t) * kD * (static_cast<size_t>(kBlockM) + 2 * kStages * kBlockN) + 1024;
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

  write_output<T, kD, kBlockM>(o, m, l, q_s, group, group + 1, group_row0, b, h, args);
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
