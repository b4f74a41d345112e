#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::copy(Tensor& dst, const Tensor& src) {
  ANVIL_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "cpu copy: both tensors must be on the host");
  const Tensor source = src.contiguous();
  convert_host(source.dtype(), source.raw_data(), dst.dtype(), dst.raw_data(), source.numel());
}

}  // namespace anvil::cpu
