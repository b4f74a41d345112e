// Paged attention on the device, in the CPU's arithmetic (cpu/paged_attention.cpp): q is
// pre-scaled, scores and the online softmax are f32, and the output is acc * (1 / sum).
// Keys are visited by several warps and partitions and merged in a fixed order, so the
// summation order differs from the CPU's but results are deterministic. One thread block
// per (token, kv head, head chunk, partition): the query heads sharing a kv head read each
// K/V row once. With several partitions each writes (max, sum, acc) and a combine kernel
// merges them (the tiled kernel merges up to kMaxFusedPartitions itself). This file holds
// the warp kernel (f32 caches, head dims other than 64 / 128), the planner and the combine;
// f16/bf16 caches at D 64 / 128 take the tiled kernel of paged_attention_tiled.cu, which
// writes the same partials.
#include <algorithm>
#include <climits>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/device_float.cuh"
#include "cuda/paged_attention_kernels.h"
#include "cuda/paged_attention_tiled.h"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kKeysPerStep = 4;  // keys a warp loads at once (2 for slices >= 8: registers)
template <int kSlice>
constexpr int keys_per_step() {
  return kSlice >= 8 ? 2 : kKeysPerStep;
}
constexpr int kMaxSlice = 16;         // head_dim <= 512
constexpr int64_t kBlocksPerSm = 16;  // fine partitions: short tails
constexpr int64_t kMaxPartitions = 1024;
// Keys per partition at least (a multiple of every block step): shorter partitions make
// blocks that do a single step and a combine that loops over hundreds of partials; measured
// on the H100, one 4096-token sequence went from 99 us with 16-key partitions to a few us.
constexpr int64_t kMinPartitionKeys = 256;
// Partitions the tiled kernel merges itself at most: its last block's merge is a serial
// tail (one block reads heads x D x partitions floats); more go to the combine kernel,
// which spreads them over a block per query row (measured on the H100, docs/perf.md).
constexpr int64_t kMaxFusedPartitions = 32;
constexpr int kCheckThreads = 256;
constexpr int kCombineThreads = 256;

// Block-wide max / sum of one float per thread, in a fixed order (warp trees, then warps in
// order); every thread gets the result. `reduce` holds one float per warp.
__device__ __forceinline__ float block_max(float value, float* reduce) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1)
    value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (threadIdx.x % kWarpSize == 0) reduce[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  float result = reduce[0];
  for (int w = 1; w < warps; ++w) result = fmaxf(result, reduce[w]);
  __syncthreads();  // reduce may be reused
  return result;
}

__device__ __forceinline__ float block_sum(float value, float* reduce) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (threadIdx.x % kWarpSize == 0) reduce[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  float result = reduce[0];
  for (int w = 1; w < warps; ++w) result += reduce[w];
  __syncthreads();
  return result;
}

// ---------------------------------------------------------------------------------------
// Cache write: one block per token, threads over the token's Hkv * D elements.

template <typename Src, typename Dst>
__global__ void kv_cache_write_kernel(const Src* k, const Src* v, Dst* __restrict__ key_cache,
                                      Dst* __restrict__ value_cache, const int32_t* __restrict__ slots,
                                      int64_t row_elems) {
  allow_dependents();   // the attention kernel after it may launch and wait
  wait_for_producer();  // launched early after RoPE (launch_dependent): k is its output
  const int64_t token = blockIdx.x;
  const int64_t slot = slots[token];
  // Unrolled so that a thread's loads are in flight together (decode: one block, 8 steps
  // of 128 threads for Llama-3-8B's 1024-element rows).
#pragma unroll 8
  for (int64_t e = threadIdx.x; e < row_elems; e += blockDim.x) {
    store_float(key_cache + slot * row_elems + e, load_float(k + token * row_elems + e));
    store_float(value_cache + slot * row_elems + e, load_float(v + token * row_elems + e));
  }
}

// ---------------------------------------------------------------------------------------
// Index check: one warp per token, lanes over the block-table entries it reads.
// result[0] = smallest bad token (starts at a value >= any token), result[1] = longest
// visible range (starts at 0). Integer atomics only: exact and order-free.

