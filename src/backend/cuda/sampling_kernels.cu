// Sampling kernels: one block of kThreads per row of logits (N, V), V up to a few 100k.
// Ranks use an order-preserving 32-bit key (NaN lowest, -0 == +0); the k-th largest and
// the top-p cut are found by radix selection over that key. Every reduction runs in a
// fixed order (no float atomics), so results are deterministic.
#include <cuda_runtime.h>

#include <cstdint>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/philox_device.cuh"
#include "cuda/sampling_kernels.h"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr unsigned kFullMask = 0xFFFFFFFFU;
constexpr int kMaxGridX = 2147483647;

// ---------------------------------------------------------------------------------------
// Ranking keys and softmax weights.

// Larger key = ranks above. NaN -> 0, below -inf's key; -0 and +0 share a key.
__device__ __forceinline__ uint32_t order_key(float x) {
  if (isnan(x)) return 0U;
  const uint32_t bits = x == 0.0F ? 0U : __float_as_uint(x);
  return (bits & 0x80000000U) != 0U ? ~bits : bits | 0x80000000U;
}

// The float of a key (the NaN key gives a NaN).
__device__ __forceinline__ float key_value(uint32_t key) {
  return __uint_as_float((key & 0x80000000U) != 0U ? key & 0x7FFFFFFFU : ~key);
}

// The CPU's row_weights rule: exp((x - max) / T) in float64; NaN weighs 0; with a +inf max
// the +inf entries weigh 1 and the rest 0; a row of nothing above -inf weighs 0 everywhere.
__device__ __forceinline__ double weight_of(float x, double max_value, double temperature) {
  if (isnan(x) || isinf(max_value)) return (max_value > 0.0 && isinf(x) && x > 0.0F) ? 1.0 : 0.0;
  return exp((static_cast<double>(x) - max_value) / temperature);
}

// ---------------------------------------------------------------------------------------
// Block reductions (fixed order: a shuffle tree per warp, then the warps in order).

template <typename T>
__device__ T block_sum(T value, T* scratch /* kWarps */) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  __syncthreads();  // scratch may be reused at once
  return total;
}

__device__ float block_max(float value, float* scratch /* kWarps */) {
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1)
    value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  float total = scratch[0];
  for (int w = 1; w < kWarps; ++w) total = fmaxf(total, scratch[w]);
  __syncthreads();
  return total;
}

// The largest non-NaN logit of a row as double (-inf when there is none).
__device__ double row_max(const float* x, int64_t vocab, float* scratch) {
  float best = -INFINITY;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    if (!isnan(x[i])) best = fmaxf(best, x[i]);
  }
  return static_cast<double>(block_max(best, scratch));
}

// Sum of the row's weights.
__device__ double row_total(const float* x, int64_t vocab, double max_value, double temperature, double* scratch) {
  double total = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) total += weight_of(x[i], max_value, temperature);
  return block_sum(total, scratch);
}

// ---------------------------------------------------------------------------------------
// argmax.

struct Best {
  uint32_t key;
  int64_t index;
};

__device__ __forceinline__ Best better(Best a, Best b) {
  return (b.key > a.key || (b.key == a.key && b.index < a.index)) ? b : a;
}

// ids[row]: lanes scan strided, then the (key, index) pairs reduce by key, lower index on ties.
__global__ void __launch_bounds__(kThreads)
    argmax_kernel(const float* __restrict__ logits, int32_t* __restrict__ ids, int64_t vocab) {
  __shared__ Best warp_best[kWarps];
  const float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  Best best{0U, vocab};
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) best = better(best, Best{order_key(x[i]), i});
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    const Best other{__shfl_xor_sync(kFullMask, best.key, offset), __shfl_xor_sync(kFullMask, best.index, offset)};
    best = better(best, other);
  }
  if (threadIdx.x % kWarpSize == 0) warp_best[threadIdx.x / kWarpSize] = best;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < kWarps; ++w) best = better(best, warp_best[w]);
  ids[blockIdx.x] = static_cast<int32_t>(best.index < vocab ? best.index : 0);
}

// ---------------------------------------------------------------------------------------
// top_k: the k-th largest key by 8-bit radix selection on counts (integer atomics: exact).

