// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::matmul(Tensor&, const Tensor&, const Tensor&, bool, bool, float, float) {
  not_supported(OpKind::Matmul);
}

}  // namespace anvil::cpu
