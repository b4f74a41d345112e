// Paged attention on the device, in the CPU's arithmetic (cpu/paged_attention.cpp): q is
// pre-scaled, scores and the online softmax are f32, and the output is acc * (1 / sum).
// Keys are visited by several warps and partitions and merged in a fixed order, so the
// summation order differs from the CPU's but results are deterministic. One thread block
// per (token, kv head, head chunk, partition): the query heads sharing a kv head read each
// K/V row once. With several partitions each writes (max, sum, acc) and a combine kernel
// merges them.
#include <algorithm>
#include <climits>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/device_float.cuh"
#include "cuda/paged_attention_kernels.h"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kKeysPerStep = 4;  // keys a warp loads at once
constexpr int kMaxSlice = 16;    // head_dim <= 512
constexpr int64_t kBlocksPerSm = 8;
constexpr int64_t kMaxPartitions = 1024;
constexpr int kCheckThreads = 1024;

// ---------------------------------------------------------------------------------------
// Cache write: one block per token, threads over the token's Hkv * D elements.

template <typename Src, typename Dst>
__global__ void kv_cache_write_kernel(const Src* __restrict__ k, const Src* __restrict__ v, Dst* __restrict__ key_cache,
                                      Dst* __restrict__ value_cache, const int32_t* __restrict__ slots,
                                      int64_t row_elems) {
  const int64_t token = blockIdx.x;
  const int64_t slot = slots[token];
  for (int64_t e = threadIdx.x; e < row_elems; e += blockDim.x) {
    store_float(key_cache + slot * row_elems + e, load_float(k + token * row_elems + e));
    store_float(value_cache + slot * row_elems + e, load_float(v + token * row_elems + e));
  }
}

// ---------------------------------------------------------------------------------------
// Index check: one block; result[0] = first bad token (-1 if none), result[1] = longest
// visible range. Integer atomics only (exact, order-free).

