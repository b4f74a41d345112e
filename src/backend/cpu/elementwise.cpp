// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::add(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Add); }
void CpuBackend::mul(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Mul); }
void CpuBackend::scale(Tensor&, const Tensor&, float) { not_supported(OpKind::Scale); }
void CpuBackend::add_backward(Tensor&, Tensor&, const Tensor&) { not_supported(OpKind::AddBackward); }
void CpuBackend::mul_backward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::MulBackward);
}

}  // namespace anvil::cpu
