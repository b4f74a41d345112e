// widen_half_row: dispatch, and the portable path.
#include "cpu/half_convert.h"

#include "anvil/core/convert.h"

namespace anvil::cpu {

void widen_half_row(CpuIsa isa, DType dtype, const void* src, float* dst, int64_t n) {
  if (isa != CpuIsa::Scalar) return widen_half_row_avx2(dtype, src, dst, n);
  convert_host(dtype, src, DType::F32, dst, n);
}

}  // namespace anvil::cpu