__global__ void __launch_bounds__(kThreads) top_k_kernel(float* __restrict__ logits, int64_t vocab, int64_t k) {
  __shared__ unsigned histogram[256];
  __shared__ uint32_t chosen_prefix;
  __shared__ int64_t chosen_remaining;
  float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  uint32_t prefix = 0U;
  uint32_t mask = 0U;
  int64_t remaining = k;  // rank of the wanted key among those matching prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = static_cast<int>(threadIdx.x); d < 256; d += kThreads) histogram[d] = 0U;
    __syncthreads();
    // Block-uniform trip count, so whole warps meet in __match_any_sync: lanes with the
    // same digit add once (logits often share a few exponent bytes: heavy contention).
    for (int64_t base = 0; base < vocab; base += kThreads) {
      const int64_t i = base + threadIdx.x;
      const uint32_t key = i < vocab ? order_key(x[i]) : 0U;
      const bool counted = i < vocab && (key & mask) == prefix;
      const uint32_t digit = counted ? (key >> shift) & 255U : 256U;
      const unsigned peers = __match_any_sync(kFullMask, digit);
      const int leader = __ffs(static_cast<int>(peers)) - 1;
      if (counted && static_cast<int>(threadIdx.x % kWarpSize) == leader) {
        atomicAdd(&histogram[digit], static_cast<unsigned>(__popc(peers)));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      for (int d = 255; d >= 0; --d) {
        if (above + histogram[d] >= remaining || d == 0) {
          chosen_prefix = prefix | (static_cast<uint32_t>(d) << shift);
          chosen_remaining = remaining - above;
          break;
        }
        above += histogram[d];
      }
    }
    __syncthreads();
    prefix = chosen_prefix;
    remaining = chosen_remaining;
    mask |= 255U << shift;
  }
  const float threshold = key_value(prefix);
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float value = x[i];
    const bool keep = !isnan(value) && (isnan(threshold) || value >= threshold);
    if (!keep) x[i] = -INFINITY;
  }
}

// ---------------------------------------------------------------------------------------
// top_p: the cut key K = the largest key whose weights at or above it reach the target,
// by 4-bit radix selection on weight sums (per-thread bins, reduced in a fixed order).

struct CutSearch {
  double max_value;
  double target;
  double bin_weight[16];  // shared: the current level's bins
  int64_t bin_count[16];
  double warp_weight[kWarps][16];
  int64_t warp_count[kWarps][16];
};

// Reduces the per-thread bins into search.bin_*; every thread sees the result.
__device__ void reduce_bins(double (&weights)[16], int64_t (&counts)[16], CutSearch& search) {
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int warp = static_cast<int>(threadIdx.x / kWarpSize);
#pragma unroll
  for (int b = 0; b < 16; ++b) {
    for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
      weights[b] += __shfl_xor_sync(kFullMask, weights[b], offset);
      counts[b] += __shfl_xor_sync(kFullMask, counts[b], offset);
    }
    if (lane == 0) {
      search.warp_weight[warp][b] = weights[b];
      search.warp_count[warp][b] = counts[b];
    }
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    double weight = 0.0;
    int64_t count = 0;
    for (int w = 0; w < kWarps; ++w) {
      weight += search.warp_weight[w][threadIdx.x];
      count += search.warp_count[w][threadIdx.x];
    }
    search.bin_weight[threadIdx.x] = weight;
    search.bin_count[threadIdx.x] = count;
  }
  __syncthreads();
}

// Returns K; `above` gets the weight of keys > K. Where rounding keeps the target out of
// reach, the lowest non-empty digit is taken, which keeps everything (as the CPU does).
// `weights` holds each element's weight (written by the same thread: no sync needed).
__device__ uint32_t find_cut_key(const float* x, const double* weights, int64_t vocab, CutSearch& search,
                                 double& above) {
  uint32_t prefix = 0U;
  uint32_t mask = 0U;
  above = 0.0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    // Indexed by the element's digit: local memory, one update per element.
    double bin_weights[16] = {};
    int64_t bin_counts[16] = {};
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
      const uint32_t key = order_key(x[i]);
      if ((key & mask) != prefix) continue;
      const uint32_t digit = (key >> shift) & 15U;
      bin_weights[digit] += weights[i];
      bin_counts[digit] += 1;
    }
    reduce_bins(bin_weights, bin_counts, search);
    int chosen = -1;
    int lowest = 0;
    double running = above;
    for (int d = 15; d >= 0; --d) {
      if (search.bin_count[d] == 0) continue;
      lowest = d;
      if (running + search.bin_weight[d] >= search.target) {
        chosen = d;
        break;
      }
      running += search.bin_weight[d];
    }
    if (chosen < 0) {
      chosen = lowest;
      running = above;
      for (int d = 15; d > lowest; --d) running += search.bin_weight[d];
    }
    above = running;
    prefix |= static_cast<uint32_t>(chosen) << shift;
    mask |= 15U << shift;
    __syncthreads();  // bins are rewritten by the next level
  }
  return prefix;
}

