// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::argmax(Tensor&, const Tensor&) { not_supported(OpKind::Argmax); }
void CpuBackend::top_k_filter(Tensor&, int64_t) { not_supported(OpKind::TopKFilter); }
void CpuBackend::top_p_filter(Tensor&, float) { not_supported(OpKind::TopPFilter); }
void CpuBackend::min_p_filter(Tensor&, float) { not_supported(OpKind::MinPFilter); }
void CpuBackend::sample_multinomial(Tensor&, const Tensor&, float, uint64_t, uint64_t) {
  not_supported(OpKind::SampleMultinomial);
}

}  // namespace anvil::cpu
