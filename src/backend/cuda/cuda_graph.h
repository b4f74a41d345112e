#pragma once
// A CUDA graph recorded from one stream, and page-locked host memory for staging the
// inputs its replays read (Backend::capture_graph, Backend::pinned_host_allocator).
#include <cuda_runtime_api.h>

#include <functional>
#include <memory>

#include "anvil/backend/device_graph.h"
#include "anvil/core/allocator.h"

namespace anvil::cuda {

class CudaGraph final : public DeviceGraph {
 public:
  // Records what `record` queues on `stream` (relaxed capture mode: a cache miss of the
  // allocator may still cudaMalloc) and instantiates it. On failure the capture is ended,
  // the sticky error cleared, and anvil::Error thrown (or what `record` threw, rethrown).
  static std::unique_ptr<CudaGraph> capture(int device_index, cudaStream_t stream, const std::function<void()>& record);
  ~CudaGraph() override;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override;

 private:
  CudaGraph(int device_index, cudaStream_t stream, cudaGraphExec_t exec)
      : device_index_(device_index), stream_(stream), exec_(exec) {}

  int device_index_;
  cudaStream_t stream_;
  cudaGraphExec_t exec_;
};

// cudaMallocHost / cudaFreeHost. Stateless apart from the device it is opened for.
class PinnedHostAllocator final : public Allocator {
 public:
  explicit PinnedHostAllocator(int device_index) : device_index_(device_index) {}
  void* allocate(size_t bytes) override;
  void deallocate(void* pointer, size_t bytes) override;
  [[nodiscard]] Device device() const override { return Device::cpu(); }

 private:
  int device_index_;
};

}  // namespace anvil::cuda