__global__ void check_tokens_kernel(PagedAttentionArgs args, int32_t* __restrict__ result) {
  __shared__ int first_bad;
  __shared__ int max_visible;
  if (threadIdx.x == 0) {
    first_bad = INT_MAX;
    max_visible = 0;
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < args.tokens; i += blockDim.x) {
    const int64_t sequence = args.token_sequences[i];
    const int64_t position = args.positions[i];
    bool ok =
        sequence >= 0 && sequence < args.sequences && position >= 0 && position / args.block_size < args.max_blocks;
    const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
    for (int64_t b = first / args.block_size; ok && b <= position / args.block_size; ++b) {
      const int32_t block = args.block_tables[sequence * args.max_blocks + b];
      ok = block >= 0 && block < args.num_blocks;
    }
    if (ok) {
      atomicMax(&max_visible, static_cast<int>(position - first + 1));
    } else {
      atomicMin(&first_bad, static_cast<int>(i));
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    result[0] = first_bad == INT_MAX ? -1 : first_bad;
    result[1] = max_visible;
  }
}

// ---------------------------------------------------------------------------------------
// Attention: block (token, kv head x head chunk, partition) of kWarps warps. Each warp
// walks its own keys of the partition, kKeysPerStep at a time (their K and V rows loaded
// together, so many loads are in flight), lane l holding elements [slice l, slice (l + 1))
// of q, k, v and acc in registers; scores are warp sums. Each warp keeps its own online
// softmax; the warps are merged through shared memory at the end.

// Query heads per block for a slice: q and acc take 2 * slice * heads registers.
template <int kSlice>
constexpr int heads_for_slice() {
  return kSlice <= 4 ? 8 : 32 / kSlice;
}

// `slice` elements of a cache row (or q row) as f32. With `vector_rows` (D == 32 * slice
// and 16-byte aligned bases) lane l reads one aligned run; otherwise element by element.
template <typename T, int kSlice>
struct alignas(kSlice * sizeof(T) >= 16 ? 16 : kSlice * sizeof(T)) SliceOf {
  T values[kSlice];
};

template <typename T, int kSlice>
__device__ __forceinline__ void load_slice(const T* row, int lane, int64_t d, bool vector_rows, float (&out)[kSlice]) {
  if (vector_rows) {
    const SliceOf<T, kSlice> slice = reinterpret_cast<const SliceOf<T, kSlice>*>(row)[lane];
#pragma unroll
    for (int i = 0; i < kSlice; ++i) out[i] = load_float(&slice.values[i]);
    return;
  }
#pragma unroll
  for (int i = 0; i < kSlice; ++i) {
    const int64_t e = static_cast<int64_t>(lane) * kSlice + i;
    out[i] = e < d ? load_float(row + e) : 0.0F;
  }
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

struct PartitionArgs {
  int64_t partition_len;
  int64_t partitions;
  float* partial_acc;  // (N, Hq, partitions, D)
  float* partial_max;  // (N, Hq, partitions)
  float* partial_sum;  // (N, Hq, partitions)
};

// A warp's online-softmax state for the block's heads: the CPU's update (rescale acc and
// sum by exp(old max - new max), add exp(score - new max) terms), per step of keys.
template <int kSlice, int kHeads>
struct WarpState {
  float q[kHeads][kSlice];
  float acc[kHeads][kSlice];
  float max[kHeads];
  float sum[kHeads];
};

// Adds keys [start, start + kKeysPerStep) ∩ [.., hi) to the warp's state.
template <typename C, int kSlice, int kHeads>
__device__ __forceinline__ void attend_step(const PagedAttentionArgs& args, const int32_t* table, int64_t kv_head,
                                            int64_t start, int64_t hi, int heads, bool vector_rows, int lane,
                                            const C* key_cache, const C* value_cache,
                                            WarpState<kSlice, kHeads>& state) {
  float keys[kKeysPerStep][kSlice] = {};  // rows past hi stay 0 (their scores are ignored)
  float values[kKeysPerStep][kSlice] = {};
#pragma unroll
  for (int u = 0; u < kKeysPerStep; ++u) {
    const int64_t p = start + u;
    if (p < hi) {
      const int64_t slot = static_cast<int64_t>(table[p / args.block_size]) * args.block_size + p % args.block_size;
      const int64_t row = (slot * args.kv_heads + kv_head) * args.head_dim;
      load_slice<C, kSlice>(key_cache + row, lane, args.head_dim, vector_rows, keys[u]);
      load_slice<C, kSlice>(value_cache + row, lane, args.head_dim, vector_rows, values[u]);
    }
  }
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    if (h >= heads) break;
    float scores[kKeysPerStep];
    float step_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kKeysPerStep; ++u) {
      float partial = 0.0F;
#pragma unroll
      for (int i = 0; i < kSlice; ++i) partial += state.q[h][i] * keys[u][i];
      scores[u] = warp_sum(partial);  // every lane: the loop bounds are warp-uniform
      if (start + u < hi) step_max = fmaxf(step_max, scores[u]);
    }
    const float new_max = fmaxf(state.max[h], step_max);
    const float correction = state.max[h] == new_max ? 1.0F : expf(state.max[h] - new_max);  // first step: 0
    float step_sum = 0.0F;
#pragma unroll
    for (int i = 0; i < kSlice; ++i) state.acc[h][i] *= correction;
#pragma unroll
    for (int u = 0; u < kKeysPerStep; ++u) {
      if (start + u >= hi) break;
      const float p = expf(scores[u] - new_max);
      step_sum += p;
#pragma unroll
      for (int i = 0; i < kSlice; ++i) state.acc[h][i] += p * values[u][i];
    }
    state.sum[h] = state.sum[h] * correction + step_sum;
    state.max[h] = new_max;
  }
}

// Merges the warps' states (shared: acc (kWarps, kHeads, D), then max and sum (kWarps,
// kHeads)) in warp order and writes out, or the partition's partials.
template <typename Q, int kSlice, int kHeads>
__device__ void merge_and_store(const PagedAttentionArgs& args, const PartitionArgs& parts,
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
        const float factor = expf(shared_max[w * kHeads + h] - top);  // a warp without keys: 0
        total += shared_sum[w * kHeads + h] * factor;
        value += shared_acc[(w * kHeads + h) * d + e] * factor;
      }
    }
    if (parts.partitions == 1) {
      store_float(out + (first_q_row + h) * d + e, value * (1.0F / total));
    } else {
      const int64_t partial = (first_q_row + h) * parts.partitions + blockIdx.z;
      parts.partial_acc[partial * d + e] = value;
      if (e == 0) {
        parts.partial_max[partial] = top;
        parts.partial_sum[partial] = total;
      }
    }
  }
}

