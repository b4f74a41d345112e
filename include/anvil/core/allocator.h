#pragma once
// Allocators hand out raw device memory. Tensors hold it through Storage, which
// returns it to the allocator that made it.
#include <cstddef>
#include <memory>

#include "anvil/core/device.h"

namespace anvil {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns `bytes` of memory on device(); never null (throws anvil::Error on failure).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* pointer, size_t bytes) = 0;
  [[nodiscard]] virtual Device device() const = 0;
};

// 64-byte aligned host memory (one cache line, one AVX-512 register). Stateless.
class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  void* allocate(size_t bytes) override;
  void deallocate(void* pointer, size_t bytes) override;
  [[nodiscard]] Device device() const override { return Device::cpu(); }
  // The shared stateless instance (it holds no state, so sharing it is not a global).
  static CpuAllocator& instance();
};

// A span of device memory owned by one allocator; tensors share it by shared_ptr.
class Storage {
 public:
  Storage(Allocator& allocator, size_t bytes);
  // Wraps memory owned elsewhere (an mmap'd file, say); `keep_alive` holds the owner.
  Storage(void* data, size_t bytes, Device device, std::shared_ptr<void> keep_alive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  [[nodiscard]] void* data() const { return data_; }
  [[nodiscard]] size_t bytes() const { return bytes_; }
  [[nodiscard]] Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // null for borrowed memory
  std::shared_ptr<void> keep_alive_;
};

}  // namespace anvil
