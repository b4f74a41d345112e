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
  auto cached = free_blocks_by_size_.find(rounded);
  if (cached != free_blocks_by_size_.end() && !cached->second.empty()) {
    pointer = cached->second.back();
    cached->second.pop_back();
    ++stats_.num_cache_hits;
  } else {
    pointer = cuda_malloc_locked(rounded);
  }
  live_block_sizes_.emplace(pointer, rounded);
  stats_.bytes_in_use += rounded;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return pointer;
}

void CachingAllocator::deallocate(void* pointer, size_t /*bytes*/) {
  // Called from Storage's destructor: must not throw. Unknown pointers cannot come from
  // Storage (it only frees what this allocator gave it), so they are ignored.
  if (pointer == nullptr) return;
  const std::lock_guard lock(mutex_);
  const auto live = live_block_sizes_.find(pointer);
  if (live == live_block_sizes_.end()) return;
  const size_t rounded = live->second;
  live_block_sizes_.erase(live);
  stats_.bytes_in_use -= rounded;
  free_blocks_by_size_[rounded].push_back(pointer);
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
