// Attention forward on Hopper (sm_90a), warp-specialised as in FlashAttention-3: one producer
// warpgroup copies Q and the K / V tiles with TMA into a ring of shared-memory stages, and
// kConsumers warpgroups of 64 query rows each run the wgmma math of
// attention_wgmma_forward.cu (intra-warpgroup overlap of S_j = Q K_j^T with
// O += P_{j-1} V_{j-1} and the softmax of tile j) without ever meeting at a block barrier:
// every stage has a `full` transaction barrier (the producer's copies land) and an `empty`
// one (every consumer warp is done with it), see tma.cuh.
//
// The producer gives its registers up (setmaxnreg 24) to the consumers (240 with two, 160
// with three, 112 with four consumer warpgroups, 104 with two at two blocks per SM). With
// kPingPong the consumers take turns at the tensor cores through named barriers: warpgroup g
// issues its wgmmas of one step only after warpgroup g - 1 issued its own, so one
// warpgroup's softmax runs while another's matmuls do.
//
// Grid (ceil(T / (64 kConsumers)), Hq, B), (kConsumers + 1) x 128 threads.
#include <algorithm>
#include <iterator>

#include "anvil/core/error.h"
#include "cuda/attention_kernels.h"
#include "cuda/attention_device.cuh"
#include "cuda/attention_wgmma_softmax.cuh"
#include "cuda/cuda_check.h"
#include "cuda/tensor_map.h"
#include "cuda/tma.cuh"
#include "cuda/wgmma.cuh"

