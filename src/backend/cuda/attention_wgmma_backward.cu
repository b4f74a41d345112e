// Attention backward on Hopper's warpgroup MMA (wgmma, sm_90a) for bf16/f16 storage and head
// dims 64 and 128, in one pass over the keys (FlashAttention-3's layout). Needs delta =
// rowsum(dout * out) and a zeroed f32 dQ accumulator, as mma_backward_fused does. With the scores in the exp2 domain,
// P = exp2(scale log2(e) q.k - lse log2(e)), dS = P (dout.v - delta); dV = P^T dout,
// dK = scale dS^T Q, dQ = scale dS K.
//
// Grid (ceil(T / 128), Hkv, B), 2 warpgroups, one block per SM: a block owns 128 keys of one
// (b, kv head), K and V resident in shared memory (128-byte-swizzle layout, wgmma.cuh);
// warpgroup g owns keys 64 g .. 64 g + 63. It walks the query heads of its group and, for
// each, the query tiles of kBlockQ (64 at D = 128, 128 at D = 64) that can see its keys (Q,
// dout, lse, delta copied by cp.async into kBuffers buffers: 3 at D = 128, so that one block
// barrier per step suffices, 2 at D = 64; see kOneBarrier). Per tile, each warpgroup computes the
// transposed products, so that its keys are the rows (M) of every accumulator:
//  1. S^T = K Q^T and dP^T = V dout^T (64 keys x kBlockQ, operands from shared memory);
//  2. P^T and dS^T in registers (masked only on tiles crossing T or the diagonal); dS^T also
//     to shared memory (keys x queries);
//  3. dV += P^T dout and dK += dS^T Q (64 x D, f32 in registers for the whole walk), P^T and
//     dS^T as register A operands, dout and Q read transposed;
//  4. dQ += dS K (kBlockQ x D over the block's 128 keys, A = dS^T read transposed, split
//     between the warpgroups by queries (kBlockQ = 128) or by columns (kBlockQ = 64)), added
//     into the f32 accumulator:
//     - D = 128: each warpgroup stores its 64 x 64 f32 part to shared memory as its threads
//       hold it (16 contiguous bytes per thread and column tile), and one thread adds it with
//       one bulk reduce (cp.reduce.async.bulk .add.f32): +5-8% over per-thread atomics. The
//       accumulator is laid out in that order, a kBlockQ x D tile per (b, head, query tile)
//       (dq_tile_offset), which wgmma_dq_accum_to_dq undoes;
//     - D = 64: by per-thread vector atomics into a (B, T, Hq, D) accumulator (the bulk
//       reduce measured 2-5% slower there).
//     The order of the additions between key blocks is not fixed: dQ may differ in the last
//     bits from run to run; dK and dV are written once and are deterministic.
#include "anvil/core/error.h"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"
#include "cuda/tma.cuh"
#include "cuda/wgmma.cuh"

