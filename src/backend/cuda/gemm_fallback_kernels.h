#pragma once
// A plain tiled GEMM for the problems cuBLASLt declines (no algo for an odd alignment,
// K = 0, a batch beyond int32). Correct for every RowMajorGemm; not fast.
#include <cuda_runtime_api.h>

#include "cuda/cublaslt_matmul.h"

namespace anvil::cuda {

// Queues out = alpha * op(a) @ op(b) + beta * out on `stream` (beta = 0 never reads out).
void launch_gemm_fallback(const RowMajorGemm& gemm, cudaStream_t stream);

}  // namespace anvil::cuda
