// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::adamw(Tensor&, Tensor&, Tensor&, const Tensor&, const AdamWParams&) { not_supported(OpKind::AdamW); }

}  // namespace anvil::cpu