// Block (token, kv head * head_chunks + chunk, partition): keys [lo, hi) of the token's
// visible range [first, position]; warp w takes steps w, w + kWarps, ... of kKeysPerStep.
template <typename Q, typename C, int kSlice>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(PagedAttentionArgs args, PartitionArgs parts, bool vector_rows, const Q* __restrict__ q,
                           Q* __restrict__ out, const C* __restrict__ key_cache, const C* __restrict__ value_cache) {
  constexpr int kHeads = heads_for_slice<kSlice>();
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

  WarpState<kSlice, kHeads> state;
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    float row[kSlice] = {};
    if (h < heads) load_slice<Q, kSlice>(q + (first_q_row + h) * args.head_dim, lane, args.head_dim, false, row);
#pragma unroll
    for (int i = 0; i < kSlice; ++i) {
      state.q[h][i] = row[i] * args.scale;
      state.acc[h][i] = 0.0F;
    }
    state.max[h] = -INFINITY;
    state.sum[h] = 0.0F;
  }
  for (int64_t start = lo + warp * kKeysPerStep; start < hi; start += kWarps * kKeysPerStep) {
    attend_step<C, kSlice, kHeads>(args, table, kv_head, start, hi, heads, vector_rows, lane, key_cache, value_cache,
                                   state);
  }
  merge_and_store<Q, kSlice, kHeads>(args, parts, state, heads, first_q_row, out, shared);
}

// Block per (token, query head) row of out: merges the partitions' partials in order.
template <typename Q>
__global__ void __launch_bounds__(kThreads)
    combine_partitions_kernel(PartitionArgs parts, Q* __restrict__ out, int64_t d) {
  const int64_t row = blockIdx.x;  // in (N * Hq)
  const float* maxes = parts.partial_max + row * parts.partitions;
  const float* sums = parts.partial_sum + row * parts.partitions;
  float top = -INFINITY;
  for (int64_t z = 0; z < parts.partitions; ++z) top = fmaxf(top, maxes[z]);
  float total = 0.0F;
  for (int64_t z = 0; z < parts.partitions; ++z) total += sums[z] * expf(maxes[z] - top);  // empty: 0 * 0
  const float inverse = 1.0F / total;
  for (int64_t c = threadIdx.x; c < d; c += kThreads) {
    float value = 0.0F;
    for (int64_t z = 0; z < parts.partitions; ++z) {
      value += parts.partial_acc[(row * parts.partitions + z) * d + c] * expf(maxes[z] - top);
    }
    store_float(out + row * d + c, value * inverse);
  }
}

template <typename Q, typename C, int kSlice>
void launch_typed(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PartitionArgs& parts,
                  cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(args.tokens), static_cast<unsigned>(args.kv_heads * plan.head_chunks),
                  static_cast<unsigned>(plan.partitions));
  paged_attention_kernel<Q, C, kSlice><<<grid, kThreads, plan.shared_bytes, stream>>>(
      args, parts, plan.vector_rows, static_cast<const Q*>(args.q), static_cast<Q*>(args.out),
      static_cast<const C*>(args.key_cache), static_cast<const C*>(args.value_cache));
  ANVIL_CUDA_CHECK_LAUNCH();
  if (plan.partitions == 1) return;
  combine_partitions_kernel<Q><<<static_cast<unsigned>(args.tokens * args.q_heads), kThreads, 0, stream>>>(
      parts, static_cast<Q*>(args.out), args.head_dim);
  ANVIL_CUDA_CHECK_LAUNCH();
}

template <typename Q, typename C>
void launch_for_slice(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PartitionArgs& parts,
                      cudaStream_t stream) {
  switch (plan.slice) {
    case 1:
      return launch_typed<Q, C, 1>(args, plan, parts, stream);
    case 2:
      return launch_typed<Q, C, 2>(args, plan, parts, stream);
    case 4:
      return launch_typed<Q, C, 4>(args, plan, parts, stream);
    case 8:
      return launch_typed<Q, C, 8>(args, plan, parts, stream);
    default:
      return launch_typed<Q, C, 16>(args, plan, parts, stream);
  }
}