namespace anvil::cuda::attention {
namespace {

constexpr int kThreads = 256;  // 2 warpgroups
constexpr int kBlockKeys = 128;

template <int kD>
constexpr int kBlockQOf = kD == 64 ? 128 : 64;
// dQ by bulk reduces of shared-memory tiles (else by per-thread atomics), see above.
template <int kD>
constexpr bool kTiledDq = kD == 128;

// D = 128: one block barrier per step (before dQ), with 3 buffers of Q / dout / lse / delta
// (a step's are refilled two steps later) and 2 of dS^T: 1.22-1.24x the two barriers per
// step of D = 64 (a barrier at the top of each step, 2 buffers, 1 dS^T), which lost 5% at
// D = 64 with one.
template <int kD>
constexpr bool kOneBarrier = kD == 128;
template <int kD>
constexpr int kBuffers = kOneBarrier<kD> ? 3 : 2;
template <int kD>
constexpr int kDsBuffers = kOneBarrier<kD> ? 2 : 1;

template <int kD>
constexpr size_t backward_smem_bytes() {
  constexpr size_t kQ = kBlockQOf<kD>;
  // K, V; kBuffers of Q and dout; kDsBuffers of dS^T (keys x queries); kBuffers of lse and
  // delta (f32); the dQ tile (f32, kTiledDq); 1 KB to align the tiles to the swizzle's 1024 bytes.
  return sizeof(uint16_t) * (2 * kBlockKeys * kD + 2 * kBuffers<kD> * kQ * kD + kDsBuffers<kD> * kBlockKeys * kQ) +
         sizeof(float) * 2 * kBuffers<kD> * kQ + (kTiledDq<kD> ? sizeof(float) * kQ * kD : 0) + 1024;
}

// The dQ accumulator's layout: tile (b, h, query tile) of kBlockQ x kD floats at
// dq_tile_offset; in it, warpgroup g's 64 x 64 part (4096 floats) at 4096 g, and in that,
// float4 j (of 8) of thread t (of 128) at 4 (128 j + t), holding the thread's accumulators
// 4 j .. 4 j + 3 (wgmma.cuh's layout: rows lane / 4 and + 8 of warp t / 32's 16, columns
// 8 j + 2 (lane % 4) + 0..1).
template <int kBlockQ, int kD>
__host__ __device__ __forceinline__ int64_t dq_tile_offset(const Args& args, int b, int h, int q_tile) {
  const int64_t q_tiles = (args.seq + kBlockQ - 1) / kBlockQ;
  return ((static_cast<int64_t>(b) * args.q_heads + h) * q_tiles + q_tile) * (kBlockQ * kD);
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads, 1) wgmma_backward_kernel(Args args, float* dq_accum) {
  constexpr int kBlockQ = kBlockQOf<kD>;
  constexpr int kBuffers = attention::kBuffers<kD>;
  constexpr uint32_t kKVBytes = kBlockKeys * kD * 2;
  constexpr uint32_t kKVBlockBytes = kBlockKeys * 128;  // a 64-column block of K or V
  constexpr uint32_t kQBytes = kBlockQ * kD * 2;
  constexpr uint32_t kQBlockBytes = kBlockQ * 128;         // a 64-column block of a Q / dout tile
  constexpr uint32_t kDsBlockBytes = kBlockKeys * 128;     // 64 queries of the dS^T tile
  constexpr uint32_t kDsBytes = kBlockKeys * kBlockQ * 2;  // one dS^T tile
  constexpr int kS = kBlockQ / 2;                          // S^T / dP^T accumulators per thread
  // dQ: kBlockQ = 128: warpgroup g takes queries 64 g.., all D columns; 64: all queries,
  // columns 64 g.. (D = 128).
  constexpr int kDqN = kBlockQ == 128 ? kD : kD / 2;
  static_assert(kDqN == 64, "the dQ split assumes 64-column wgmmas");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t k_s = (smem_address(smem_raw) + 1023U) & ~1023U;
  const uint32_t v_s = k_s + kKVBytes;
  const uint32_t q_s = v_s + kKVBytes;                        // kBuffers
  const uint32_t do_s = q_s + kBuffers * kQBytes;             // kBuffers
  const uint32_t ds_s = do_s + kBuffers * kQBytes;            // 2 x (kBlockKeys, kBlockQ) in 64-query blocks
  const uint32_t stats_s = ds_s + kDsBuffers<kD> * kDsBytes;  // lse[kBuffers][kBlockQ], delta[kBuffers][kBlockQ]
  [[maybe_unused]] const uint32_t dq_s =
      stats_s + 2 * kBuffers * kBlockQ * 4;  // (kBlockQ, kD) f32, dq_tile_offset's order
  float* stats = reinterpret_cast<float*>(smem_raw + (stats_s - smem_address(smem_raw)));

  const int seq = args.seq;
  const int group = args.group();
  const int b = static_cast<int>(blockIdx.z);
  const int kv_h = static_cast<int>(blockIdx.y);
  const int k0 = static_cast<int>(blockIdx.x) * kBlockKeys;
  const int tid = static_cast<int>(threadIdx.x);
  const int wg = tid / 128;
  const int warp = (tid / 32) % 4;  // within the warpgroup
  const int lane = tid % 32;
  const int quad_lane = lane & 3;
  // This thread's accumulator rows (keys, block-relative): key_a and key_a + 8.
  const int key_a = wg * 64 + warp * 16 + (lane >> 2);
  const int64_t q_step = static_cast<int64_t>(args.q_heads) * kD;
  const int64_t kv_step = static_cast<int64_t>(args.kv_heads) * kD;
  const int first_q_tile = args.causal ? k0 / kBlockQ : 0;
  const int q_tiles = max((seq + kBlockQ - 1) / kBlockQ - first_q_tile, 0);
  const int steps = group * q_tiles;  // (query head, query tile) pairs, head-major

  auto load_step = [&](int step, int buffer) {
    const int h = kv_h * group + step / q_tiles;
    const int q0 = (first_q_tile + step % q_tiles) * kBlockQ;
    const int64_t row0 = args.q_offset(b, 0, h);
    const uint32_t offset = static_cast<uint32_t>(buffer) * kQBytes;
    wgmma::load_rows_swizzled<T, kD, kBlockQ, kThreads>(q_s + offset, static_cast<const T*>(args.q) + row0, q_step, q0,
                                                        seq);
    wgmma::load_rows_swizzled<T, kD, kBlockQ, kThreads>(do_s + offset, static_cast<const T*>(args.dout) + row0, q_step,
                                                        q0, seq);
    if (tid < kBlockQ) {
      const int t = q0 + tid;
      const bool valid = t < seq;
      const int64_t stat = args.stat_offset(b, h) + (valid ? t : 0);
      cp_async_4(stats + buffer * kBlockQ + tid, args.lse + stat, valid);
      cp_async_4(stats + (kBuffers + buffer) * kBlockQ + tid, args.delta + stat, valid);
    }
  };

  wgmma::load_rows_swizzled<T, kD, kBlockKeys, kThreads>(
      k_s, static_cast<const T*>(args.k) + args.kv_offset(b, 0, kv_h), kv_step, k0, seq);
  wgmma::load_rows_swizzled<T, kD, kBlockKeys, kThreads>(
      v_s, static_cast<const T*>(args.v) + args.kv_offset(b, 0, kv_h), kv_step, k0, seq);
  if (steps > 0) load_step(0, 0);
  cp_async_commit();
  if constexpr (kOneBarrier<kD>) {
    if (steps > 1) load_step(1, 1);
    cp_async_commit();
    cp_async_wait<1>();  // K, V and step 0's tiles
    wgmma::fence_shared_for_async();
    __syncthreads();
  }

  float dk[kD / 2];
  float dv[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) dk[i] = dv[i] = 0.0F;
  const uint32_t k_rows = k_s + static_cast<uint32_t>(wg) * 64U * 128U;  // this warpgroup's keys
  const uint32_t v_rows = v_s + static_cast<uint32_t>(wg) * 64U * 128U;

  // kOneBarrier: one block barrier per step, before dQ: by then every thread has its copies
  // of the next step's tiles landed (issued one step earlier), both dS^T halves are stored,
  // and both warpgroups are done with the step before (its wgmmas waited for), whose buffers
  // the copies for two steps ahead refill. dS^T is double-buffered: the other warpgroup may
  // still read this step's while this one stores the next. Otherwise also one at the top of
  // each step, after which the next step's copies are issued.
  for (int step = 0; step < steps; ++step) {
    const int buffer = step % kBuffers;
    if constexpr (!kOneBarrier<kD>) {
      // This step's tiles have landed; every warpgroup is done with the previous step (its
      // buffers and the dS^T tile).
      cp_async_wait<0>();
      wgmma::fence_shared_for_async();
      __syncthreads();
      if (step + 1 < steps) load_step(step + 1, (step + 1) % kBuffers);
      cp_async_commit();
    }
    const int h = kv_h * group + step / q_tiles;
    const int q0 = (first_q_tile + step % q_tiles) * kBlockQ;
    const uint32_t q_tile = q_s + static_cast<uint32_t>(buffer) * kQBytes;
    const uint32_t do_tile = do_s + static_cast<uint32_t>(buffer) * kQBytes;
    const uint32_t ds_tile = ds_s + static_cast<uint32_t>(step % kDsBuffers<kD>) * kDsBytes;
    const float* lse_tile = stats + buffer * kBlockQ;
    const float* delta_tile = stats + (kBuffers + buffer) * kBlockQ;

    // 1. S^T = K Q^T, dP^T = V dout^T.
    float s[kS];
    float dp[kS];
    wgmma::fence_operands(s);
    wgmma::fence_operands(dp);
    wgmma::fence();
    wgmma::gemm_kmajor<T, kD, kBlockQ>(s, k_rows, kKVBlockBytes, q_tile, kQBlockBytes);
    wgmma::commit();
    wgmma::gemm_kmajor<T, kD, kBlockQ>(dp, v_rows, kKVBlockBytes, do_tile, kQBlockBytes);
    wgmma::commit();

    // 2. P^T (while dP^T is computed), then dS^T; accumulator i: key row
    // key_a + 8 ((i / 2) % 2), query column 8 (i / 4) + 2 quad_lane + i % 2. dS^T also goes
    // to shared memory.
    wgmma::wait<1>();
    wgmma::fence_operands(s);
    const bool need_mask = q0 + kBlockQ > seq || k0 + kBlockKeys > seq || (args.causal && q0 < k0 + kBlockKeys - 1);
#pragma unroll
    for (int nt = 0; nt < kBlockQ / 8; ++nt) {
      const int qi = 8 * nt + 2 * quad_lane;
      const float2 lse = *reinterpret_cast<const float2*>(lse_tile + qi);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 4 * nt + e;
        const int query = q0 + qi + (e & 1);
        const int key = k0 + key_a + 8 * (e >> 1);
        const bool visible = !need_mask || (query < seq && key < seq && (!args.causal || key <= query));
        const float lse2 = ((e & 1) == 0 ? lse.x : lse.y) * kLog2e;
        s[i] = visible ? fast_exp2(fmaf(s[i], args.scale_log2, -lse2)) : 0.0F;
      }
    }
    wgmma::wait<0>();
    wgmma::fence_operands(dp);
    uint32_t p[kBlockQ / 16][4];
    uint32_t ds[kBlockQ / 16][4];
#pragma unroll
    for (int nt = 0; nt < kBlockQ / 8; ++nt) {
      const int qi = 8 * nt + 2 * quad_lane;
      const float2 delta = *reinterpret_cast<const float2*>(delta_tile + qi);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int i = 4 * nt + 2 * r;
        const uint32_t p_bits = pack2<T>(s[i], s[i + 1]);
        const uint32_t ds_bits = pack2<T>(s[i] * (dp[i] - delta.x), s[i + 1] * (dp[i + 1] - delta.y));
        // A fragment of k-step nt / 2: registers {row g, cols 0-7}, {row g + 8, 0-7},
        // {row g, 8-15}, {row g + 8, 8-15} of its 16 columns.
        p[nt / 2][2 * (nt % 2) + r] = p_bits;
        ds[nt / 2][2 * (nt % 2) + r] = ds_bits;
        const uint32_t address =
            ds_tile + wgmma::swizzled_offset<kBlockKeys>(key_a + 8 * r, nt) + 4U * static_cast<uint32_t>(quad_lane);
        wgmma::store_shared(address, ds_bits);
      }
    }

