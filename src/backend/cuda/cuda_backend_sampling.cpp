// CudaBackend's sampling primitives: thin launches of sampling_kernels.cu on the stream.
// The free functions (ops/sampling.cpp) already skipped the no-op parameter values.
#include "cuda/cuda_backend.h"
#include "cuda/device_guard.h"
#include "cuda/sampling_kernels.h"
#include "cuda/scratch_buffer.h"

namespace anvil::cuda {

void CudaBackend::argmax(Tensor& ids, const Tensor& logits) {
  const DeviceGuard guard(device_index_);
  launch_argmax(logits.data<const float>(), ids.data<int32_t>(), logits.size(0), logits.size(1), stream_);
}

void CudaBackend::top_k_filter(Tensor& logits, int64_t k) {
  if (k <= 0 || k >= logits.size(1)) return;
  const DeviceGuard guard(device_index_);
  launch_top_k_filter(logits.data<float>(), logits.size(0), logits.size(1), k, stream_);
}

void CudaBackend::top_p_filter(Tensor& logits, float top_p) {
  if (top_p >= 1.0F) return;
  const DeviceGuard guard(device_index_);
  const ScratchBuffer weights(*allocator_, static_cast<size_t>(logits.numel()) * sizeof(double));
  launch_top_p_filter(logits.data<float>(), weights.as<double>(), logits.size(0), logits.size(1), top_p, stream_);
}

void CudaBackend::min_p_filter(Tensor& logits, float min_p) {
  if (min_p <= 0.0F) return;
  const DeviceGuard guard(device_index_);
  launch_min_p_filter(logits.data<float>(), logits.size(0), logits.size(1), min_p, stream_);
}

void CudaBackend::sample_multinomial(Tensor& ids, const Tensor& logits, float temperature, uint64_t seed,
                                     uint64_t offset) {
  const DeviceGuard guard(device_index_);
  launch_sample_multinomial(logits.data<const float>(), ids.data<int32_t>(), logits.size(0), logits.size(1),
                            temperature, seed, offset, stream_);
}

}  // namespace anvil::cuda
