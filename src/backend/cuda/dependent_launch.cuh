#pragma once
// Programmatic dependent launch (sm_90): a kernel launched with launch_dependent() may start
// while the kernel before it on the stream is still running, once every block of that kernel
// has called allow_dependents() (or exited). Its blocks do what does not depend on the
// previous kernel (the decode GEMV: issue its first weight loads), then wait_for_producer(),
// which returns when the previous kernel has completed and its writes are visible. Outside
// such a launch both calls are no-ops. Stream capture keeps the edge (a programmatic graph
// edge), so decode graphs overlap the same way.
//
// What the kernel ahead writes must be read after wait_for_producer(), through loads the
// compiler cannot move above it: not through `const T* __restrict__` parameters (nvcc may
// treat those loads as invariant, issue them as ld.global.nc and hoist them over the wait:
// decode graphs then read activations before the kernel ahead had written them), but through
// plain pointers or __ldcg (ld.global.cg, at L2).
#include <cuda_runtime_api.h>

#include "cuda/cuda_check.h"

namespace anvil::cuda {

__device__ __forceinline__ void wait_for_producer() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Called at the start of the kernels of a decode step so that the kernel after them launches
// while they finish (the GEMV streams its weights; a small kernel is resident and waiting).
__device__ __forceinline__ void allow_dependents() { asm volatile("griddepcontrol.launch_dependents;" :::); }

template <typename... Params, typename... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                      Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  ANVIL_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...));
}

}  // namespace anvil::cuda