    // 3. dV += P^T dout, dK += dS^T Q (dout and Q read transposed).
    wgmma::fence_operands(p);
    wgmma::fence_operands(ds);
    wgmma::fence_operands(dv);
    wgmma::fence_operands(dk);
    wgmma::fence();
    wgmma::gemm_registers_mn<T, kBlockQ, kD>(dv, p, do_tile, kQBlockBytes);
    wgmma::gemm_registers_mn<T, kBlockQ, kD>(dk, ds, q_tile, kQBlockBytes);
    wgmma::commit();

    // 4. dQ += dS K once both warpgroups' dS^T rows are in shared memory (and the previous
    // step's dQ tile has been read by its bulk reduce); then the copies for two steps ahead.
    if (kTiledDq<kD> && tid % 128 == 0) tma::bulk_wait_read<0>();
    if constexpr (kOneBarrier<kD>) cp_async_wait<0>();  // the next step's tiles
    wgmma::fence_shared_for_async();
    __syncthreads();
    if constexpr (kOneBarrier<kD>) {
      if (step + 2 < steps) load_step(step + 2, (step + 2) % kBuffers);
      cp_async_commit();
    }
    float dq[kDqN / 2];
    // kBlockQ = 128: this warpgroup's 64 queries are dS^T's column block wg, all of K's
    // columns; kBlockQ = 64: all queries (column block 0), K's column block wg.
    const uint32_t ds_block = ds_tile + (kBlockQ == 128 ? static_cast<uint32_t>(wg) * kDsBlockBytes : 0U);
    const uint32_t k_block = k_s + (kBlockQ == 128 ? 0U : static_cast<uint32_t>(wg) * kKVBlockBytes);
    wgmma::fence_operands(dq);
    wgmma::gemm_mn<T, kBlockKeys, kDqN>(dq, ds_block, kDsBlockBytes, k_block, kKVBlockBytes);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::fence_operands(dq);
    wgmma::fence_operands(dv);
    wgmma::fence_operands(dk);
    if constexpr (kTiledDq<kD>) {
      // This warpgroup's part of the dQ tile, then one bulk reduce into the accumulator.
      const uint32_t part = dq_s + static_cast<uint32_t>(wg) * 64U * 64U * 4U;
      const int t = tid % 128;
#pragma unroll
      for (int j = 0; j < kDqN / 8; ++j) {
        asm volatile(
            "st.shared.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(part + static_cast<uint32_t>(j * 128 + t) * 16U),
            "f"(dq[4 * j]), "f"(dq[4 * j + 1]), "f"(dq[4 * j + 2]), "f"(dq[4 * j + 3])
            : "memory");
      }
      wgmma::fence_shared_for_async();
      tma::named_sync(1 + wg, 128);
      if (t == 0) {
        float* tile = dq_accum + dq_tile_offset<kBlockQ, kD>(args, b, h, q0 / kBlockQ) + wg * 64 * 64;
        tma::bulk_reduce_add_f32(tile, part, 64U * 64U * 4U);
        tma::bulk_commit();
      }
    } else {
      const int query0 = q0 + (kBlockQ == 128 ? wg * 64 : 0) + warp * 16 + (lane >> 2);
      const int col0 = (kBlockQ == 128 ? 0 : wg * 64) + 2 * quad_lane;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int query = query0 + 8 * r;
        if (query < seq) {
          float* row = dq_accum + args.q_offset(b, query, h) + col0;
#pragma unroll
          for (int nt = 0; nt < kDqN / 8; ++nt) {
            atomicAdd(reinterpret_cast<float2*>(row + 8 * nt), make_float2(dq[4 * nt + 2 * r], dq[4 * nt + 2 * r + 1]));
          }
        }
      }
    }
  }
  if (kTiledDq<kD> && tid % 128 == 0) tma::bulk_wait<0>();  // the last dQ reduce has read its tile
  cp_async_wait<0>();                                       // the K/V loads when there was no step
  __syncthreads();                                          // every warpgroup is done with K and V: stage dK / dV there

  // dK (scaled) into the K tile, dV into the V tile, same swizzled layout, then 16-byte stores.
