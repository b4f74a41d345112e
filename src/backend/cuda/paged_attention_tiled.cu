// Paged attention for f16/bf16 caches with head_dim 64 or 128, FlashDecoding-style: one
// thread block per (token, kv head, head chunk, partition of the keys) streams the
// partition's K/V rows through shared memory in tiles of 64 keys (16-byte cp.async, three
// stages in flight), and serves every query head of the kv head from each tile, so each
// K/V byte is read once per token. Arithmetic as the CPU's (cpu/paged_attention.cpp): q
// pre-scaled, f32 scores and online softmax (in log2 units, exp2f), output acc / sum; the
// summation order differs but is fixed, so results are deterministic.
//
// Per tile (128 threads):
//   scores: thread t owns key t / 2 and half t % 2 of its 16-byte chunks; a pair's dot
//           products meet with one shuffle. The tile max per head is a block reduction.
//   p @ V:  thread t owns chunk t % (D / 8) of the row (8 elements) for every head and the
//           keys t / (D / 8), + 128 / (D / 8), ...; those key lanes are summed at the end.
// Rows in shared memory are swizzled (chunk c of key k at chunk c ^ (k % 8)) so that the
// score reads of 8 keys and the cp.async writes hit distinct banks.
#include <algorithm>
#include <type_traits>

#include "cuda/activation_codes.cuh"
#include "cuda/attention_device.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/device_float.cuh"
#include "cuda/paged_attention_tiled.h"

namespace anvil::cuda {
namespace {

using attention::cp_async_16;
using attention::cp_async_commit;
using attention::cp_async_wait;

constexpr int kWarpSize = 32;
constexpr int kTile = static_cast<int>(kTiledKeys);
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr float kLog2E = 1.4426950408889634F;
constexpr int64_t kMaxTiledPartitions = 1024;  // the planner's bound (kMaxPartitions)

// The shape of one kernel: head_dim, query heads per block, threads, pipeline stages.
template <int kDim, int kHeadCount, int kThreadCount, int kStageCount>
struct Config {
  static constexpr int kD = kDim;
  static constexpr int kHeads = kHeadCount;
  static constexpr int kThreads = kThreadCount;
  static constexpr int kStages = kStageCount;
  static constexpr int kWarps = kThreads / kWarpSize;
  static constexpr int kChunks = kD / 8;                     // 16-byte chunks of a row
  static constexpr int kKeyThreads = kThreads / kTile;       // scores: threads per key
  static constexpr int kPartChunks = kChunks / kKeyThreads;  // scores: chunks per thread
  static constexpr int kKeyLanes = kThreads / kChunks;       // p @ V: threads per chunk column
  static constexpr int kQStride = kD + 4 * kKeyThreads;      // floats per q row (see q_index)
  static constexpr int kStageElems = kTile * kD;
  static constexpr size_t kStageBytes = 2 * kStages * static_cast<size_t>(kStageElems) * 2;  // K and V
  static constexpr size_t kLanesBytes = static_cast<size_t>(kKeyLanes) * kHeads * kD * sizeof(float);
  static constexpr size_t kReusedBytes = kStageBytes > kLanesBytes ? kStageBytes : kLanesBytes;
  static constexpr size_t kFloats = kHeads * kQStride + kTile * kHeads + 2 * kWarps * kHeads;
  static constexpr size_t kSharedBytes = kReusedBytes + kFloats * sizeof(float);
  static_assert(kThreads % kTile == 0 && kChunks % kKeyThreads == 0 && kHeads % 4 == 0, "tile shape");
};

// q element (h, d) in shared memory: the chunks of score part p sit 4 * p floats further,
// so the parts of a key, which read different chunks at once, hit different banks.
template <typename Cfg>
__device__ __forceinline__ int q_index(int h, int d) {
  return h * Cfg::kQStride + d + 4 * ((d / 8) / Cfg::kPartChunks);
}

__device__ __forceinline__ void to_floats(const uint4& raw, const __nv_bfloat16* /*type*/, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000U);
  }
}