__global__ void check_tokens_kernel(PagedAttentionArgs args, int32_t* __restrict__ result) {
  const int64_t token = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (token >= args.tokens) return;  // whole warps leave together
  const int64_t sequence = args.token_sequences[token];
  const int64_t position = args.positions[token];
  bool ok = sequence >= 0 && sequence < args.sequences && position >= 0 && position / args.block_size < args.max_blocks;
  const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
  if (ok) {
    const int32_t* table = args.block_tables + sequence * args.max_blocks;
    for (int64_t b = first / args.block_size + lane; b <= position / args.block_size; b += kWarpSize) {
      ok = ok && table[b] >= 0 && table[b] < args.num_blocks;
    }
  }
  ok = __all_sync(kFullMask, ok);
  if (lane != 0) return;
  if (ok) {
    atomicMax(&result[1], static_cast<int32_t>(position - first + 1));
  } else {
    atomicMin(&result[0], static_cast<int32_t>(token));
  }
}

// ---------------------------------------------------------------------------------------
// Attention: block (token, kv head x head chunk, partition) of kWarps warps. Each warp
// walks its own keys of the partition, a few at a time (their K and V rows loaded
// together, so many loads are in flight), lane l holding elements [slice l, slice (l + 1))
// of q, k, v and acc in registers; scores are warp sums. Each warp keeps its own online
// softmax; the warps are merged through shared memory at the end.

// `slice` elements of a cache row (or q row), raw. With `vector_rows` (D == 32 * slice
// and 16-byte aligned bases) lane l reads one aligned run; otherwise element by element,
// zero past D.
template <typename T, int kSlice>
struct alignas(kSlice * sizeof(T) >= 16 ? 16 : kSlice * sizeof(T)) SliceOf {
  T values[kSlice];
};

template <typename T, int kSlice>
__device__ __forceinline__ SliceOf<T, kSlice> load_slice(const T* row, int lane, int64_t d, bool vector_rows) {
  if (vector_rows) return reinterpret_cast<const SliceOf<T, kSlice>*>(row)[lane];
  SliceOf<T, kSlice> slice;
#pragma unroll
  for (int i = 0; i < kSlice; ++i) {
    const int64_t e = static_cast<int64_t>(lane) * kSlice + i;
    slice.values[i] = e < d ? row[e] : T{};
  }
  return slice;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// A warp's online-softmax state for the block's heads. Scores are kept in log2 units (q is
// pre-multiplied by log2(e)) so that exp2f replaces expf; max and sum follow the CPU's
// update: rescale acc and sum by 2^(old max - new max), add 2^(score - new max) terms.
template <int kSlice, int kHeads>
struct WarpState {
  float q[kHeads][kSlice];
  float acc[kHeads][kSlice];
  float max[kHeads];
  float sum[kHeads];
};

// The K and V rows of one step of kKeysPerStep keys, as loaded (storage dtype).
template <typename C, int kSlice>
struct StepRows {
  SliceOf<C, kSlice> keys[keys_per_step<kSlice>()];
  SliceOf<C, kSlice> values[keys_per_step<kSlice>()];
};

// Queues the loads of keys [start, start + keys_per_step) ∩ [.., hi); rows past hi stay 0.
template <typename C, int kSlice>
__device__ __forceinline__ void load_step(const PagedAttentionArgs& args, const int32_t* table, int64_t kv_head,
                                          int64_t start, int64_t hi, bool vector_rows, int lane, const C* key_cache,
                                          const C* value_cache, StepRows<C, kSlice>& rows) {
  // Positions fit in int32; one division per step, then carry into the next block.
  const auto block_size = static_cast<int32_t>(args.block_size);
  int32_t block_index = static_cast<int32_t>(start) / block_size;
  int32_t offset = static_cast<int32_t>(start) - block_index * block_size;
#pragma unroll
  for (int u = 0; u < keys_per_step<kSlice>(); ++u) {
    if (start + u < hi) {
      const int64_t slot = static_cast<int64_t>(table[block_index]) * block_size + offset;
      const int64_t row = (slot * args.kv_heads + kv_head) * args.head_dim;
      rows.keys[u] = load_slice<C, kSlice>(key_cache + row, lane, args.head_dim, vector_rows);
      rows.values[u] = load_slice<C, kSlice>(value_cache + row, lane, args.head_dim, vector_rows);
    } else {
      rows.keys[u] = SliceOf<C, kSlice>{};
      rows.values[u] = SliceOf<C, kSlice>{};
    }
    if (++offset == block_size) {
      offset = 0;
      ++block_index;
    }
  }
}

// Adds one loaded step (`valid` keys) to the warp's state.
template <typename C, int kSlice, int kHeads>
__device__ __forceinline__ void attend_step(const StepRows<C, kSlice>& rows, int valid, int heads,
                                            WarpState<kSlice, kHeads>& state) {
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    if (h >= heads) break;
    constexpr int kKeys = keys_per_step<kSlice>();
    float scores[kKeys];
    float step_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      float partial = 0.0F;
#pragma unroll
      for (int i = 0; i < kSlice; ++i) partial += state.q[h][i] * load_float(&rows.keys[u].values[i]);
      scores[u] = warp_sum(partial);  // every lane: the loop bounds are warp-uniform
      if (u < valid) step_max = fmaxf(step_max, scores[u]);
    }
    const float new_max = fmaxf(state.max[h], step_max);
    const float correction = state.max[h] == new_max ? 1.0F : exp2f(state.max[h] - new_max);  // first step: 0
    float step_sum = 0.0F;
#pragma unroll
    for (int i = 0; i < kSlice; ++i) state.acc[h][i] *= correction;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      if (u >= valid) break;
      const float p = exp2f(scores[u] - new_max);
      step_sum += p;
#pragma unroll
      for (int i = 0; i < kSlice; ++i) state.acc[h][i] += p * load_float(&rows.values[u].values[i]);
    }
    state.sum[h] = state.sum[h] * correction + step_sum;
    state.max[h] = new_max;
  }
}

