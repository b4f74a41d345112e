// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::softmax(Tensor&, const Tensor&) { not_supported(OpKind::Softmax); }
void CpuBackend::softmax_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::SoftmaxBackward); }

}  // namespace anvil::cpu