#pragma unroll
  for (int nt = 0; nt < kD / 8; ++nt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint32_t offset = wgmma::swizzled_offset<kBlockKeys>(key_a + 8 * r, nt) + 4U * quad_lane;
      const uint32_t dk_bits = pack2<T>(dk[4 * nt + 2 * r] * args.scale, dk[4 * nt + 2 * r + 1] * args.scale);
      const uint32_t dv_bits = pack2<T>(dv[4 * nt + 2 * r], dv[4 * nt + 2 * r + 1]);
      wgmma::store_shared(k_s + offset, dk_bits);
      wgmma::store_shared(v_s + offset, dv_bits);
    }
  }
  __syncthreads();
  constexpr int kChunksPerRow = kD / 8;
  T* dk_out = static_cast<T*>(args.dk);
  T* dv_out = static_cast<T*>(args.dv);
  for (int id = tid; id < kBlockKeys * kChunksPerRow; id += kThreads) {
    const int r = id / kChunksPerRow;
    const int c = id % kChunksPerRow;
    const int key = k0 + r;
    if (key < seq) {
      const uint32_t offset = wgmma::swizzled_offset<kBlockKeys>(r, c);
      const int64_t out = args.kv_offset(b, key, kv_h) + c * 8;
      *reinterpret_cast<uint4*>(dk_out + out) = wgmma::load_shared_16(k_s + offset);
      *reinterpret_cast<uint4*>(dv_out + out) = wgmma::load_shared_16(v_s + offset);
    }
  }
}

