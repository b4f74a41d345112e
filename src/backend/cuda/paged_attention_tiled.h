#pragma once
// The tiled (FlashDecoding-style) paged attention kernel for f16/bf16 caches with head_dim
// 64 or 128, and the partial results every split-K paged attention kernel writes for the
// combine kernel. Used by paged_attention_kernels.cu; see there for the launch API.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/paged_attention_kernels.h"

namespace anvil::cuda {

// Split-K partials: partition z of (token, query head) row r keys [first + z * len, ...).
// Partitions past a token's visible range are neither written nor read (the combine
// derives each token's count from its position), so the grid may be sized by an upper
// bound of the visible range (CUDA graphs replay it with changing lengths).
struct PagedPartials {
  int64_t partition_len = 0;
  int64_t partitions = 1;
  float* acc = nullptr;  // (N, Hq, partitions, D), unnormalised
  float* max = nullptr;  // (N, Hq, partitions), log2 units
  float* sum = nullptr;  // (N, Hq, partitions)
  // Tiled kernel only: when set, (N, kv_heads * head_chunks) zeroed counters, and the last
  // block of each (token, kv head, head chunk) to finish merges the partials into out
  // (no combine kernel); that block resets its counter to 0, so the buffer stays zeroed
  // between launches (CUDA graph replays).
  int32_t* counters = nullptr;
};

// Keys per tile of the tiled kernel: partitions are multiples of it.
inline constexpr int64_t kTiledKeys = 64;

// Whether the tiled kernel takes this call: f16/bf16 cache, head_dim 64 or 128, 16-byte
// aligned caches.
bool tiled_paged_attention_supported(const PagedAttentionArgs& args);

// Sets the plan's heads_per_block (4 or 8) and kernel shape (threads, stages).
void plan_tiled_shape(const PagedAttentionArgs& args, PagedPartitioning& plan);

// Blocks of the plan's kernel resident per SM (the occupancy calculator); sets
// plan.shared_bytes.
int tiled_blocks_per_sm(const PagedAttentionArgs& args, PagedPartitioning& plan);

// Queues the tiled kernel: grid (tokens, kv_heads * head_chunks, partitions); with one
// partition it writes out; else the partials, merged into out by the kernel itself when
// parts.counters is set (else the caller queues the combine).
void launch_tiled_paged_attention(const PagedAttentionArgs& args, const PagedPartitioning& plan,
                                  const PagedPartials& parts, cudaStream_t stream);

}  // namespace anvil::cuda
