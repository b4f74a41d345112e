// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::cross_entropy(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::CrossEntropy); }
void CpuBackend::cross_entropy_backward(Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::CrossEntropyBackward);
}

}  // namespace anvil::cpu