int heads_for(int slice) {
  switch (slice) {
    case 1:
      return heads_for_slice<1>();
    case 2:
      return heads_for_slice<2>();
    case 4:
      return heads_for_slice<4>();
    case 8:
      return heads_for_slice<8>();
    default:
      return heads_for_slice<16>();
  }
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
      kv_cache_write_kernel<Src, Dst><<<static_cast<unsigned>(args.tokens), kThreads, 0, stream>>>(
          static_cast<const Src*>(args.k), static_cast<const Src*>(args.v), static_cast<Dst*>(args.key_cache),
          static_cast<Dst*>(args.value_cache), args.slots, args.row_elems);
      ANVIL_CUDA_CHECK_LAUNCH();
    });
  });
}

PagedTokenCheck check_paged_tokens(const PagedAttentionArgs& args, int32_t* device_result, cudaStream_t stream) {
  check_tokens_kernel<<<1, kCheckThreads, 0, stream>>>(args, device_result);
  ANVIL_CUDA_CHECK_LAUNCH();
  int32_t host[2] = {0, 0};
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(host, device_result, sizeof(host), cudaMemcpyDeviceToHost, stream));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream));
  return {host[0], host[1]};
}

PagedPartitioning plan_paged_attention(const PagedAttentionArgs& args, int64_t max_visible, int num_sms) {
  PagedPartitioning plan;
  ANVIL_CHECK(args.head_dim <= kWarpSize * kMaxSlice, "cuda paged_attention: head_dim ", args.head_dim,
              " is above the supported ", kWarpSize * kMaxSlice);
  while (plan.slice * kWarpSize < args.head_dim) plan.slice *= 2;
  plan.heads_per_block = heads_for(plan.slice);
  const int64_t group = args.q_heads / args.kv_heads;
  plan.head_chunks = (group + plan.heads_per_block - 1) / plan.heads_per_block;
  plan.vector_rows =
      args.head_dim == kWarpSize * plan.slice && aligned_16(args.key_cache) && aligned_16(args.value_cache);
  const auto shared_floats = static_cast<size_t>(kWarps * plan.heads_per_block * (args.head_dim + 2));
  plan.shared_bytes = shared_floats * sizeof(float);
  ANVIL_CHECK(
      args.tokens <= INT_MAX && args.kv_heads * plan.head_chunks <= 65535 && args.tokens * args.q_heads <= INT_MAX,
      "cuda paged_attention: ", args.tokens, " tokens of ", args.q_heads, " heads exceed the grid");
  // Enough blocks for kBlocksPerSm per SM, but no partition shorter than one block step.
  const int64_t step = kWarps * kKeysPerStep;
  const int64_t work = std::max<int64_t>(1, args.tokens * args.kv_heads * plan.head_chunks);
  const int64_t wanted = std::max<int64_t>(1, (kBlocksPerSm * static_cast<int64_t>(num_sms) + work - 1) / work);
  const int64_t longest = std::max<int64_t>(1, max_visible);
  const int64_t partitions = std::min({wanted, (longest + step - 1) / step, kMaxPartitions});
  plan.partition_len = (longest + partitions - 1) / partitions;
  plan.partition_len = (plan.partition_len + step - 1) / step * step;
  plan.partitions = (longest + plan.partition_len - 1) / plan.partition_len;
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    plan.scratch_bytes = static_cast<size_t>(partials * (args.head_dim + 2)) * sizeof(float);
  }
  return plan;
}

void launch_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan, void* scratch,
                            cudaStream_t stream) {
  PartitionArgs parts{plan.partition_len, plan.partitions, nullptr, nullptr, nullptr};
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    parts.partial_acc = static_cast<float*>(scratch);
    parts.partial_max = parts.partial_acc + partials * args.head_dim;
    parts.partial_sum = parts.partial_max + partials;
  }
  dispatch_float_dtype(args.q_dtype, "cuda paged_attention", [&](auto q_type) {
    dispatch_float_dtype(args.cache_dtype, "cuda paged_attention", [&](auto cache_type) {
      launch_for_slice<decltype(q_type), decltype(cache_type)>(args, plan, parts, stream);
    });
  });
}

}  // namespace anvil::cuda