// Merges the warps' states (shared: acc (kWarps, kHeads, D), then max and sum (kWarps,
// kHeads)) in warp order and writes out, or the partition's partials (max in log2 units).
template <typename Q, int kSlice, int kHeads>
__device__ void merge_and_store(const PagedAttentionArgs& args, const PagedPartials& parts,
                                const WarpState<kSlice, kHeads>& state, int heads, int64_t first_q_row, Q* out,
                                float* shared) {
  const int64_t d = args.head_dim;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int warp = static_cast<int>(threadIdx.x / kWarpSize);
  float* shared_acc = shared;
  float* shared_max = shared_acc + kWarps * kHeads * d;
  float* shared_sum = shared_max + kWarps * kHeads;
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    if (h >= heads) break;
#pragma unroll
    for (int i = 0; i < kSlice; ++i) {
      const int64_t e = static_cast<int64_t>(lane) * kSlice + i;
      if (e < d) shared_acc[(warp * kHeads + h) * d + e] = state.acc[h][i];
    }
    if (lane == 0) {
      shared_max[warp * kHeads + h] = state.max[h];
      shared_sum[warp * kHeads + h] = state.sum[h];
    }
  }
  __syncthreads();
  for (int64_t index = threadIdx.x; index < heads * d; index += kThreads) {
    const int64_t h = index / d;
    const int64_t e = index - h * d;
    float top = -INFINITY;
    for (int w = 0; w < kWarps; ++w) top = fmaxf(top, shared_max[w * kHeads + h]);
    float total = 0.0F;
    float value = 0.0F;
    if (top != -INFINITY) {  // else an empty partition: max -inf, sum 0, acc 0
      for (int w = 0; w < kWarps; ++w) {
        const float factor = exp2f(shared_max[w * kHeads + h] - top);  // a warp without keys: 0
        total += shared_sum[w * kHeads + h] * factor;
        value += shared_acc[(w * kHeads + h) * d + e] * factor;
      }
    }
    if (parts.partitions == 1) {
      store_float(out + (first_q_row + h) * d + e, value * (1.0F / total));
    } else {
      const int64_t partial = (first_q_row + h) * parts.partitions + blockIdx.z;
      parts.acc[partial * d + e] = value;
      if (e == 0) {
        parts.max[partial] = top;
        parts.sum[partial] = total;
      }
    }
  }
}