template <typename T, int kD>
void launch(const Args& args, float* dq_accum, cudaStream_t stream) {
  constexpr size_t kSmem = backward_smem_bytes<kD>();
  static_assert(kSmem <= 227 * 1024, "shared memory beyond the SM's");
  auto kernel = wgmma_backward_kernel<T, kD>;
  ANVIL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)));
  // The key blocks of one head are adjacent in launch order: the blocks in flight walk the same
  // Q / dout tiles and add into the same dQ rows, which stay in L2.
  ANVIL_CHECK(args.kv_heads <= 65535 && args.batch <= 65535, "cuda attention: too many heads or sequences");
  const dim3 grid(static_cast<unsigned>((args.seq + kBlockKeys - 1) / kBlockKeys), static_cast<unsigned>(args.kv_heads),
                  static_cast<unsigned>(args.batch));
  kernel<<<grid, kThreads, kSmem, stream>>>(args, dq_accum);
  ANVIL_CUDA_CHECK_LAUNCH();
}

// dq = scale * dq_accum rounded to T, from the tiled layout of dq_tile_offset: thread i takes
// float4 i of the accumulator (two rows x two columns of one tile).
template <typename T, int kD>
__global__ void __launch_bounds__(256) dq_tiles_to_dq_kernel(Args args, const float* dq_accum, int64_t chunks) {
  constexpr int kBlockQ = kBlockQOf<kD>;
  constexpr int kTileChunks = kBlockQ * kD / 4;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= chunks) return;
  const float4 a = reinterpret_cast<const float4*>(dq_accum)[i];
  const int64_t tile = i / kTileChunks;
  const int within = static_cast<int>(i % kTileChunks);
  const int wg = within / 1024;  // 64 x 64 floats per warpgroup part
  const int j = (within % 1024) / 128;
  const int t = within % 128;
  const int lane = t % 32;
  const int q_tiles = (args.seq + kBlockQ - 1) / kBlockQ;
  const int64_t bh = tile / q_tiles;
  const int b = static_cast<int>(bh / args.q_heads);
  const int h = static_cast<int>(bh % args.q_heads);
  const int query0 =
      static_cast<int>(tile % q_tiles) * kBlockQ + (kBlockQ == 128 ? wg * 64 : 0) + (t / 32) * 16 + lane / 4;
  const int col = (kBlockQ == 128 ? 0 : wg * 64) + 8 * j + 2 * (lane % 4);
  T* dq = static_cast<T*>(args.dq);
  if (query0 < args.seq) {
    *reinterpret_cast<uint32_t*>(dq + args.q_offset(b, query0, h) + col) = pack2<T>(a.x * args.scale, a.y * args.scale);
  }
  if (query0 + 8 < args.seq) {
    *reinterpret_cast<uint32_t*>(dq + args.q_offset(b, query0 + 8, h) + col) =
        pack2<T>(a.z * args.scale, a.w * args.scale);
  }
}