namespace anvil::cuda::attention {
namespace {

using wgmma_softmax::pack_probabilities;
using wgmma_softmax::rescale;
using wgmma_softmax::softmax_tile;
using wgmma_softmax::write_output;

// Named barriers: 1 + g, consumer g's turn (ping-pong); 5 + g, consumer g's output staging.
constexpr uint32_t kTurnBarrier = 1;
constexpr uint32_t kOutputBarrier = 5;

template <int kD, int kBlockN, int kConsumers, int kStages, int kMinBlocks>
struct TmaForwardConfig {
  static constexpr int kBlockM = kConsumers * 64;
  static constexpr int kThreads = (kConsumers + 1) * 128;
  static constexpr uint32_t kQBytes = kBlockM * kD * 2;
  static constexpr uint32_t kKVBytes = kBlockN * kD * 2;  // one K or V tile
  static constexpr uint32_t kTileBytes = kQBytes + 2 * kStages * kKVBytes;
  // Barriers: full Q, then per stage full K, full V, empty K, empty V (8 bytes each).
  static constexpr uint32_t kBarrierBytes = 8 * (1 + 4 * kStages);
  // + 1 KB to align the tiles to the swizzle's 1024 bytes.
  static constexpr size_t kSmemBytes = kTileBytes + kBarrierBytes + 1024;
  // Registers: a block holds kLaunchRegisters per thread (what __launch_bounds__ leaves for
  // kMinBlocks blocks per SM, in steps of 8); the producer keeps 24 and the consumers share
  // the rest (at most 240).
  static constexpr uint32_t kLaunchRegisters = (65536 / kMinBlocks / kThreads) / 8 * 8;
  static constexpr uint32_t kProducerRegisters = 24;
  static constexpr uint32_t kConsumerRegisters =
      std::min<uint32_t>(240, (kLaunchRegisters * kThreads - kProducerRegisters * 128) / (128 * kConsumers) / 8 * 8);
  static_assert(kSmemBytes * kMinBlocks <= 227 * 1024, "shared memory of kMinBlocks blocks exceeds the SM's");
};

// Releases a stage: one arrival per consumer warp (each after its own wgmma wait).
__device__ __forceinline__ void release_stage(uint32_t bar) {
  if (threadIdx.x % 32 == 0) tma::arrive(bar);
}

template <typename T, int kD, int kBlockN, int kConsumers, int kStages, bool kPingPong, int kMinBlocks>
__global__ void __launch_bounds__(TmaForwardConfig<kD, kBlockN, kConsumers, kStages, kMinBlocks>::kThreads, kMinBlocks)
    tma_forward_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                       const __grid_constant__ CUtensorMap v_map, Args args) {
  using Config = TmaForwardConfig<kD, kBlockN, kConsumers, kStages, kMinBlocks>;
  constexpr int kBlockM = Config::kBlockM;
  constexpr uint32_t kQBlockBytes = kBlockM * 128;   // one 64-column block of the Q tile
  constexpr uint32_t kKVBlockBytes = kBlockN * 128;  // of a K or V tile
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t q_s = (smem_address(smem_raw) + 1023U) & ~1023U;
  const uint32_t k_s = q_s + Config::kQBytes;             // kStages tiles
  const uint32_t v_s = k_s + kStages * Config::kKVBytes;  // kStages tiles
  const uint32_t barriers = q_s + Config::kTileBytes;
  const uint32_t full_q = barriers;
  const auto full_k = [&](int stage) { return barriers + 8U * static_cast<uint32_t>(1 + stage); };
  const auto full_v = [&](int stage) { return barriers + 8U * static_cast<uint32_t>(1 + kStages + stage); };
  const auto empty_k = [&](int stage) { return barriers + 8U * static_cast<uint32_t>(1 + 2 * kStages + stage); };
  const auto empty_v = [&](int stage) { return barriers + 8U * static_cast<uint32_t>(1 + 3 * kStages + stage); };
  const auto k_tile = [&](int tile) { return k_s + static_cast<uint32_t>(tile % kStages) * Config::kKVBytes; };
  const auto v_tile = [&](int tile) { return v_s + static_cast<uint32_t>(tile % kStages) * Config::kKVBytes; };
  // Parity of the phase a tile's use of its stage waits for: the stage's round of the ring.
  const auto round_parity = [](int tile) { return static_cast<uint32_t>((tile / kStages) & 1); };

  const int seq = args.seq;
  const int b = static_cast<int>(blockIdx.z);
  const int h = static_cast<int>(blockIdx.y);
  const int kv_h = h / args.group();
  const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kBlockM;  // causal: heaviest first
  const int key_end = args.causal ? min(seq, q0 + kBlockM) : seq;
  const int num_tiles = (key_end + kBlockN - 1) / kBlockN;
  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;

  if (tid == 0) {
    tma::barrier_init(full_q, 1);
    for (int stage = 0; stage < kStages; ++stage) {
      tma::barrier_init(full_k(stage), 1);
      tma::barrier_init(full_v(stage), 1);
      tma::barrier_init(empty_k(stage), kConsumers * 4);
      tma::barrier_init(empty_v(stage), kConsumers * 4);
    }
    tma::fence_barrier_init();
  }
  __syncthreads();

  if (warpgroup == 0) {
    // Producer: one thread issues every copy; the rest of the warpgroup is done.
    tma::release_registers<Config::kProducerRegisters>();
    if (tid == 0) {
      tma::prefetch_map(q_map);
      tma::prefetch_map(k_map);
      tma::prefetch_map(v_map);
      tma::arrive_expect_tx(full_q, Config::kQBytes);
#pragma unroll
      for (int cb = 0; cb < kD / 64; ++cb) tma::load_4d(q_s + cb * kQBlockBytes, q_map, full_q, cb * 64, h, q0, b);
      for (int tile = 0; tile < num_tiles; ++tile) {
        const int stage = tile % kStages;
        tma::wait(empty_k(stage), round_parity(tile) ^ 1U);
        tma::arrive_expect_tx(full_k(stage), Config::kKVBytes);
#pragma unroll
        for (int cb = 0; cb < kD / 64; ++cb) {
          tma::load_4d(k_tile(tile) + cb * kKVBlockBytes, k_map, full_k(stage), cb * 64, kv_h, tile * kBlockN, b);
        }
        tma::wait(empty_v(stage), round_parity(tile) ^ 1U);
        tma::arrive_expect_tx(full_v(stage), Config::kKVBytes);
#pragma unroll
        for (int cb = 0; cb < kD / 64; ++cb) {
          tma::load_4d(v_tile(tile) + cb * kKVBlockBytes, v_map, full_v(stage), cb * 64, kv_h, tile * kBlockN, b);
        }
      }
    }
    return;
  }

  tma::claim_registers<Config::kConsumerRegisters>();
  const int group = warpgroup - 1;
  const int warp = (tid / 32) % 4;  // within the warpgroup
  const int lane = tid % 32;
  const int group_row0 = q0 + group * 64;
  const int row_a = group_row0 + warp * 16 + (lane >> 2);  // this thread's rows: row_a, row_a + 8
  const float scale_log2 = args.scale_log2;
  // Ping-pong turns: wait for mine, then (after issuing) hand the turn to the next group.
  const auto take_turn = [&] {
    if constexpr (kPingPong) tma::named_sync(kTurnBarrier + group, 256);
  };
  const auto pass_turn = [&] {
    if constexpr (kPingPong) tma::named_arrive(kTurnBarrier + (group + 1) % kConsumers, 256);
  };
  if constexpr (kPingPong) {
    if (group == kConsumers - 1) tma::named_arrive(kTurnBarrier, 256);  // group 0 goes first
  }

  float o[kD / 2];
  float s[kBlockN / 2];
  uint32_t p[kBlockN / 16][4];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) o[i] = 0.0F;
  float m[2] = {-INFINITY, -INFINITY};  // running max, in the exp2 domain (raw score * scale_log2)
  float l[2] = {0.0F, 0.0F};
  float alpha[2];
  const uint32_t q_rows = q_s + group * 64 * 128;  // this warpgroup's rows, in each column block