__device__ __forceinline__ void to_floats(const uint4& raw, const __half* /*type*/, float (&out)[8]) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(__halves2half2(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xFFFFU)),
                                                   __ushort_as_half(static_cast<unsigned short>(words[i] >> 16))));
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// Eight elements of chunk `chunk` of tile row `key` (swizzled), as floats.
template <typename C, int kD>
__device__ __forceinline__ void load_chunk(const C* tile, int key, int chunk, float (&out)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(tile + key * kD + ((chunk ^ (key & 7)) * 8));
  to_floats(raw, static_cast<const C*>(nullptr), out);
}

// Queues the cp.async copies of keys [tile_lo, tile_lo + kTile) ∩ [.., hi) of one kv head
// into a K and a V stage; rows past hi are zero-filled (their p is 0, and 0 * 0 stays 0).
template <typename C, typename Cfg>
__device__ __forceinline__ void load_tile(const PagedAttentionArgs& args, const int32_t* table, int64_t kv_head,
                                          int64_t tile_lo, int64_t hi, const C* key_cache, const C* value_cache,
                                          C* k_stage, C* v_stage) {
  constexpr int kKeyStride = Cfg::kThreads / Cfg::kChunks;
  const int chunk = static_cast<int>(threadIdx.x) % Cfg::kChunks;
  const auto block_size = static_cast<int32_t>(args.block_size);
#pragma unroll
  for (int r = 0; r < kTile / kKeyStride; ++r) {
    const int key = static_cast<int>(threadIdx.x) / Cfg::kChunks + r * kKeyStride;
    const int64_t position = tile_lo + key;
    const bool valid = position < hi;
    int64_t offset = 0;
    if (valid) {  // positions fit in int32 (checked with the indices)
      const auto p = static_cast<int32_t>(position);
      const int32_t block_index = p / block_size;
      const int64_t slot = static_cast<int64_t>(table[block_index]) * block_size + (p - block_index * block_size);
      offset = (slot * args.kv_heads + kv_head) * Cfg::kD + chunk * 8;
    }
    const int dst = key * Cfg::kD + ((chunk ^ (key & 7)) * 8);
    cp_async_16(k_stage + dst, key_cache + offset, valid);
    cp_async_16(v_stage + dst, value_cache + offset, valid);
  }
}

// Asks L2 for the K and V rows of keys [lo, hi) of one kv head (a hint: no data moves to
// this block). Issued before wait_for_producer() for the first tiles, so that they stream
// in from memory while the kernel before this one finishes: only the newest row is written
// by it, and the copies after the wait read through L2 (cp.async.cg), so they see that
// write. (Prefetching a whole long partition evicts its own rows before their use: 80% of
// copy bandwidth fell to 64% at 32 x 4096 keys.)
template <typename C, typename Cfg>
__device__ __forceinline__ void prefetch_rows_l2(const PagedAttentionArgs& args, const int32_t* table, int64_t kv_head,
                                                 int64_t lo, int64_t hi, const C* key_cache, const C* value_cache) {
  constexpr uint32_t kRowBytes = Cfg::kD * sizeof(C);
  const auto block_size = static_cast<int32_t>(args.block_size);
  for (int64_t position = lo + threadIdx.x; position < hi; position += Cfg::kThreads) {
    const auto p = static_cast<int32_t>(position);
    const int32_t block_index = p / block_size;
    const int64_t slot = static_cast<int64_t>(table[block_index]) * block_size + (p - block_index * block_size);
    const int64_t offset = (slot * args.kv_heads + kv_head) * Cfg::kD;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(key_cache + offset), "r"(kRowBytes) : "memory");
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(value_cache + offset), "r"(kRowBytes) : "memory");
  }
}

