#include "cuda/caching_allocator.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {
namespace {

std::string mebibytes(size_t bytes) {
  std::ostringstream stream;
  stream.precision(1);
  stream << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
  return stream.str();
}

size_t round_up(size_t bytes, size_t granularity) { return (bytes + granularity - 1) / granularity * granularity; }

}  // namespace

std::string CachingAllocatorStats::to_string() const {
  std::ostringstream stream;
  stream << "in use " << mebibytes(bytes_in_use) << ", reserved " << mebibytes(bytes_reserved) << ", peak in use "
         << mebibytes(peak_bytes_in_use) << ", peak reserved " << mebibytes(peak_bytes_reserved);
  return stream.str();
}

CachingAllocator::CachingAllocator(int device_index) : device_index_(device_index) {}

CachingAllocator::~CachingAllocator() {
  try {
    const std::lock_guard lock(mutex_);
    for (auto& [pool, lists] : pool_blocks_) move_to_shared_locked(lists);
    pool_blocks_.clear();
    empty_cache_locked();
  } catch (const std::exception& error) {
    // The driver may already be shutting down at process exit; nothing useful to do.
    std::fprintf(stderr, "anvil: CUDA caching allocator teardown: %s\n", error.what());
  }
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes <= kSmallLimitBytes) return round_up(std::max<size_t>(bytes, 1), kSmallGranularityBytes);
  return round_up(bytes, kLargeGranularityBytes);
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t rounded = round_size(bytes);
  const std::lock_guard lock(mutex_);
  ++stats_.num_allocations;
  void* pointer = nullptr;
  FreeLists& lists = active_pool_ == 0 ? free_blocks_by_size_ : pool_blocks_[active_pool_];
  auto cached = lists.find(rounded);
  if (cached != lists.end() && !cached->second.empty()) {
    pointer = cached->second.back();
    cached->second.pop_back();
    ++stats_.num_cache_hits;
  } else {
    pointer = cuda_malloc_locked(rounded);
  }
  live_blocks_.emplace(pointer, LiveBlock{rounded, active_pool_});
  stats_.bytes_in_use += rounded;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return pointer;
}

void CachingAllocator::deallocate(void* pointer, size_t /*bytes*/) {
  // Called from Storage's destructor: must not throw. Unknown pointers cannot come from
  // Storage (it only frees what this allocator gave it), so they are ignored.
  if (pointer == nullptr) return;
  const std::lock_guard lock(mutex_);
  const auto live = live_blocks_.find(pointer);
  if (live == live_blocks_.end()) return;
  const LiveBlock block = live->second;
  live_blocks_.erase(live);
  stats_.bytes_in_use -= block.size;
  // A released pool's blocks go back to the shared cache.
  const auto pool = pool_blocks_.find(block.pool);
  FreeLists& lists = pool == pool_blocks_.end() ? free_blocks_by_size_ : pool->second;
  lists[block.size].push_back(pointer);
}

int64_t CachingAllocator::create_pool() {
  const std::lock_guard lock(mutex_);
  const int64_t pool = next_pool_++;
  pool_blocks_.emplace(pool, FreeLists{});
  return pool;
}

void CachingAllocator::set_active_pool(int64_t pool) {
  const std::lock_guard lock(mutex_);
  ANVIL_CHECK(pool == 0 || pool_blocks_.count(pool) != 0, "caching allocator: no memory pool ", pool);
  active_pool_ = pool;
}

void CachingAllocator::release_pool(int64_t pool) {
  const std::lock_guard lock(mutex_);
  const auto found = pool_blocks_.find(pool);
  if (found == pool_blocks_.end()) return;
  move_to_shared_locked(found->second);
  pool_blocks_.erase(found);
  if (active_pool_ == pool) active_pool_ = 0;
}

void* CachingAllocator::cuda_malloc_locked(size_t rounded_bytes) {
  const DeviceGuard guard(device_index_);
  void* pointer = nullptr;
  cudaError_t status = cudaMalloc(&pointer, rounded_bytes);
  if (status == cudaErrorMemoryAllocation) {
    static_cast<void>(cudaGetLastError());  // clear it so later launch checks do not see it
    ++stats_.num_oom_retries;
    empty_cache_locked();
    status = cudaMalloc(&pointer, rounded_bytes);
    if (status == cudaErrorMemoryAllocation) {
      static_cast<void>(cudaGetLastError());
      throw make_error("CUDA out of memory on ", device_string(device()), ": requested ", rounded_bytes, " bytes (",
                       mebibytes(rounded_bytes), ") after emptying the cache; ", stats_.to_string());
    }
  }
  ANVIL_CUDA_CHECK(status);
  ++stats_.num_cuda_mallocs;
  stats_.bytes_reserved += rounded_bytes;
  stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
  return pointer;
}

void CachingAllocator::move_to_shared_locked(FreeLists& lists) {
  for (auto& [size, blocks] : lists) {
    auto& shared = free_blocks_by_size_[size];
    shared.insert(shared.end(), blocks.begin(), blocks.end());
  }
  lists.clear();
}

void CachingAllocator::empty_cache() {
  const std::lock_guard lock(mutex_);
  empty_cache_locked();
}

void CachingAllocator::empty_cache_locked() {
  if (free_blocks_by_size_.empty()) return;
  const DeviceGuard guard(device_index_);
  // Cached blocks may still be read or written by queued kernels (see the header).
  ANVIL_CUDA_CHECK(cudaDeviceSynchronize());
  // Each block leaves the cache before it is freed, so a failure part-way never leaves a
  // freed pointer behind to be handed out again.
  for (auto entry = free_blocks_by_size_.begin(); entry != free_blocks_by_size_.end();
       entry = free_blocks_by_size_.erase(entry)) {
    auto& blocks = entry->second;
    while (!blocks.empty()) {
      void* block = blocks.back();
      blocks.pop_back();
      stats_.bytes_reserved -= entry->first;
      ANVIL_CUDA_CHECK(cudaFree(block));
    }
  }
}

CachingAllocatorStats CachingAllocator::stats() const {
  const std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peaks() {
  const std::lock_guard lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
  stats_.peak_bytes_reserved = stats_.bytes_reserved;
}

}  // namespace anvil::cuda
