// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::layer_norm(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  not_supported(OpKind::LayerNorm);
}
void CpuBackend::layer_norm_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, const Tensor&) {
  not_supported(OpKind::LayerNormBackward);
}

}  // namespace anvil::cpu