// Whether this block is the last of the `count` partitions of its (token, kv head, head
// chunk) to have written its partials (threadfence-reduction pattern): each block fences
// its partials' writes, then counts itself; the block that brings the counter to `count`
// resets it to 0 for the next launch (no other block of this launch touches it again) and
// fences again before it reads the others' partials.
__device__ __forceinline__ bool is_last_partition(int32_t* counter, int count) {
  __shared__ int last;
  __threadfence();
  __syncthreads();  // every thread's partial writes are fenced before the count
  if (threadIdx.x == 0) {
    const bool done = atomicAdd(counter, 1) == count - 1;
    if (done) *counter = 0;
    last = done ? 1 : 0;
  }
  __syncthreads();
  if (last == 0) return false;
  __threadfence();
  return true;
}

// Output `index` of out (N * Hq * D), or, when the call writes quantized_matmul's activations,
// its code: the 32 lanes of a warp hold 32 consecutive outputs of one head (D is 64 or 128,
// output o of a block is thread o % threads), a block of Q8Act, so every lane must call.
template <typename Q>
__device__ __forceinline__ void store_output(const QuantizedActivations& codes, Q* out, int64_t index, float value) {
  if (codes.codes != nullptr) {
    quantize_warp_block(value, index, codes);
  } else {
    store_float(out + index, value);
  }
}

// The fused combine, run by the last block of a (token, kv head, head chunk): merges the
// `count` partials of each of its `heads` query rows as combine_partitions_kernel does
// (paged_attention_kernels.cu). Its cost is a chain of L2 round trips after the last
// partition's bytes arrive, so the loads are issued together: thread t first loads the acc
// partials of its outputs (h, d) = t, t + kThreads, ... for the first kPrefetch partitions
// into registers; warp w takes heads w, w + kWarps, ...: the max over the partitions, the
// weights 2^(max_z - top) (into `weights`, (kHeads, count) floats of the free stage memory)
// and 1 / sum_z sum_z * weight_z (into `inverse`); then each output is sum_z acc_z * weight_z
// in z order. Partials are read with ld.cg (L2: written by other blocks). Deterministic:
// fixed orders throughout, whichever block runs it.
template <typename Q, typename Cfg>
__device__ void merge_partitions(const PagedPartials& parts, int64_t first_q_row, int heads, int count,
                                 Q* __restrict__ out, const QuantizedActivations& codes, float* weights,
                                 float* inverse) {
  constexpr int kD = Cfg::kD;
  constexpr int kOutputs = Cfg::kHeads * kD / Cfg::kThreads;  // outputs per thread (heads <= kHeads)
  constexpr int kPrefetch = 64 / kOutputs;                    // 64 registers of acc partials
  static_assert(Cfg::kHeads * kD % Cfg::kThreads == 0, "whole outputs per thread");
  static_assert(Cfg::kReusedBytes >= Cfg::kHeads * kMaxTiledPartitions * sizeof(float), "weights fit");
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize;
  float prefetched[kOutputs][kPrefetch];
#pragma unroll
  for (int j = 0; j < kOutputs; ++j) {
    const int o = tid + j * Cfg::kThreads;
    const float* acc = parts.acc + (first_q_row + o / kD) * parts.partitions * kD + o % kD;
#pragma unroll
    for (int z = 0; z < kPrefetch; ++z) {
      prefetched[j][z] = o < heads * kD && z < count ? __ldcg(acc + static_cast<int64_t>(z) * kD) : 0.0F;
    }
  }
  __syncthreads();  // the stage memory (the key lanes' acc) is free
  for (int h = tid / kWarpSize; h < heads; h += Cfg::kWarps) {
    const float* maxes = parts.max + (first_q_row + h) * parts.partitions;
    const float* sums = parts.sum + (first_q_row + h) * parts.partitions;
    float top = -INFINITY;
    for (int z = lane; z < count; z += kWarpSize) {
      const float partition_max = __ldcg(maxes + z);
      weights[h * count + z] = partition_max;
      top = fmaxf(top, partition_max);
    }
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1)
      top = fmaxf(top, __shfl_xor_sync(kFullMask, top, offset));
    float total = 0.0F;
    for (int z = lane; z < count; z += kWarpSize) {
      const float weight = exp2f(weights[h * count + z] - top);  // the lane's own write
      weights[h * count + z] = weight;
      total += __ldcg(sums + z) * weight;
    }
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) total += __shfl_xor_sync(kFullMask, total, offset);
    if (lane == 0) inverse[h] = 1.0F / total;
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kOutputs; ++j) {
    const int o = tid + j * Cfg::kThreads;
    if (o >= heads * kD) break;
    const int h = o / kD;
    const float* acc = parts.acc + (first_q_row + h) * parts.partitions * kD + o % kD;
    const float* weight = weights + h * count;
    float value = 0.0F;
#pragma unroll
    for (int z = 0; z < kPrefetch; ++z) {
      if (z < count) value += prefetched[j][z] * weight[z];
    }
#pragma unroll 8
    for (int z = kPrefetch; z < count; ++z) value += __ldcg(acc + static_cast<int64_t>(z) * kD) * weight[z];
    store_output(codes, out, (first_q_row + h) * kD + o % kD, value * inverse[h]);
  }
}

