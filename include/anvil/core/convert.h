#pragma once
// Element conversion between dtypes on host buffers.
#include <cstdint>

#include "anvil/core/dtype.h"

namespace anvil {

// Converts `num_elems` contiguous host elements. Floats round to nearest-even; integer
// destinations round to nearest-even and saturate. Quantized types are accepted as source
// (dequantised) and as destination (quantised) where quant.h has a quantizer.
void convert_host(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t num_elems);

}  // namespace anvil
