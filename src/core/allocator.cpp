#include "anvil/core/allocator.h"

#include <cstdlib>
#include <new>

#include "anvil/core/error.h"

namespace anvil {

void* CpuAllocator::allocate(size_t bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* pointer = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (pointer == nullptr) throw make_error("host allocation of ", bytes, " bytes failed");
  return pointer;
}

void CpuAllocator::deallocate(void* pointer, size_t /*bytes*/) { std::free(pointer); }

CpuAllocator& CpuAllocator::instance() {
  static CpuAllocator allocator;
  return allocator;
}

Storage::Storage(Allocator& allocator, size_t bytes)
    : data_(allocator.allocate(bytes)), bytes_(bytes), device_(allocator.device()), allocator_(&allocator) {}

Storage::Storage(void* data, size_t bytes, Device device, std::shared_ptr<void> keep_alive)
    : data_(data), bytes_(bytes), device_(device), keep_alive_(std::move(keep_alive)) {}

Storage::~Storage() {
  if (allocator_ != nullptr) allocator_->deallocate(data_, bytes_);
}

}  // namespace anvil
