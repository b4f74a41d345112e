#include "anvil/core/quant.h"

#include "anvil/core/error.h"

// Placeholder until the block formats land (owned by the dtype/quant work item).
namespace anvil {

void dequantize_row(DType dtype, const void* /*blocks*/, float* /*out*/, int64_t /*num_elems*/) {
  throw make_error("dequantize_row: ", dtype_name(dtype), " not implemented yet");
}

void quantize_row(DType dtype, const float* /*values*/, void* /*blocks*/, int64_t /*num_elems*/) {
  throw make_error("quantize_row: ", dtype_name(dtype), " not implemented yet");
}

}  // namespace anvil