// Block (token, kv head * head_chunks + chunk, partition): keys [lo, hi) of the token's
// visible range [first, position]; warp w takes steps w, w + kWarps, ... of keys_per_step,
// loading the next step's rows before computing on the current ones.
template <typename Q, typename C, int kSlice, int kHeads>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(PagedAttentionArgs args, PagedPartials parts, bool vector_rows, const Q* __restrict__ q,
                           Q* __restrict__ out, const C* __restrict__ key_cache, const C* __restrict__ value_cache) {
  extern __shared__ float shared[];
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int warp = static_cast<int>(threadIdx.x / kWarpSize);
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t chunks = (group + kHeads - 1) / kHeads;
  const int64_t token = blockIdx.x;
  const int64_t kv_head = blockIdx.y / chunks;
  const int64_t first_head = (blockIdx.y % chunks) * kHeads;
  const int heads = static_cast<int>(min(static_cast<int64_t>(kHeads), group - first_head));
  const int64_t position = args.positions[token];
  const int32_t* table = args.block_tables + static_cast<int64_t>(args.token_sequences[token]) * args.max_blocks;
  const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
  const int64_t lo = first + static_cast<int64_t>(blockIdx.z) * parts.partition_len;
  const int64_t hi = min(position + 1, lo + parts.partition_len);
  const int64_t first_q_row = token * args.q_heads + kv_head * group + first_head;  // in (N * Hq, D)
  constexpr float kLog2E = 1.4426950408889634F;
  const float q_scale = args.scale * kLog2E;

  WarpState<kSlice, kHeads> state;
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    SliceOf<Q, kSlice> row{};
    if (h < heads) row = load_slice<Q, kSlice>(q + (first_q_row + h) * args.head_dim, lane, args.head_dim, false);
#pragma unroll
    for (int i = 0; i < kSlice; ++i) {
      state.q[h][i] = load_float(&row.values[i]) * q_scale;
      state.acc[h][i] = 0.0F;
    }
    state.max[h] = -INFINITY;
    state.sum[h] = 0.0F;
  }
  constexpr int kKeys = keys_per_step<kSlice>();
  constexpr int64_t kStride = kWarps * kKeys;
  int64_t start = lo + warp * kKeys;
  StepRows<C, kSlice> current;
  load_step<C, kSlice>(args, table, kv_head, start, hi, vector_rows, lane, key_cache, value_cache, current);
  for (; start < hi; start += kStride) {
    StepRows<C, kSlice> next;  // all zeros (no loads) past the end
    load_step<C, kSlice>(args, table, kv_head, start + kStride, hi, vector_rows, lane, key_cache, value_cache, next);
    attend_step<C, kSlice, kHeads>(current, static_cast<int>(min(static_cast<int64_t>(kKeys), hi - start)), heads,
                                   state);
    current = next;
  }
  merge_and_store<Q, kSlice, kHeads>(args, parts, state, heads, first_q_row, out, shared);
}

