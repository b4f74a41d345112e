#pragma once
// The decode GEMV of quantized_matmul (quantized_gemv_kernels.cu): weight rows staged
// through shared memory with 16-byte copies. Same numerics as the dp4a kernels of
// quantized_matmul_kernels.cu.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// Warps per output column (1, 2 or 4): more for short outputs, so enough weight rows
// stream at once to fill the memory system.
int gemv_split(int64_t n);

// out (M, N) = x @ weight^T from activations already quantised into `acts`; false (and
// nothing queued) when the weight rows are not whole 16-byte pieces at 16-byte aligned
// addresses, or the dtype is not block-quantized.
bool launch_staged_gemv(const QuantizedMatmulArgs& args, const QuantizedActivations& acts, cudaStream_t stream);

}  // namespace anvil::cuda
