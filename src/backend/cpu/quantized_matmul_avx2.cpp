// AVX2 kernels for quantized_matmul (placeholder).
#include "cpu/quantized_matmul_kernels.h"

namespace anvil::cpu::qmm {
RowKernel avx2_row_kernel(DType) { return nullptr; }
}  // namespace anvil::cpu::qmm