// Block per (token, query head) row of out: merges the partitions of the token's visible
// range (the token's count comes from its position: partitions past it were never
// written). The kernel is a chain of dependent loads, so it issues them early: each
// thread's first kPrefetch partial acc values together with the maxes and sums (copied to
// shared memory), then reduces. Thread (lane, c) sums column c over partitions lane,
// lane + lanes, ... in order and the lanes are added in order; the block reductions have a
// fixed shape: deterministic.
template <typename Q>
__global__ void __launch_bounds__(kCombineThreads)
    combine_partitions_kernel(PagedAttentionArgs args, PagedPartials parts, Q* __restrict__ out) {
  allow_dependents();   // the o projection's GEMV may start streaming its weights
  wait_for_producer();  // launched early (launch_dependent): the partials of the main kernel
  constexpr int kPrefetch = 16;
  __shared__ float weights[kMaxPartitions];   // the maxes, then 2^(max_z - top)
  __shared__ float sums[kMaxPartitions];      // the partitions' softmax sums
  __shared__ float columns[kCombineThreads];  // (lanes, D) partial column sums
  __shared__ float reduce[kCombineThreads / kWarpSize];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t d = args.head_dim;
  const int64_t row = blockIdx.x;  // in (N * Hq)
  const int64_t position = args.positions[row / args.q_heads];
  const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
  const int count =
      static_cast<int>(min(parts.partitions, (position - first + parts.partition_len) / parts.partition_len));
  const int64_t lanes = d <= kCombineThreads ? kCombineThreads / d : 1;
  const int64_t lane = tid / d;
  const bool column_thread = lane < lanes;  // d <= kCombineThreads: columns in one pass
  const float* acc = parts.acc + row * parts.partitions * d + tid % d;
  float prefetched[kPrefetch];
#pragma unroll
  for (int i = 0; i < kPrefetch; ++i) {
    const int64_t z = lane + i * lanes;
    prefetched[i] = lanes > 1 && column_thread && z < count ? acc[z * d] : 0.0F;
  }
  float top = -INFINITY;
  for (int z = tid; z < count; z += kCombineThreads) {
    const float partition_max = parts.max[row * parts.partitions + z];
    weights[z] = partition_max;
    sums[z] = parts.sum[row * parts.partitions + z];
    top = fmaxf(top, partition_max);
  }
  top = block_max(top, reduce);  // log2 units; every counted partition has keys: finite
  float total = 0.0F;
  for (int z = tid; z < count; z += kCombineThreads) {
    const float weight = exp2f(weights[z] - top);
    weights[z] = weight;
    total += sums[z] * weight;
  }
  total = block_sum(total, reduce);  // also orders the weights' writes before their reads
  const float inverse = 1.0F / total;
  if (lanes == 1) {  // wide rows: column loops, nothing prefetched
    for (int64_t c = tid; c < d; c += kCombineThreads) {
      float value = 0.0F;
      for (int z = 0; z < count; ++z) value += parts.acc[(row * parts.partitions + z) * d + c] * weights[z];
      store_float(out + row * d + c, value * inverse);
    }
    return;
  }
  float value = 0.0F;
  if (column_thread) {
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      const int64_t z = lane + i * lanes;
      if (z < count) value += prefetched[i] * weights[z];
    }
#pragma unroll 8
    for (int64_t z = lane + kPrefetch * lanes; z < count; z += lanes) value += acc[z * d] * weights[z];
    columns[lane * d + tid % d] = value;
  }
  __syncthreads();
  if (tid < d) {
    float sum = 0.0F;
    for (int64_t l = 0; l < lanes; ++l) sum += columns[l * d + tid];
    store_float(out + row * d + tid, sum * inverse);
  }
}

template <typename Q>
void launch_combine(const PagedAttentionArgs& args, const PagedPartials& parts, cudaStream_t stream) {
  launch_dependent(combine_partitions_kernel<Q>, static_cast<unsigned>(args.tokens * args.q_heads), kCombineThreads, 0,
                   stream, args, parts, static_cast<Q*>(args.out));
}

template <typename Q, typename C, int kSlice, int kHeads>
void launch_typed(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PagedPartials& parts,
                  cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(args.tokens), static_cast<unsigned>(args.kv_heads * plan.head_chunks),
                  static_cast<unsigned>(plan.partitions));
  paged_attention_kernel<Q, C, kSlice, kHeads><<<grid, kThreads, plan.shared_bytes, stream>>>(
      args, parts, plan.vector_rows, static_cast<const Q*>(args.q), static_cast<Q*>(args.out),
      static_cast<const C*>(args.key_cache), static_cast<const C*>(args.value_cache));
  ANVIL_CUDA_CHECK_LAUNCH();
  if (plan.partitions > 1) launch_combine<Q>(args, parts, stream);
}

// Heads per block: 4 when the group fits (fewer registers), else 8; 32 / slice for wide heads.
template <typename Q, typename C, int kSlice>
void launch_for_heads(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PagedPartials& parts,
                      cudaStream_t stream) {
  if constexpr (kSlice <= 4) {
    if (plan.heads_per_block == 4) return launch_typed<Q, C, kSlice, 4>(args, plan, parts, stream);
    return launch_typed<Q, C, kSlice, 8>(args, plan, parts, stream);
  } else {
    return launch_typed<Q, C, kSlice, 32 / kSlice>(args, plan, parts, stream);
  }
}

