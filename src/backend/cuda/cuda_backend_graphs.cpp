// CudaBackend's graph support: stream capture into a CudaGraph, the caching allocator's
// private pools, and uploads from pinned memory that do not wait for the stream.
#include "anvil/core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {

std::unique_ptr<DeviceGraph> CudaBackend::capture_graph(const std::function<void()>& record) {
  return CudaGraph::capture(device_index_, stream_, record);
}

int64_t CudaBackend::create_memory_pool() { return allocator_->create_pool(); }
void CudaBackend::use_memory_pool(int64_t pool) { allocator_->set_active_pool(pool); }
void CudaBackend::release_memory_pool(int64_t pool) { allocator_->release_pool(pool); }

void CudaBackend::upload_async(Tensor& dst, const Tensor& src) {
  ANVIL_CHECK(dst.device() == device() && src.device().is_cpu(), "cuda upload_async: needs a host source and a ",
              device_string(device()), " destination");
  ANVIL_CHECK(dst.dtype() == src.dtype() && dst.nbytes() == src.nbytes() && dst.is_contiguous() && src.is_contiguous(),
              "cuda upload_async: source and destination must be contiguous with the same dtype and size");
  if (dst.nbytes() == 0) return;
  const DeviceGuard guard(device_index_);
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(dst.nbytes()),
                                   cudaMemcpyHostToDevice, stream_));
}

}  // namespace anvil::cuda