// Number of the cut key's elements to keep (index order): the fewest whose weights bring
// `above` to the target, at least 1, at most all `count` of them.
__device__ int64_t ties_to_keep(double above, double weight, double target, int64_t count) {
  if (!(weight > 0.0)) return 1;
  double estimate = ceil((target - above) / weight);
  int64_t keep = estimate < 1.0 ? 1 : (estimate > static_cast<double>(count) ? count : static_cast<int64_t>(estimate));
  while (keep > 1 && above + static_cast<double>(keep - 1) * weight >= target) --keep;
  while (keep < count && above + static_cast<double>(keep) * weight < target) ++keep;
  return keep;
}

// Writes -inf over everything ranked below the cut: keys < K, and the K-ties beyond the
// first `keep` in index order (a ballot scan per tile of kThreads elements).
__device__ void drop_below_cut(float* x, int64_t vocab, uint32_t cut, int64_t keep, int* warp_ties) {
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  const int warp = static_cast<int>(threadIdx.x / kWarpSize);
  int64_t seen = 0;  // ties in earlier tiles
  for (int64_t base = 0; base < vocab; base += kThreads) {
    const int64_t i = base + threadIdx.x;
    const uint32_t key = i < vocab ? order_key(x[i]) : 0U;
    const bool tie = i < vocab && key == cut;
    const unsigned ballot = __ballot_sync(kFullMask, tie);
    if (lane == 0) warp_ties[warp] = __popc(ballot);
    __syncthreads();
    int64_t rank = seen + __popc(ballot & ((1U << lane) - 1U));
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) rank += warp_ties[w];
      seen += warp_ties[w];
    }
    const bool kept = key > cut || (tie && rank < keep);
    if (i < vocab && !kept) x[i] = -INFINITY;
    __syncthreads();
  }
}

// weights (N, V) f64 scratch: each element's weight, computed once.
__global__ void __launch_bounds__(kThreads)
    top_p_kernel(float* __restrict__ logits, double* __restrict__ weights, int64_t vocab, float top_p) {
  __shared__ CutSearch search;
  __shared__ double sum_scratch[kWarps];
  __shared__ float max_scratch[kWarps];
  __shared__ int warp_ties[kWarps];
  float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  double* row_weights = weights + static_cast<int64_t>(blockIdx.x) * vocab;
  const double max_value = row_max(x, vocab, max_scratch);
  double own_total = 0.0;
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    row_weights[i] = weight_of(x[i], max_value, 1.0);
    own_total += row_weights[i];
  }
  const double total = block_sum(own_total, sum_scratch);
  if (threadIdx.x == 0) {
    search.max_value = max_value;
    search.target = static_cast<double>(top_p) * total;
  }
  __syncthreads();
  double above = 0.0;
  const uint32_t cut = find_cut_key(x, row_weights, vocab, search, above);
  // The last level's bins hold the cut key's count.
  const int64_t count = search.bin_count[cut & 15U];
  const int64_t keep = ties_to_keep(above, weight_of(key_value(cut), max_value, 1.0), search.target, count);
  drop_below_cut(x, vocab, cut, keep, warp_ties);
}

// ---------------------------------------------------------------------------------------
// min_p and sampling.

