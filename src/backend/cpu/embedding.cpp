// Placeholder: kernels not written yet.
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

void CpuBackend::embedding(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Embedding); }
void CpuBackend::embedding_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::EmbeddingBackward); }

}  // namespace anvil::cpu
