#include "anvil/context.h"

#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend_factory.h"

namespace anvil {

Ctx::Ctx(const CtxOptions& options)
    : cpu_features_(CpuFeatures::from_environment()),
      pool_(std::make_unique<ThreadPool>(options.num_threads)),
      cpu_backend_(std::make_unique<cpu::CpuBackend>(*pool_, cpu_features_)) {
  if (options.use_cuda) cuda_backend_ = cuda::make_cuda_backend(0, options.tune_gemms);
}

Ctx::~Ctx() = default;

Backend& Ctx::backend(Device device) {
  if (device.is_cpu()) return *cpu_backend_;
  ANVIL_CHECK(cuda_backend_ != nullptr && device == cuda_backend_->device(), "device ", device_string(device),
              " is not available (anvil was built without CUDA, or no GPU is present)");
  return *cuda_backend_;
}

Tensor Ctx::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor::empty(shape, dtype, allocator(device));
}

Tensor Ctx::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend(device).fill_zero(t);
  return t;
}

Tensor Ctx::to_device(const Tensor& src, Device device) {
  ANVIL_CHECK(src.defined(), "to_device of an undefined tensor");
  Tensor dst = empty(src.shape(), src.dtype(), device);
  const Device copier = device.is_cpu() ? src.device() : device;
  backend(copier).copy(dst, src);
  return dst;
}

}  // namespace anvil
