#pragma once
// A temporary device buffer from the caching allocator, returned when the scope ends (also
// on a throw). Returning it right after queuing the kernels that use it is safe: the
// allocator's blocks are reused only by later work on the same stream (caching_allocator.h).
#include <cstddef>

#include "cuda/caching_allocator.h"

namespace anvil::cuda {

class ScratchBuffer {
 public:
  // No allocation for 0 bytes (get() is then nullptr).
  ScratchBuffer(CachingAllocator& allocator, size_t bytes) : allocator_(allocator), bytes_(bytes) {
    if (bytes_ > 0) pointer_ = allocator_.allocate(bytes_);
  }
  ~ScratchBuffer() {
    if (pointer_ != nullptr) allocator_.deallocate(pointer_, bytes_);
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  [[nodiscard]] void* get() const { return pointer_; }
  template <typename T>
  [[nodiscard]] T* as(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(pointer_) + byte_offset);
  }

 private:
  CachingAllocator& allocator_;
  size_t bytes_;
  void* pointer_ = nullptr;
};

}  // namespace anvil::cuda
