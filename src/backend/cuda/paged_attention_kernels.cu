// Paged attention on the device, in the CPU's arithmetic (cpu/paged_attention.cpp): q is
// pre-scaled, keys are visited in position order with an online softmax in f32, and the
// output is acc * (1 / sum). One thread block per (token, kv head, partition): the G query
// heads sharing the kv head read each key/value tile once from the cache into shared memory.
// With several partitions, each writes its (max, sum, acc) and a combine kernel merges them
// in partition order, so results are deterministic.
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
constexpr int kMaxTile = 32;
constexpr int kMinTile = 8;
constexpr size_t kDefaultSharedBytes = 48 * 1024;
constexpr size_t kMaxSharedBytes = 227 * 1024;  // sm_90 opt-in limit per block
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
// Attention.

// Dynamic shared memory of the main kernel, in this order: key row offsets (tile) i64;
// then f32: q (G, D), acc (G, D), keys (tile, D + 1; padded against bank conflicts),
// values (tile, D), probabilities (G, tile), max / sum / correction (G each).
size_t shared_bytes_for(int64_t group, int64_t d, int64_t tile) {
  const int64_t floats = 2 * group * d + tile * (d + 1) + tile * d + group * tile + 3 * group;
  return static_cast<size_t>(tile) * sizeof(int64_t) + static_cast<size_t>(floats) * sizeof(float);
}

struct SharedTile {
  int64_t* rows;  // element offset of each key/value row of the tile in the caches
  float* q;
  float* acc;
  float* keys;
  float* values;
  float* probs;
  float* max;
  float* sum;
  float* correction;
};

__device__ SharedTile carve_shared(void* base, int64_t group, int64_t d, int tile) {
  SharedTile s;
  s.rows = static_cast<int64_t*>(base);
  s.q = reinterpret_cast<float*>(s.rows + tile);
  s.acc = s.q + group * d;
  s.keys = s.acc + group * d;
  s.values = s.keys + tile * (d + 1);
  s.probs = s.values + tile * d;
  s.max = s.probs + group * tile;
  s.sum = s.max + group;
  s.correction = s.sum + group;
  return s;
}

// Folds the tile's scores (already in s.probs) into each head's online softmax: probs
// become exp(score - new max), and correction = exp(old max - new max). Warp per head.
__device__ void update_softmax(const SharedTile& s, int64_t group, int tile, int count) {
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  for (int64_t g = threadIdx.x / kWarpSize; g < group; g += kThreads / kWarpSize) {
    float* probs = s.probs + g * tile;
    float tile_max = -INFINITY;
    for (int t = lane; t < count; t += kWarpSize) tile_max = fmaxf(tile_max, probs[t]);
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
      tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, offset));
    }
    const float old_max = s.max[g];
    const float new_max = fmaxf(old_max, tile_max);
    float tile_sum = 0.0F;
    for (int t = lane; t < count; t += kWarpSize) {
      const float p = expf(probs[t] - new_max);
      probs[t] = p;
      tile_sum += p;
    }
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) tile_sum += __shfl_xor_sync(kFullMask, tile_sum, offset);
    __syncwarp();  // every lane has read old_max
    if (lane == 0) {
      const float correction = expf(old_max - new_max);  // 0 on the first tile (max = -inf)
      s.max[g] = new_max;
      s.sum[g] = s.sum[g] * correction + tile_sum;
      s.correction[g] = correction;
    }
  }
}

struct PartitionArgs {
  int tile;
  int64_t partition_len;
  int64_t partitions;
  float* partial_acc;  // (N, Hq, partitions, D)
  float* partial_max;  // (N, Hq, partitions)
  float* partial_sum;  // (N, Hq, partitions)
};

// Block (token, kv head, partition): keys [lo, hi) of the token's visible range
// [first, position], tile by tile: gather rows -> scores (G, tile) -> softmax update ->
// acc (G, D). Writes out directly (one partition) or the partition's partials.
template <typename Q, typename C>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(PagedAttentionArgs args, PartitionArgs parts, const Q* __restrict__ q, Q* __restrict__ out,
                           const C* __restrict__ key_cache, const C* __restrict__ value_cache) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int64_t group = args.q_heads / args.kv_heads;
  const int64_t d = args.head_dim;
  const int tile = parts.tile;
  const SharedTile s = carve_shared(shared_raw, group, d, tile);
  const int64_t token = blockIdx.x;
  const int64_t kv_head = blockIdx.y;
  const int64_t position = args.positions[token];
  const int32_t* table = args.block_tables + static_cast<int64_t>(args.token_sequences[token]) * args.max_blocks;
  const int64_t first = args.window > 0 ? max(int64_t{0}, position - args.window + 1) : 0;
  const int64_t lo = first + static_cast<int64_t>(blockIdx.z) * parts.partition_len;
  const int64_t hi = min(position + 1, lo + parts.partition_len);
  const int64_t first_q_row = token * args.q_heads + kv_head * group;  // in (N * Hq, D)

  for (int64_t i = threadIdx.x; i < group * d; i += kThreads) {
    s.q[i] = load_float(q + first_q_row * d + i) * args.scale;
    s.acc[i] = 0.0F;
  }
  for (int64_t g = threadIdx.x; g < group; g += kThreads) {
    s.max[g] = -INFINITY;
    s.sum[g] = 0.0F;
  }
  for (int64_t start = lo; start < hi; start += tile) {
    const int count = static_cast<int>(min(static_cast<int64_t>(tile), hi - start));
    if (threadIdx.x < count) {
      const int64_t p = start + threadIdx.x;
      const int64_t slot = static_cast<int64_t>(table[p / args.block_size]) * args.block_size + p % args.block_size;
      s.rows[threadIdx.x] = (slot * args.kv_heads + kv_head) * d;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < count * d; i += kThreads) {
      const int64_t t = i / d;
      const int64_t c = i - t * d;
      s.keys[t * (d + 1) + c] = load_float(key_cache + s.rows[t] + c);
      s.values[t * d + c] = load_float(value_cache + s.rows[t] + c);
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < group * count; i += kThreads) {
      const int64_t g = i / count;
      const int64_t t = i - g * count;
      float score = 0.0F;
      for (int64_t c = 0; c < d; ++c) score += s.q[g * d + c] * s.keys[t * (d + 1) + c];
      s.probs[g * tile + t] = score;
    }
    __syncthreads();
    update_softmax(s, group, tile, count);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < group * d; i += kThreads) {
      const int64_t g = i / d;
      const int64_t c = i - g * d;
      float value = s.acc[i] * s.correction[g];
      for (int t = 0; t < count; ++t) value += s.probs[g * tile + t] * s.values[t * d + c];
      s.acc[i] = value;
    }
    __syncthreads();
  }
  __syncthreads();  // max / sum written above are read by other threads below
  for (int64_t i = threadIdx.x; i < group * d; i += kThreads) {
    const int64_t g = i / d;
    const int64_t c = i - g * d;
    if (parts.partitions == 1) {
      store_float(out + (first_q_row + g) * d + c, s.acc[i] * (1.0F / s.sum[g]));
    } else {
      const int64_t partial = (first_q_row + g) * parts.partitions + blockIdx.z;
      parts.partial_acc[partial * d + c] = s.acc[i];
      if (c == 0) {
        parts.partial_max[partial] = s.max[g];
        parts.partial_sum[partial] = s.sum[g];
      }
    }
  }
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

