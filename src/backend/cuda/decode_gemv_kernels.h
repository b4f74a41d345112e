#pragma once
// The decode GEMV (one activation row): out (1, N) = x (1, K) @ weight (N, K)^T, with several
// weight rows per thread block and each row's K split over the block's threads, so that every
// thread keeps one load per row in flight (a block streams kRows rows at once) and a
// thread's activations serve all of its rows. Same numerics as quantized_matmul_kernels.h:
// exact integer block dots and the CPU's f32 block terms; only the order of the sum differs.
#include <cuda_runtime_api.h>

#include "cuda/quantized_matmul_kernels.h"

namespace anvil::cuda {

// Queues the GEMV for args.m == 1 and returns true, or returns false when this path does not
// take the weight (its dtype, or a row that is not 16-byte aligned for f16/bf16). `acts`:
// x already quantised (quantized weights; nullptr for f16/bf16, which read args.x).
// The kernels are launched as programmatic dependents (dependent_launch.cuh): they read their
// first weight bytes before the kernel ahead of them on the stream has finished, so the weight
// must not be written by that kernel (model weights are not); x and out are touched only after.
bool launch_decode_gemv(const QuantizedMatmulArgs& args, const QuantizedActivations* acts, cudaStream_t stream);

}  // namespace anvil::cuda
