// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::rope(Tensor&, const Tensor&, const Tensor&, const RopeParams&) { not_supported(OpKind::Rope); }
void CpuBackend::rope_backward(Tensor&, const Tensor&, const Tensor&, const RopeParams&) {
  not_supported(OpKind::RopeBackward);
}

}  // namespace anvil::cpu