template <typename Q, typename C>
void launch_typed(const PagedAttentionArgs& args, const PagedPartitioning& plan, const PartitionArgs& parts,
                  cudaStream_t stream) {
  const auto kernel = paged_attention_kernel<Q, C>;
  if (plan.shared_bytes > kDefaultSharedBytes) {
    ANVIL_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.shared_bytes)));
  }
  const dim3 grid(static_cast<unsigned>(args.tokens), static_cast<unsigned>(args.kv_heads),
                  static_cast<unsigned>(plan.partitions));
  kernel<<<grid, kThreads, plan.shared_bytes, stream>>>(
      args, parts, static_cast<const Q*>(args.q), static_cast<Q*>(args.out), static_cast<const C*>(args.key_cache),
      static_cast<const C*>(args.value_cache));
  ANVIL_CUDA_CHECK_LAUNCH();
  if (plan.partitions == 1) return;
  combine_partitions_kernel<Q><<<static_cast<unsigned>(args.tokens * args.q_heads), kThreads, 0, stream>>>(
      parts, static_cast<Q*>(args.out), args.head_dim);
  ANVIL_CUDA_CHECK_LAUNCH();
}

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
  const int64_t group = args.q_heads / args.kv_heads;
  plan.tile = kMaxTile;
  while (plan.tile > kMinTile && shared_bytes_for(group, args.head_dim, plan.tile) > kDefaultSharedBytes) {
    plan.tile /= 2;
  }
  plan.shared_bytes = shared_bytes_for(group, args.head_dim, plan.tile);
  ANVIL_CHECK(plan.shared_bytes <= kMaxSharedBytes, "cuda paged_attention: ", group, " query heads per kv head of ",
              args.head_dim, " dims need ", plan.shared_bytes, " bytes of shared memory (max ", kMaxSharedBytes, ")");
  ANVIL_CHECK(args.tokens <= INT_MAX && args.kv_heads <= 65535 && args.tokens * args.q_heads <= INT_MAX,
              "cuda paged_attention: ", args.tokens, " tokens of ", args.q_heads, " heads exceed the grid");
  // Enough blocks for two waves of the SMs, but no partition shorter than one tile.
  const int64_t work = std::max<int64_t>(1, args.tokens * args.kv_heads);
  const int64_t wanted = std::max<int64_t>(1, (2 * static_cast<int64_t>(num_sms) + work - 1) / work);
  const int64_t longest = std::max<int64_t>(1, max_visible);
  int64_t partitions = std::min({wanted, (longest + plan.tile - 1) / plan.tile, kMaxPartitions});
  plan.partition_len = (longest + partitions - 1) / partitions;
  plan.partition_len = (plan.partition_len + plan.tile - 1) / plan.tile * plan.tile;
  plan.partitions = (longest + plan.partition_len - 1) / plan.partition_len;
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    plan.scratch_bytes = static_cast<size_t>(partials * (args.head_dim + 2)) * sizeof(float);
  }
  return plan;
}

void launch_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan, void* scratch,
                            cudaStream_t stream) {
  PartitionArgs parts{plan.tile, plan.partition_len, plan.partitions, nullptr, nullptr, nullptr};
  if (plan.partitions > 1) {
    const int64_t partials = args.tokens * args.q_heads * plan.partitions;
    parts.partial_acc = static_cast<float*>(scratch);
    parts.partial_max = parts.partial_acc + partials * args.head_dim;
    parts.partial_sum = parts.partial_max + partials;
  }
  dispatch_float_dtype(args.q_dtype, "cuda paged_attention", [&](auto q_type) {
    dispatch_float_dtype(args.cache_dtype, "cuda paged_attention", [&](auto cache_type) {
      launch_typed<decltype(q_type), decltype(cache_type)>(args, plan, parts, stream);
    });
  });
}

}  // namespace anvil::cuda
