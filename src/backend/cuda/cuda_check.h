#pragma once
// Error checks for CUDA runtime and cuBLAS(Lt) calls. A failing call throws anvil::Error
// naming the call, where it was made and CUDA's own description of the failure.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "anvil/core/error.h"

namespace anvil::cuda::detail {

// Throws for a failed CUDA runtime call `call_text` made at file:line.
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call_text, const char* file, int line) {
  throw make_error("CUDA call `", call_text, "` failed at ", file, ":", line, ": ", cudaGetErrorString(status), " (",
                   cudaGetErrorName(status), ")");
}

// Throws for a failed cuBLAS or cuBLASLt call (both report cublasStatus_t).
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call_text, const char* file, int line) {
  throw make_error("cuBLAS call `", call_text, "` failed at ", file, ":", line, ": ", cublasGetStatusString(status),
                   " (", cublasGetStatusName(status), ")");
}

}  // namespace anvil::cuda::detail

// Throws anvil::Error when the CUDA runtime call `expr` does not return cudaSuccess.
#define ANVIL_CUDA_CHECK(expr)                                                               \
  do {                                                                                       \
    const cudaError_t anvil_cuda_status = (expr);                                            \
    if (anvil_cuda_status != cudaSuccess) {                                                  \
      ::anvil::cuda::detail::throw_cuda_error(anvil_cuda_status, #expr, __FILE__, __LINE__); \
    }                                                                                        \
  } while (0)

// Throws anvil::Error when the cuBLAS/cuBLASLt call `expr` does not return CUBLAS_STATUS_SUCCESS.
#define ANVIL_CUBLAS_CHECK(expr)                                                                 \
  do {                                                                                           \
    const cublasStatus_t anvil_cublas_status = (expr);                                           \
    if (anvil_cublas_status != CUBLAS_STATUS_SUCCESS) {                                          \
      ::anvil::cuda::detail::throw_cublas_error(anvil_cublas_status, #expr, __FILE__, __LINE__); \
    }                                                                                            \
  } while (0)

// After a kernel launch: throws if the launch itself failed (bad configuration, no
// kernel image for this GPU). Errors inside the kernel surface at the next synchronisation.
#define ANVIL_CUDA_CHECK_LAUNCH() ANVIL_CUDA_CHECK(cudaGetLastError())
