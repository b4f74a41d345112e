#pragma once
// Paged KV cache kernels: the cache write, an index check, and attention over the block
// tables (decode and prefill alike) with split-K partitions over long contexts.
// Caches are (num_blocks, block_size, Hkv, D); q/out (N, Hq, D); indices i32.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "anvil/core/dtype.h"
#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// key_cache[slots[i]] = k[i], value_cache[slots[i]] = v[i] for i < tokens, each slot a row
// of row_elems = Hkv * D elements, converted to the cache dtype. Slots must be valid.
struct KvCacheWriteArgs {
  DType source_dtype, cache_dtype;
  const void* k;
  const void* v;
  void* key_cache;
  void* value_cache;
  const int32_t* slots;
  int64_t tokens, row_elems;
};
void launch_kv_cache_write(const KvCacheWriteArgs& args, cudaStream_t stream);

struct PagedAttentionArgs {
  DType q_dtype, cache_dtype;  // out has q's dtype
  const void* q;
  void* out;
  const void* key_cache;
  const void* value_cache;
  const int32_t* token_sequences;  // (N)
  const int32_t* positions;        // (N)
  const int32_t* block_tables;     // (S, max_blocks)
  int64_t tokens, q_heads, kv_heads, head_dim;
  int64_t num_blocks, block_size, sequences, max_blocks;
  int64_t window;  // 0 = none
  float scale;     // resolved, never 0
  // When codes.codes is set (tiled kernel only, f32 q, head_dim a multiple of 32): out is
  // not written; each 32 outputs are quantised into these Q8Act activations instead.
  QuantizedActivations codes{};
};

// What the index check found: the first token whose sequence, position or visible block
// ids are invalid (-1 when none), and the longest visible key range of any token.
struct PagedTokenCheck {
  int32_t first_bad_token = -1;
  int32_t max_visible = 0;
};

// Checks every token's indices on the device; waits for the stream to read the result.
PagedTokenCheck check_paged_tokens(const PagedAttentionArgs& args, int32_t* device_result, cudaStream_t stream);

// How a paged_attention call is laid out: each lane of a warp holds `slice` consecutive
// elements of a head (D <= 32 * slice), a block serves `heads_per_block` query heads of one
// kv head, and each token's keys are split into `partitions` of `partition_len`.
struct PagedPartitioning {
  bool tiled = false;         // the tiled kernel (paged_attention_tiled.h); slice is unused
  int tiled_threads = 128;    // its shape, set by plan_tiled_shape (other shapes exist for
  int tiled_stages = 3;       // bf16 only, for the benchmark's comparison)
  int slice = 1;              // 1, 2, 4, 8 or 16
  int heads_per_block = 8;    // query heads per block (register budget)
  int64_t head_chunks = 1;    // blocks per kv head: ceil(G / heads_per_block)
  bool vector_rows = false;   // rows are loaded as aligned vectors (D == 32 * slice)
  int64_t partition_len = 0;  // keys per partition
  int64_t partitions = 1;     // > 1: partials then a combine kernel
  size_t shared_bytes = 0;    // dynamic shared memory of the main kernel
  size_t scratch_bytes = 0;   // partial results, when partitions > 1
  // > 0: the tiled kernel merges its partitions itself (a few partitions) given this many
  // zeroed counters, (N, Hkv * head_chunks); else a combine kernel does when partitioned.
  int64_t counters = 0;
};

// Chooses the layout so that small batches of long contexts still fill the GPU. The grid
// depends only on the shapes and on `max_visible`, an upper bound of every token's visible
// range: each token's own range is read on the device, so a captured CUDA graph stays valid
// while the sequences grow up to that bound.
// `allow_tiled` = false keeps the warp kernel (benchmarks compare the two).
PagedPartitioning plan_paged_attention(const PagedAttentionArgs& args, int64_t max_visible, int num_sms,
                                       bool allow_tiled = true);

// Queues the attention (and the combine when partitioned); `scratch` holds
// plan.scratch_bytes (may be null when partitions == 1). With `counters` (at least
// plan.counters int32 zeros, left zeroed for the next call) the tiled kernel merges its
// partitions itself, without a combine kernel; the buffer may be shared by every call on
// the stream. Indices must have been checked.
void launch_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan, void* scratch,
                            int32_t* counters, cudaStream_t stream);

}  // namespace anvil::cuda