__global__ void __launch_bounds__(kThreads) min_p_kernel(float* __restrict__ logits, int64_t vocab, float min_p) {
  __shared__ double sum_scratch[kWarps];
  __shared__ float max_scratch[kWarps];
  float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const double max_value = row_max(x, vocab, max_scratch);
  const double total = row_total(x, vocab, max_value, 1.0, sum_scratch);
  if (total == 0.0) return;  // every logit is -inf or NaN: nothing to rank against
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    if (!(weight_of(x[i], max_value, 1.0) >= static_cast<double>(min_p))) x[i] = -INFINITY;
  }
}

// Inverse CDF in index order: thread t owns the contiguous chunk [t c, (t + 1) c); chunk
// sums are scanned in thread order, then the owner of the crossing walks its chunk in
// order like the CPU. The smallest index found wins (several may see a crossing through
// rounding); without one, the last candidate (only reached through rounding).
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logits, int32_t* __restrict__ ids, int64_t vocab, double temperature,
                  uint64_t seed, uint64_t offset) {
  __shared__ double chunk_sums[kThreads];
  __shared__ float max_scratch[kWarps];
  __shared__ unsigned long long first_hit;
  __shared__ long long last_candidate;
  const float* x = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const double max_value = row_max(x, vocab, max_scratch);
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * chunk < vocab ? threadIdx.x * chunk : vocab;
  const int64_t end = begin + chunk < vocab ? begin + chunk : vocab;
  double own = 0.0;
  int64_t own_last = -1;
  for (int64_t i = begin; i < end; ++i) {
    const double weight = weight_of(x[i], max_value, temperature);
    own += weight;
    if (weight != 0.0) own_last = i;
  }
  chunk_sums[threadIdx.x] = own;
  if (threadIdx.x == 0) {
    first_hit = ~0ULL;
    last_candidate = -1;
  }
  __syncthreads();
  double prefix = 0.0;  // sequential over earlier chunks: the same order for every thread
  double total = 0.0;
  for (int t = 0; t < kThreads; ++t) {
    if (t == static_cast<int>(threadIdx.x)) prefix = total;
    total += chunk_sums[t];
  }
  if (own_last >= 0) atomicMax(&last_candidate, static_cast<long long>(own_last));
  const float u = philox_uniform(seed, blockIdx.x, offset);
  const double target = static_cast<double>(u) * total;  // < total, as u < 1
  if (total > 0.0 && own > 0.0 && prefix <= target) {
    double cumulative = prefix;
    for (int64_t i = begin; i < end; ++i) {
      const double weight = weight_of(x[i], max_value, temperature);
      if (weight == 0.0) continue;  // -inf, NaN or underflowed: never drawn
      cumulative += weight;
      if (cumulative > target) {
        atomicMin(&first_hit, static_cast<unsigned long long>(i));
        break;
      }
    }
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  if (!(total > 0.0)) {
    ids[blockIdx.x] = -1;
  } else {
    ids[blockIdx.x] = static_cast<int32_t>(first_hit != ~0ULL ? static_cast<long long>(first_hit) : last_candidate);
  }
}

void check_rows(int64_t rows) { ANVIL_CHECK(rows <= kMaxGridX, "cuda sampling: ", rows, " rows exceed the grid"); }

}  // namespace

void launch_argmax(const float* logits, int32_t* ids, int64_t rows, int64_t vocab, cudaStream_t stream) {
  if (rows == 0) return;
  check_rows(rows);
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, ids, vocab);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_top_k_filter(float* logits, int64_t rows, int64_t vocab, int64_t k, cudaStream_t stream) {
  if (rows == 0) return;
  check_rows(rows);
  top_k_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, vocab, k);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_top_p_filter(float* logits, double* weights, int64_t rows, int64_t vocab, float top_p,
                         cudaStream_t stream) {
  if (rows == 0) return;
  check_rows(rows);
  top_p_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, weights, vocab, top_p);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_min_p_filter(float* logits, int64_t rows, int64_t vocab, float min_p, cudaStream_t stream) {
  if (rows == 0) return;
  check_rows(rows);
  min_p_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, vocab, min_p);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_sample_multinomial(const float* logits, int32_t* ids, int64_t rows, int64_t vocab, float temperature,
                               uint64_t seed, uint64_t offset, cudaStream_t stream) {
  if (rows == 0) return;
  check_rows(rows);
  sample_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, ids, vocab,
                                                                      static_cast<double>(temperature), seed, offset);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
