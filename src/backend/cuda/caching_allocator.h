#pragma once
// A caching allocator for one CUDA device. cudaMalloc/cudaFree are slow and cudaFree
// synchronises the device, so freed blocks are kept in per-size free lists and handed
// out again. Only plain cudaMalloc is used (never managed memory).
//
// Sizes are rounded to classes so blocks are reusable: requests up to kSmallLimitBytes
// round up to kSmallGranularityBytes (512 B), larger ones to kLargeGranularityBytes
// (2 MiB). A cached block is reused only for the same class (no splitting; see stats()).
//
// Stream-ordering assumption: all device work runs on the owning backend's ONE stream.
// A block freed by the host while kernels that use it are still queued may be handed out
// at once, because any later use is queued behind those kernels on the same stream. Work
// on another stream (or a host read through a pointer) must synchronise before the
// tensor that owns the block is released. empty_cache() synchronises the device before
// returning memory to CUDA.
//
// Private pools (for CUDA graphs): while a pool is active, allocations are served from and
// freed blocks return to that pool only, whenever they are freed. A captured graph keeps
// using the addresses it recorded, so blocks of its pool must never reach other tensors
// while the graph may replay; graphs replayed one after another on the stream may share a
// pool, since none holds its scratch across a replay.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "anvil/core/allocator.h"

namespace anvil::cuda {

struct CachingAllocatorStats {
  size_t bytes_in_use = 0;    // rounded sizes of live blocks
  size_t bytes_reserved = 0;  // everything obtained from cudaMalloc (live + cached)
  size_t peak_bytes_in_use = 0;
  size_t peak_bytes_reserved = 0;
  int64_t num_allocations = 0;  // calls to allocate()
  int64_t num_cache_hits = 0;   // allocations served from the cache
  int64_t num_cuda_mallocs = 0;
  int64_t num_oom_retries = 0;  // cudaMalloc failures that emptied the cache and retried

  // "in use 12.0 MiB, reserved 16.0 MiB, peak in use 14.0 MiB, peak reserved 16.0 MiB".
  [[nodiscard]] std::string to_string() const;
};

class CachingAllocator final : public Allocator {
 public:
  static constexpr size_t kSmallLimitBytes = size_t{1} << 20;
  static constexpr size_t kSmallGranularityBytes = 512;
  static constexpr size_t kLargeGranularityBytes = size_t{2} << 20;

  explicit CachingAllocator(int device_index);
  // Returns cached blocks to CUDA. Live blocks (tensors outliving the backend) are leaked
  // rather than freed under their owners.
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` device memory (256-byte aligned, as cudaMalloc gives).
  // On cudaMalloc failure the cache is emptied and the call retried once; a second
  // failure throws anvil::Error with the request size and the stats.
  void* allocate(size_t bytes) override;
  // Puts the block back in the cache (it stays reserved on the device).
  void deallocate(void* pointer, size_t bytes) override;
  [[nodiscard]] Device device() const override { return Device::cuda(device_index_); }

  // Synchronises the device and cudaFree's every cached block of the shared cache.
  void empty_cache();
  // A new private pool id (never 0, which names the shared cache).
  int64_t create_pool();
  // Serves allocations from `pool` (0: the shared cache) until the next call.
  void set_active_pool(int64_t pool);
  // Moves the pool's cached blocks to the shared cache; blocks still live return there when
  // freed. The graphs that used the pool must be destroyed first.
  void release_pool(int64_t pool);
  [[nodiscard]] CachingAllocatorStats stats() const;
  // Peaks restart from the current use / reservation.
  void reset_peaks();
  // The size class a request of `bytes` is served from.
  static size_t round_size(size_t bytes);

 private:
  struct LiveBlock {
    size_t size = 0;   // size class
    int64_t pool = 0;  // the pool it returns to
  };
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // size class -> cached blocks

  void* cuda_malloc_locked(size_t rounded_bytes);
  void empty_cache_locked();
  void move_to_shared_locked(FreeLists& lists);

  int device_index_;
  mutable std::mutex mutex_;
  FreeLists free_blocks_by_size_;                       // the shared cache (pool 0)
  std::unordered_map<int64_t, FreeLists> pool_blocks_;  // private pools
  std::unordered_map<void*, LiveBlock> live_blocks_;    // pointer -> size class and pool
  int64_t active_pool_ = 0;
  int64_t next_pool_ = 1;
  CachingAllocatorStats stats_;
};

}  // namespace anvil::cuda