// Block (token, kv head * head_chunks + chunk, partition): keys [lo, hi) of the token's
// visible range in tiles; partitions past the range exit before touching anything.
template <typename Q, typename C, typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    tiled_paged_attention_kernel(PagedAttentionArgs args, PagedPartials parts) {
  allow_dependents();  // the o projection's GEMV (or the combine) may launch and wait
  const auto* q =
      static_cast<const Q*>(args.q);  // the kernel ahead's output: no __restrict__ (see dependent_launch.cuh)
  auto* __restrict__ out = static_cast<Q*>(args.out);
  const auto* __restrict__ key_cache = static_cast<const C*>(args.key_cache);
  const auto* __restrict__ value_cache = static_cast<const C*>(args.value_cache);
  constexpr int kD = Cfg::kD;
  constexpr int kHeads = Cfg::kHeads;
  constexpr int kStages = Cfg::kStages;
  constexpr int kWarps = Cfg::kWarps;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  C* k_stages = reinterpret_cast<C*>(shared_raw);
  C* v_stages = k_stages + kStages * Cfg::kStageElems;
  auto* q_shared = reinterpret_cast<float*>(shared_raw + Cfg::kReusedBytes);
  float* p_shared = q_shared + kHeads * Cfg::kQStride;  // (kTile, kHeads)
  float* warp_max = p_shared + kTile * kHeads;          // (kWarps, kHeads)
  float* warp_sum = warp_max + kWarps * kHeads;         // (kWarps, kHeads)

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize;
  const int warp = tid / kWarpSize;
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t chunks = (group + kHeads - 1) / kHeads;
  const int64_t token = blockIdx.x;
  const int64_t kv_head = blockIdx.y / chunks;
  const int64_t first_head = (blockIdx.y % chunks) * kHeads;
  const int heads = static_cast<int>(min(static_cast<int64_t>(kHeads), group - first_head));
  const int64_t position = args.positions[token];
  const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
  const int64_t lo = first + static_cast<int64_t>(blockIdx.z) * parts.partition_len;
  const int64_t hi = min(position + 1, lo + parts.partition_len);
  if (lo >= hi) return;  // the whole block: past this token's range (the combine skips it)
  const int32_t* table = args.block_tables + static_cast<int64_t>(args.token_sequences[token]) * args.max_blocks;
  const int64_t first_q_row = token * args.q_heads + kv_head * group + first_head;  // in (N * Hq, D)
  const int tiles = static_cast<int>((hi - lo + kTile - 1) / kTile);
  // Positions and block tables are inputs of the step (written before its first kernel ran),
  // so they can be read before the wait; the cache itself only through L2 until then.
  prefetch_rows_l2<C, Cfg>(args, table, kv_head, lo, min(hi, lo + kStages * kTile), key_cache, value_cache);
  wait_for_producer();  // launched early (launch_dependent): the cache write before it

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) {
      load_tile<C, Cfg>(args, table, kv_head, lo + s * kTile, hi, key_cache, value_cache,
                        k_stages + s * Cfg::kStageElems, v_stages + s * Cfg::kStageElems);
    }
    cp_async_commit();
  }
  const float q_scale = args.scale * kLog2E;
  for (int e = tid; e < kHeads * kD; e += Cfg::kThreads) {
    const int h = e / kD;
    const int d = e % kD;
    q_shared[q_index<Cfg>(h, d)] = h < heads ? load_float(q + (first_q_row + h) * kD + d) * q_scale : 0.0F;
  }

  float row_max[kHeads];
  float row_sum[kHeads];
  float acc[kHeads][8];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    row_max[h] = -INFINITY;
    row_sum[h] = 0.0F;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[h][e] = 0.0F;
  }
  const int score_key = tid / Cfg::kKeyThreads;
  const int part = tid % Cfg::kKeyThreads;
  // Parts whose chunks are 8 apart (same banks) walk them in rotated order.
  const int rotation = ((part * Cfg::kPartChunks) / 8) * (Cfg::kPartChunks / 2);
  const int pv_chunk = tid % Cfg::kChunks;
  const int pv_lane = tid / Cfg::kChunks;

  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile t landed for everyone; stage (t - 1) % kStages is free again
    const int next = t + kStages - 1;
    if (next < tiles) {
      const int stage = next % kStages;
      load_tile<C, Cfg>(args, table, kv_head, lo + static_cast<int64_t>(next) * kTile, hi, key_cache, value_cache,
                        k_stages + stage * Cfg::kStageElems, v_stages + stage * Cfg::kStageElems);
    }
    cp_async_commit();
    const C* k_tile = k_stages + (t % kStages) * Cfg::kStageElems;
    const C* v_tile = v_stages + (t % kStages) * Cfg::kStageElems;

    // Scores of key score_key over this thread's part of the chunks.
    float score[kHeads];
