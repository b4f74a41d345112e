#include "cuda/cuda_backend.h"

#include <cstdio>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cuda/cast_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {

CudaBackend::CudaBackend(int device_index, bool tune_gemms) : device_index_(device_index), matmul_(tune_gemms) {
  const DeviceGuard guard(device_index_);
  // Non-blocking: the stream does not serialise with the legacy default stream.
  ANVIL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  allocator_ = std::make_unique<CachingAllocator>(device_index_);
  void* counters = nullptr;
  ANVIL_CUDA_CHECK(cudaMalloc(&counters, kPagedCounters * sizeof(int32_t)));
  paged_counters_ = static_cast<int32_t*>(counters);
  ANVIL_CUDA_CHECK(cudaMemsetAsync(paged_counters_, 0, kPagedCounters * sizeof(int32_t), stream_));
}

CudaBackend::~CudaBackend() {
  // Teardown must not throw; errors here (driver shutting down at exit) are reported only.
  try {
    const DeviceGuard guard(device_index_);
    static_cast<void>(cudaStreamSynchronize(stream_));
    allocator_.reset();
    static_cast<void>(cudaFree(paged_counters_));
    if (cublas_lt_ != nullptr) static_cast<void>(cublasLtDestroy(cublas_lt_));
    static_cast<void>(cudaStreamDestroy(stream_));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "anvil: CUDA backend teardown: %s\n", error.what());
  }
}

bool CudaBackend::supports(OpKind op, DType dtype) const {
  return op == OpKind::Copy || supports_pointwise_ops(op, dtype) || attention_supports(op, dtype) ||
         linalg_supports(op, dtype);
}

cublasLtHandle_t CudaBackend::cublas_lt() {
  // call_once retries if creation throws, so a transient failure is not remembered.
  std::call_once(cublas_lt_created_, [this] {
    const DeviceGuard guard(device_index_);
    ANVIL_CUBLAS_CHECK(cublasLtCreate(&cublas_lt_));
  });
  return cublas_lt_;
}

void CudaBackend::synchronize() {
  const DeviceGuard guard(device_index_);
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(Tensor& dst, const Tensor& src) {
  const bool dst_here = dst.device() == device();
  const bool src_here = src.device() == device();
  ANVIL_CHECK((dst_here || dst.device().is_cpu()) && (src_here || src.device().is_cpu()) && (dst_here || src_here),
              "cuda copy: ", device_string(src.device()), " -> ", device_string(dst.device()),
              " does not involve this backend's device ", device_string(device()));
  ANVIL_CHECK(dst.shape() == src.shape(), "cuda copy: dst shape ", shape_string(dst.shape()), " != src shape ",
              shape_string(src.shape()));
  ANVIL_CHECK(dst.is_contiguous(), "cuda copy: dst must be contiguous");
  if (dst.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  if (!src_here) return copy_host_to_device(dst, src);
  ANVIL_CHECK(src.is_contiguous(), "cuda copy: a device source must be contiguous (no strided device copy yet)");
  if (!dst_here) return copy_device_to_host(dst, src);
  copy_device_to_device(dst, src);
}

void CudaBackend::fill_zero(Tensor& t) {
  ANVIL_CHECK(t.is_contiguous() && t.device() == device(), "cuda fill_zero: tensor must be contiguous on ",
              device_string(device()));
  if (t.nbytes() == 0) return;
  const DeviceGuard guard(device_index_);
  ANVIL_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, static_cast<size_t>(t.nbytes()), stream_));
}

void CudaBackend::copy_host_to_device(Tensor& dst, const Tensor& src) {
  // Gather and convert on the host so the upload is one contiguous memcpy of dst's dtype.
  const Tensor staged = src.dtype() == dst.dtype() ? src.contiguous() : src.to_dtype(dst.dtype());
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), staged.raw_data(), static_cast<size_t>(dst.nbytes()),
                                   cudaMemcpyHostToDevice, stream_));
  // From pageable memory (CpuAllocator, mmap) cudaMemcpyAsync returns only once the source
  // has been read into a staging buffer, so `staged` may be freed and src reused at once.
  // From pinned memory the DMA reads the source later: wait for it.
  cudaPointerAttributes attributes{};
  ANVIL_CUDA_CHECK(cudaPointerGetAttributes(&attributes, staged.raw_data()));
  if (attributes.type == cudaMemoryTypeHost) ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_device_to_host(Tensor& dst, const Tensor& src) {
  // The host reads the result right after: wait for the stream (and all work before it).
  if (src.dtype() == dst.dtype()) {
    ANVIL_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(src.nbytes()),
                                     cudaMemcpyDeviceToHost, stream_));
    ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  const Tensor staged = Tensor::empty(src.shape(), src.dtype());
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(staged.raw_data(), src.raw_data(), static_cast<size_t>(src.nbytes()),
                                   cudaMemcpyDeviceToHost, stream_));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  convert_host(src.dtype(), staged.raw_data(), dst.dtype(), dst.raw_data(), src.numel());
}

void CudaBackend::copy_device_to_device(Tensor& dst, const Tensor& src) {
  // Stream-ordered: no host wait, later work on the stream sees the result.
  if (src.dtype() == dst.dtype()) {
    ANVIL_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), static_cast<size_t>(src.nbytes()),
                                     cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  launch_cast(src.dtype(), src.raw_data(), dst.dtype(), dst.raw_data(), src.numel(), stream_);
}

}  // namespace anvil::cuda
