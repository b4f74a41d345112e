// AVX-512 kernels for quantized_matmul (placeholder).
#include "cpu/quantized_matmul_kernels.h"

namespace anvil::cpu::qmm {
RowKernel avx512_row_kernel(DType, bool) { return nullptr; }
}  // namespace anvil::cpu::qmm