template <typename Q, typename C>
void launch_for_slice(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PagedPartials& parts,
                      cudaStream_t stream) {
  switch (plan.slice) {
    case 1:
      return launch_for_heads<Q, C, 1>(args, plan, parts, stream);
    case 2:
      return launch_for_heads<Q, C, 2>(args, plan, parts, stream);
    case 4:
      return launch_for_heads<Q, C, 4>(args, plan, parts, stream);
    case 8:
      return launch_for_heads<Q, C, 8>(args, plan, parts, stream);
    default:
      return launch_for_heads<Q, C, 16>(args, plan, parts, stream);
  }
}

int heads_for(int slice, int64_t group) {
  if (slice <= 4) return group <= 4 ? 4 : 8;
  return 32 / slice;
}

bool aligned_16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

}  // namespace

void launch_kv_cache_write(const KvCacheWriteArgs& args, cudaStream_t stream) {
  if (args.tokens == 0) return;
  ANVIL_CHECK(args.tokens <= INT_MAX, "cuda kv_cache_write: ", args.tokens, " tokens exceed the grid");
  dispatch_float_dtype(args.source_dtype, "cuda kv_cache_write", [&](auto source) {
    dispatch_float_dtype(args.cache_dtype, "cuda kv_cache_write", [&](auto cache) {
      using Src = decltype(source);
      using Dst = decltype(cache);
      launch_dependent(kv_cache_write_kernel<Src, Dst>, static_cast<unsigned>(args.tokens), kThreads, 0, stream,
                       static_cast<const Src*>(args.k), static_cast<const Src*>(args.v),
                       static_cast<Dst*>(args.key_cache), static_cast<Dst*>(args.value_cache), args.slots,
                       args.row_elems);
    });
  });
}

PagedTokenCheck check_paged_tokens(const PagedAttentionArgs& args, int32_t* device_result, cudaStream_t stream) {
  // The memset value 0x7F7F7F7F exceeds any token index.
  ANVIL_CHECK(args.tokens < 0x7F7F7F7F, "cuda paged_attention: ", args.tokens, " tokens are too many");
  ANVIL_CUDA_CHECK(cudaMemsetAsync(device_result, 0x7F, sizeof(int32_t), stream));
  ANVIL_CUDA_CHECK(cudaMemsetAsync(device_result + 1, 0, sizeof(int32_t), stream));
  const int64_t warps_per_block = kCheckThreads / kWarpSize;
  const int64_t blocks = (args.tokens + warps_per_block - 1) / warps_per_block;
  check_tokens_kernel<<<static_cast<unsigned>(blocks), kCheckThreads, 0, stream>>>(args, device_result);
  ANVIL_CUDA_CHECK_LAUNCH();
  int32_t host[2] = {0, 0};
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(host, device_result, sizeof(host), cudaMemcpyDeviceToHost, stream));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream));
  return {host[0] < args.tokens ? host[0] : -1, host[1]};
}

