// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::attention(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) {
  not_supported(OpKind::Attention);
}
void CpuBackend::attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) {
  not_supported(OpKind::AttentionBackward);
}

}  // namespace anvil::cpu