  // Prologue: S_0 and its softmax.
  tma::wait(full_q, 0);
  tma::wait(full_k(0), 0);
  take_turn();
  wgmma::fence();
  wgmma::gemm_kmajor<T, kD, kBlockN>(s, q_rows, kQBlockBytes, k_tile(0), kKVBlockBytes);
  wgmma::commit();
  pass_turn();
  wgmma::wait<0>();
  wgmma::fence_operands(s);
  release_stage(empty_k(0));
  softmax_tile<kBlockN>(s, m, l, alpha, 0, row_a, group_row0, seq, args.causal, scale_log2, lane);
  pack_probabilities<T, kBlockN>(p, s);  // O is still 0: no rescale
  for (int tile = 1; tile < num_tiles; ++tile) {
    tma::wait(full_k(tile % kStages), round_parity(tile));
    tma::wait(full_v((tile - 1) % kStages), round_parity(tile - 1));
    take_turn();
    wgmma::fence_operands(s);
    wgmma::fence_operands(p);
    wgmma::fence_operands(o);
    wgmma::fence();
    wgmma::gemm_kmajor<T, kD, kBlockN>(s, q_rows, kQBlockBytes, k_tile(tile), kKVBlockBytes);
    wgmma::commit();
    wgmma::gemm_registers_mn<T, kBlockN, kD>(o, p, v_tile(tile - 1), kKVBlockBytes);
    wgmma::commit();
    pass_turn();
    wgmma::wait<1>();  // S_tile done; P V may still run
    wgmma::fence_operands(s);
    release_stage(empty_k(tile % kStages));
    softmax_tile<kBlockN>(s, m, l, alpha, tile * kBlockN, row_a, group_row0, seq, args.causal, scale_log2, lane);
    wgmma::wait<0>();
    wgmma::fence_operands(o);
    wgmma::fence_operands(p);
    release_stage(empty_v((tile - 1) % kStages));
    rescale<kD>(o, alpha);
    pack_probabilities<T, kBlockN>(p, s);
  }
  // Epilogue: the last tile's P V.
  tma::wait(full_v((num_tiles - 1) % kStages), round_parity(num_tiles - 1));
  take_turn();
  wgmma::fence_operands(p);
  wgmma::fence_operands(o);
  wgmma::fence();
  wgmma::gemm_registers_mn<T, kBlockN, kD>(o, p, v_tile(num_tiles - 1), kKVBlockBytes);
  wgmma::commit();
  pass_turn();
  if constexpr (kPingPong) {
    if (group == 0) take_turn();  // the last group's final hand-over, so no arrival is left pending
  }
  wgmma::wait<0>();
  wgmma::fence_operands(o);
  write_output<T, kD, kBlockM>(o, m, l, q_s, group, static_cast<int>(kOutputBarrier) + group, group_row0, b, h, args);
}

// One tiling: key tile, consumer warpgroups, stages, ping-pong, blocks per SM.
struct Tiling {
  int block_n, consumers, stages;
  bool ping_pong;
  int min_blocks;
  const char* name;
};

// Per head dim, as measured on the H100 (docs/perf.md); Auto (kTmaForwardFastest) takes
// variant 0 without a causal mask and variant 1 with it at D = 64, 2 and 0 at D = 128.
//  - D = 64: four consumer warpgroups (256 query rows) of 64-key tiles at 112 registers are
//    the fastest without a mask (371 TFLOP/s; three of 128-key tiles 359, two blocks per SM
//    of two 345, three of 64-key tiles 316); with it, the large blocks waste work on the
//    diagonal and two blocks per SM of two warpgroups win (255 vs 242 and 226), although
//    ptxas serialises their wgmmas for lack of registers (C7512).
//  - D = 128: two consumer warpgroups; 176-key tiles 0-2% ahead of 128-key ones without a
//    mask, 0-1% behind with it; 64-key tiles (two or three warpgroups) 4-16% slower, 3
//    stages up to 2% slower. Ping-pong ties everywhere (FlashAttention-3's default, kept).
constexpr Tiling kTilings64[] = {{64, 4, 2, true, 1, "n64 x4 pp"},
                                 {64, 2, 2, true, 2, "n64 x2 pp 2/SM"},
                                 {128, 3, 2, true, 1, "n128 x3 pp"},
                                 {128, 3, 2, false, 1, "n128 x3"}};
