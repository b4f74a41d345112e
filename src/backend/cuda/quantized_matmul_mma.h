#pragma once
// quantized_matmul for many activation rows (prefill): 64 x 64 output tiles on the int8
// tensor cores (mma.sync), weight blocks decoded into shared memory once per tile. Same
// numerics as the dp4a kernels: exact integer block dots, then the CPU's f32 block terms.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// From this many activation rows on, launch_quantized_matmul uses the tensor-core tiles.
inline constexpr int64_t kMmaMinRows = 16;

// out (M, N) = x @ weight^T from activations already quantised into `acts`.
void launch_quantized_matmul_mma(const QuantizedMatmulArgs& args, const QuantizedActivations& acts,
                                 cudaStream_t stream);

}  // namespace anvil::cuda