namespace {

// The tiled kernel's plan: one wave of blocks (blocks_per_sm on every SM) when the tokens
// and kv heads alone do not fill it, from partitions of whole tiles.
void plan_tiled(const PagedAttentionArgs& args, int64_t longest, int num_sms, PagedPartitioning& plan) {
  plan.tiled = true;
  plan_tiled_shape(args, plan);
  plan.head_chunks = (args.q_heads / args.kv_heads + plan.heads_per_block - 1) / plan.heads_per_block;
  plan.vector_rows = true;
  const int64_t work = std::max<int64_t>(1, args.tokens * args.kv_heads * plan.head_chunks);
  const int64_t slots = static_cast<int64_t>(num_sms) * tiled_blocks_per_sm(args, plan);
  const int64_t tiles = (longest + kTiledKeys - 1) / kTiledKeys;
  const int64_t partitions = std::clamp<int64_t>(slots / work, 1, std::min(tiles, kMaxPartitions));
  plan.partition_len = (tiles + partitions - 1) / partitions * kTiledKeys;
}

// The warp kernel's plan: enough blocks for kBlocksPerSm per SM, but no partition shorter
// than kMinPartitionKeys.
void plan_warps(const PagedAttentionArgs& args, int64_t longest, int num_sms, PagedPartitioning& plan) {
  while (plan.slice * kWarpSize < args.head_dim) plan.slice *= 2;
  const int64_t group = args.q_heads / args.kv_heads;
  plan.heads_per_block = heads_for(plan.slice, group);
  plan.head_chunks = (group + plan.heads_per_block - 1) / plan.heads_per_block;
  plan.vector_rows =
      args.head_dim == kWarpSize * plan.slice && aligned_16(args.key_cache) && aligned_16(args.value_cache);
  const auto shared_floats = static_cast<size_t>(kWarps * plan.heads_per_block * (args.head_dim + 2));
  plan.shared_bytes = shared_floats * sizeof(float);
  const int64_t step = kWarps * kKeysPerStep;
  const int64_t work = std::max<int64_t>(1, args.tokens * args.kv_heads * plan.head_chunks);
  const int64_t wanted = std::max<int64_t>(1, (kBlocksPerSm * static_cast<int64_t>(num_sms) + work - 1) / work);
  const int64_t partitions =
      std::max<int64_t>(1, std::min({wanted, (longest + kMinPartitionKeys - 1) / kMinPartitionKeys, kMaxPartitions}));
  plan.partition_len = (longest + partitions - 1) / partitions;
  plan.partition_len = (plan.partition_len + step - 1) / step * step;
}

}  // namespace

PagedPartitioning plan_paged_attention(const PagedAttentionArgs& args, int64_t max_visible, int num_sms,
                                       bool allow_tiled) {
  PagedPartitioning plan;
  ANVIL_CHECK(args.head_dim <= kWarpSize * kMaxSlice, "cuda paged_attention: head_dim ", args.head_dim,
              " is above the supported ", kWarpSize * kMaxSlice);
  const int64_t longest = std::max<int64_t>(1, max_visible);
  if (allow_tiled && tiled_paged_attention_supported(args)) {
    plan_tiled(args, longest, num_sms, plan);
  } else {
    plan_warps(args, longest, num_sms, plan);
  }
  ANVIL_CHECK(
      args.tokens <= INT_MAX && args.kv_heads * plan.head_chunks <= 65535 && args.tokens * args.q_heads <= INT_MAX,
      "cuda paged_attention: ", args.tokens, " tokens of ", args.q_heads, " heads exceed the grid");
  plan.partitions = (longest + plan.partition_len - 1) / plan.partition_len;
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    plan.scratch_bytes = static_cast<size_t>(partials * (args.head_dim + 2)) * sizeof(float);
    if (plan.tiled && plan.partitions <= kMaxFusedPartitions) {
      plan.counters = args.tokens * args.kv_heads * plan.head_chunks;
    }
  }
  return plan;
}

void launch_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan, void* scratch,
                            int32_t* counters, cudaStream_t stream) {
  PagedPartials parts{plan.partition_len, plan.partitions, nullptr, nullptr, nullptr, nullptr};
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    parts.acc = static_cast<float*>(scratch);
    parts.max = parts.acc + partials * args.head_dim;
    parts.sum = parts.max + partials;
  }
  if (plan.tiled) {
    parts.counters = plan.counters > 0 ? counters : nullptr;
    launch_tiled_paged_attention(args, plan, parts, stream);
    if (plan.partitions > 1 && parts.counters == nullptr) {
      dispatch_float_dtype(args.q_dtype, "cuda paged_attention",
                           [&](auto q_type) { launch_combine<decltype(q_type)>(args, parts, stream); });
    }
    return;
  }
  dispatch_float_dtype(args.q_dtype, "cuda paged_attention", [&](auto q_type) {
    dispatch_float_dtype(args.cache_dtype, "cuda paged_attention", [&](auto cache_type) {
      launch_for_slice<decltype(q_type), decltype(cache_type)>(args, plan, parts, stream);
    });
  });
}

}  // namespace anvil::cuda
