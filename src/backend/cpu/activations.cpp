// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::gelu(Tensor&, const Tensor&) { not_supported(OpKind::Gelu); }
void CpuBackend::gelu_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::GeluBackward); }
void CpuBackend::silu(Tensor&, const Tensor&) { not_supported(OpKind::Silu); }
void CpuBackend::silu_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::SiluBackward); }
void CpuBackend::swiglu(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Swiglu); }
void CpuBackend::swiglu_backward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::SwigluBackward);
}

}  // namespace anvil::cpu