#pragma unroll
    for (int h = 0; h < kHeads; ++h) score[h] = 0.0F;
#pragma unroll
    for (int i = 0; i < Cfg::kPartChunks; ++i) {
      const int chunk = part * Cfg::kPartChunks + ((i + rotation) % Cfg::kPartChunks);
      float k[8];
      load_chunk<C, kD>(k_tile, score_key, chunk, k);
      const float* q_chunk = q_shared + q_index<Cfg>(0, chunk * 8);
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
        const float4 a = *reinterpret_cast<const float4*>(q_chunk + h * Cfg::kQStride);
        const float4 b = *reinterpret_cast<const float4*>(q_chunk + h * Cfg::kQStride + 4);
        score[h] +=
            a.x * k[0] + a.y * k[1] + a.z * k[2] + a.w * k[3] + b.x * k[4] + b.y * k[5] + b.z * k[6] + b.w * k[7];
      }
    }
    const bool valid = lo + static_cast<int64_t>(t) * kTile + score_key < hi;
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
#pragma unroll
      for (int offset = 1; offset < Cfg::kKeyThreads; offset <<= 1) {
        score[h] += __shfl_xor_sync(kFullMask, score[h], offset);
      }
      if (!valid) score[h] = -INFINITY;
      float top = score[h];