constexpr Tiling kTilings128[] = {
    {128, 2, 2, true, 1, "n128 x2 pp"}, {128, 2, 2, false, 1, "n128 x2"}, {176, 2, 2, true, 1, "n176 x2 pp"}};

template <typename T, int kD, int kBlockN, int kConsumers, int kStages, bool kPingPong, int kMinBlocks>
void launch(const Args& args, cudaStream_t stream) {
  using Config = TmaForwardConfig<kD, kBlockN, kConsumers, kStages, kMinBlocks>;
  auto kernel = tma_forward_kernel<T, kD, kBlockN, kConsumers, kStages, kPingPong, kMinBlocks>;
  ANVIL_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Config::kSmemBytes)));
  ANVIL_CHECK(args.q_heads <= 65535 && args.batch <= 65535, "cuda attention: too many heads or sequences");
  const TensorMapEncoder encoder;
  const CUtensorMap q_map = encoder.row_tiles(args.q, args.batch, args.seq, args.q_heads, kD, Config::kBlockM);
  const CUtensorMap k_map = encoder.row_tiles(args.k, args.batch, args.seq, args.kv_heads, kD, kBlockN);
  const CUtensorMap v_map = encoder.row_tiles(args.v, args.batch, args.seq, args.kv_heads, kD, kBlockN);
  const dim3 grid(static_cast<unsigned>((args.seq + Config::kBlockM - 1) / Config::kBlockM),
                  static_cast<unsigned>(args.q_heads), static_cast<unsigned>(args.batch));
  kernel<<<grid, Config::kThreads, Config::kSmemBytes, stream>>>(q_map, k_map, v_map, args);
  ANVIL_CUDA_CHECK_LAUNCH();
}

// Launches tiling kTilings[kIndex] (a constant expression, so its fields are template arguments).
template <typename T, int kD, const Tiling* kTilings, int kIndex>
void launch_tiling(const Args& args, cudaStream_t stream) {
  constexpr Tiling kTiling = kTilings[kIndex];
  launch<T, kD, kTiling.block_n, kTiling.consumers, kTiling.stages, kTiling.ping_pong, kTiling.min_blocks>(args,
                                                                                                           stream);
}

template <typename T, int kD, const Tiling* kTilings, int kCount>
void launch_variant(const Args& args, int variant, cudaStream_t stream) {
  ANVIL_CHECK(variant >= 0 && variant < kCount, "cuda attention: no TMA forward variant ", variant);
  switch (variant) {
    case 1:
      return launch_tiling<T, kD, kTilings, 1>(args, stream);
    case 2:
      return launch_tiling<T, kD, kTilings, 2>(args, stream);
    case 3:
      if constexpr (kCount > 3) return launch_tiling<T, kD, kTilings, 3>(args, stream);
      [[fallthrough]];
    default:
      return launch_tiling<T, kD, kTilings, 0>(args, stream);
  }
}

template <typename T>
void forward_typed(const Args& args, int variant, cudaStream_t stream) {
  if (args.head_dim == 64) {
    if (variant == kTmaForwardFastest) variant = args.causal ? 1 : 0;
    return launch_variant<T, 64, kTilings64, std::size(kTilings64)>(args, variant, stream);
  }
  if (variant == kTmaForwardFastest) variant = args.causal ? 0 : 2;
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no TMA forward for head_dim ", args.head_dim);
  launch_variant<T, 128, kTilings128, std::size(kTilings128)>(args, variant, stream);
}

}  // namespace

void wgmma_tma_forward(const Args& args, DType dtype, int variant, cudaStream_t stream) {
  if (dtype == DType::BF16) return forward_typed<__nv_bfloat16>(args, variant, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no TMA forward for ", dtype_name(dtype));
  forward_typed<__half>(args, variant, stream);
}

}  // namespace anvil::cuda::attention

namespace anvil::cuda {

int tma_forward_variants(int64_t head_dim) {
  if (head_dim == 64) return static_cast<int>(std::size(attention::kTilings64));
  return head_dim == 128 ? static_cast<int>(std::size(attention::kTilings128)) : 0;
}

const char* tma_forward_variant_name(int64_t head_dim, int variant) {
  if (variant < 0 || variant >= tma_forward_variants(head_dim)) return "?";
  return (head_dim == 64 ? attention::kTilings64 : attention::kTilings128)[variant].name;
}

}  // namespace anvil::cuda