template <typename T, int kD>
void convert_dq(const Args& args, const float* dq_accum, cudaStream_t stream) {
  constexpr int kBlockQ = kBlockQOf<kD>;
  const int64_t q_tiles = (args.seq + kBlockQ - 1) / kBlockQ;
  const int64_t chunks = static_cast<int64_t>(args.batch) * args.q_heads * q_tiles * kBlockQ * kD / 4;
  dq_tiles_to_dq_kernel<T, kD><<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(args, dq_accum, chunks);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename T>
void convert_typed(const Args& args, const float* dq_accum, cudaStream_t stream) {
  static_assert(!kTiledDq<64> && kTiledDq<128>);
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no tiled dQ accumulator for head_dim ", args.head_dim);
  convert_dq<T, 128>(args, dq_accum, stream);
}

template <typename T>
void backward_typed(const Args& args, float* dq_accum, cudaStream_t stream) {
  if (args.head_dim == 64) return launch<T, 64>(args, dq_accum, stream);
  ANVIL_CHECK(args.head_dim == 128, "cuda attention: no wgmma backward for head_dim ", args.head_dim);
  launch<T, 128>(args, dq_accum, stream);
}

}  // namespace

int64_t wgmma_dq_accum_elements(const Args& args) {
  constexpr int64_t block_q = 128;  // a multiple of either head dim's query tile
  static_assert(block_q % kBlockQOf<64> == 0 && block_q % kBlockQOf<128> == 0);
  return static_cast<int64_t>(args.batch) * args.q_heads * ((args.seq + block_q - 1) / block_q) * block_q *
         args.head_dim;
}

void wgmma_dq_accum_to_dq(const Args& args, DType dtype, const float* dq_accum, cudaStream_t stream) {
  if (args.head_dim != 128) return dq_accum_to_dq(args, dtype, dq_accum, stream);  // (B, T, Hq, D), atomics
  if (dtype == DType::BF16) return convert_typed<__nv_bfloat16>(args, dq_accum, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no wgmma backward for ", dtype_name(dtype));
  convert_typed<__half>(args, dq_accum, stream);
}

void wgmma_backward(const Args& args, DType dtype, float* dq_accum, cudaStream_t stream) {
  if (dtype == DType::BF16) return backward_typed<__nv_bfloat16>(args, dq_accum, stream);
  ANVIL_CHECK(dtype == DType::F16, "cuda attention: no wgmma backward for ", dtype_name(dtype));
  backward_typed<__half>(args, dq_accum, stream);
}

}  // namespace anvil::cuda::attention