#pragma unroll
      for (int offset = Cfg::kKeyThreads; offset < kWarpSize; offset <<= 1) {
        top = fmaxf(top, __shfl_xor_sync(kFullMask, top, offset));
      }
      if (lane == 0) warp_max[warp * kHeads + h] = top;
    }
    __syncthreads();
    // Every tile has a valid key, so the new max is finite; the first correction is 0.
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      float top = row_max[h];
#pragma unroll
      for (int w = 0; w < kWarps; ++w) top = fmaxf(top, warp_max[w * kHeads + h]);
      const float correction = exp2f(row_max[h] - top);
      const float p = exp2f(score[h] - top);
      row_max[h] = top;
      row_sum[h] = row_sum[h] * correction + (part == 0 ? p : 0.0F);
      if (part == 0) p_shared[score_key * kHeads + h] = p;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[h][e] *= correction;
    }
    __syncthreads();

    // acc += p @ V over this thread's keys of the tile, for its chunk of the row.
#pragma unroll 4
    for (int r = 0; r < kTile / Cfg::kKeyLanes; ++r) {
      const int key = pv_lane + r * Cfg::kKeyLanes;
      float v[8];
      load_chunk<C, kD>(v_tile, key, pv_chunk, v);
      float p[kHeads];
#pragma unroll
      for (int h = 0; h < kHeads; h += 4) {
        const float4 four = *reinterpret_cast<const float4*>(p_shared + key * kHeads + h);
        p[h] = four.x;
        p[h + 1] = four.y;
        p[h + 2] = four.z;
        p[h + 3] = four.w;
      }
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[h][e] += p[h] * v[e];
      }
    }
  }

  // Sum the key lanes (in lane order) and the softmax sums (in thread order).
  cp_async_wait<0>();
  __syncthreads();                                     // the stages are free: reuse them for the key lanes' acc
  auto* lanes = reinterpret_cast<float*>(shared_raw);  // (kKeyLanes, kHeads, kD)
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    float* dst = lanes + (pv_lane * kHeads + h) * kD + pv_chunk * 8;
    reinterpret_cast<float4*>(dst)[0] = make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(acc[h][4], acc[h][5], acc[h][6], acc[h][7]);
    float total = row_sum[h];
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) total += __shfl_xor_sync(kFullMask, total, offset);
    if (lane == 0) warp_sum[warp * kHeads + h] = total;
  }
  __syncthreads();
  for (int o = tid; o < heads * kD; o += Cfg::kThreads) {
    const int h = o / kD;
    const int d = o % kD;
    float value = 0.0F;
#pragma unroll
    for (int j = 0; j < Cfg::kKeyLanes; ++j) value += lanes[(j * kHeads + h) * kD + d];
    float total = 0.0F;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += warp_sum[w * kHeads + h];
    if (parts.partitions == 1) {
      store_output(args.codes, out, (first_q_row + h) * kD + d, value * (1.0F / total));
    } else {
      const int64_t partial = (first_q_row + h) * parts.partitions + blockIdx.z;
      parts.acc[partial * kD + d] = value;
      if (d == 0) parts.sum[partial] = total;
    }
  }
  if (parts.partitions > 1 && tid == 0) {
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      if (h < heads) parts.max[(first_q_row + h) * parts.partitions + blockIdx.z] = row_max[h];
    }
  }
  if (parts.partitions > 1 && parts.counters != nullptr) {
    const int count =
        static_cast<int>(min(parts.partitions, (position - first + parts.partition_len) / parts.partition_len));
    if (is_last_partition(parts.counters + token * gridDim.y + blockIdx.y, count)) {
      merge_partitions<Q, Cfg>(parts, first_q_row, heads, count, out, args.codes, reinterpret_cast<float*>(shared_raw),
                               warp_max);
    }
  }
}

// Calls fn(kernel, Cfg{}) with the kernel of the call's dtypes and the plan's shape. The
// default shapes (measured on the H100, docs/perf.md): 256 threads and 2 stages for D 128
// (8 warps hide the score and p @ V latencies; 2 blocks per SM), 128 threads and 2 stages
// for D 64. Other shapes exist for bf16 only, for the benchmark's comparison.
template <typename Q, typename C, int kD, int kHeads, typename Fn>
void with_shape(const PagedPartitioning& plan, Fn&& fn) {
  const auto call = [&](auto config) {
    using Cfg = decltype(config);
    fn(tiled_paged_attention_kernel<Q, C, Cfg>, config);
  };
  using Default = Config<kD, kHeads, kD == 128 ? 256 : 128, 2>;
  if (plan.tiled_threads == Default::kThreads && plan.tiled_stages == Default::kStages) return call(Default{});
  if constexpr (std::is_same_v<Q, __nv_bfloat16> && std::is_same_v<C, __nv_bfloat16>) {
    if (plan.tiled_threads == 128 && plan.tiled_stages == 2) return call(Config<kD, kHeads, 128, 2>{});
    if (plan.tiled_threads == 128 && plan.tiled_stages == 3) return call(Config<kD, kHeads, 128, 3>{});
    if (plan.tiled_threads == 256 && plan.tiled_stages == 2) return call(Config<kD, kHeads, 256, 2>{});
    if (plan.tiled_threads == 256 && plan.tiled_stages == 3) return call(Config<kD, kHeads, 256, 3>{});
  }
  throw make_error("cuda paged_attention: no tiled kernel of ", plan.tiled_threads, " threads and ", plan.tiled_stages,
                   " stages for these dtypes");
}

template <typename Fn>
void with_kernel(const PagedAttentionArgs& args, const PagedPartitioning& plan, Fn&& fn) {
  dispatch_float_dtype(args.q_dtype, "cuda paged_attention", [&](auto q_type) {
    using Q = decltype(q_type);
    const auto for_cache = [&](auto cache_type) {
      using C = decltype(cache_type);
      const bool four = plan.heads_per_block == 4;
      if (args.head_dim == 64) {
        return four ? with_shape<Q, C, 64, 4>(plan, fn) : with_shape<Q, C, 64, 8>(plan, fn);
      }
      return four ? with_shape<Q, C, 128, 4>(plan, fn) : with_shape<Q, C, 128, 8>(plan, fn);
    };
    if (args.cache_dtype == DType::BF16) return for_cache(__nv_bfloat16{});
    return for_cache(__half{});
  });
}

bool aligned_16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

}  // namespace

bool tiled_paged_attention_supported(const PagedAttentionArgs& args) {
  return (args.cache_dtype == DType::BF16 || args.cache_dtype == DType::F16) &&
         (args.head_dim == 64 || args.head_dim == 128) && aligned_16(args.key_cache) && aligned_16(args.value_cache);
}

void plan_tiled_shape(const PagedAttentionArgs& args, PagedPartitioning& plan) {
  plan.heads_per_block = args.q_heads / args.kv_heads <= 4 ? 4 : 8;
  plan.tiled_threads = args.head_dim == 128 ? 256 : 128;
  plan.tiled_stages = 2;
}

int tiled_blocks_per_sm(const PagedAttentionArgs& args, PagedPartitioning& plan) {
  int blocks = 0;
  with_kernel(args, plan, [&](auto kernel, auto config) {
    using Cfg = decltype(config);
    plan.shared_bytes = Cfg::kSharedBytes;
    ANVIL_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Cfg::kSharedBytes)));
    ANVIL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, Cfg::kThreads, Cfg::kSharedBytes));
  });
  return std::max(1, blocks);
}

void launch_tiled_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan,
                                  const PagedPartials& parts, cudaStream_t stream) {
  with_kernel(args, plan, [&](auto kernel, auto config) {
    using Cfg = decltype(config);
    ANVIL_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(Cfg::kSharedBytes)));
    const dim3 grid(static_cast<unsigned>(args.tokens), static_cast<unsigned>(args.kv_heads * plan.head_chunks),
                    static_cast<unsigned>(plan.partitions));
    launch_dependent(kernel, grid, Cfg::kThreads, Cfg::kSharedBytes, stream, args, parts);
  });
}

}  // namespace anvil::cuda
