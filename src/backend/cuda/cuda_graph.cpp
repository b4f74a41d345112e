#include "cuda/cuda_graph.h"

#include <cstdio>
#include <exception>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {
namespace {

// Ends a capture that failed part-way and clears the error it left behind.
void abandon_capture(cudaStream_t stream) {
  cudaGraph_t graph = nullptr;
  static_cast<void>(cudaStreamEndCapture(stream, &graph));
  if (graph != nullptr) static_cast<void>(cudaGraphDestroy(graph));
  static_cast<void>(cudaGetLastError());
}

}  // namespace

std::unique_ptr<CudaGraph> CudaGraph::capture(int device_index, cudaStream_t stream,
                                              const std::function<void()>& record) {
  const DeviceGuard guard(device_index);
  ANVIL_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  try {
    record();
  } catch (...) {
    abandon_capture(stream);
    throw;
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (ended != cudaSuccess) {
    if (graph != nullptr) static_cast<void>(cudaGraphDestroy(graph));
    static_cast<void>(cudaGetLastError());
    throw make_error("CUDA graph capture failed: ", cudaGetErrorString(ended));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  static_cast<void>(cudaGraphDestroy(graph));
  if (instantiated != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    throw make_error("CUDA graph instantiation failed: ", cudaGetErrorString(instantiated));
  }
  return std::unique_ptr<CudaGraph>(new CudaGraph(device_index, stream, exec));
}

CudaGraph::~CudaGraph() {
  const cudaError_t status = cudaGraphExecDestroy(exec_);
  if (status != cudaSuccess) std::fprintf(stderr, "anvil: cudaGraphExecDestroy: %s\n", cudaGetErrorString(status));
}

void CudaGraph::replay() {
  const DeviceGuard guard(device_index_);
  ANVIL_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
}

void* PinnedHostAllocator::allocate(size_t bytes) {
  const DeviceGuard guard(device_index_);
  void* pointer = nullptr;
  ANVIL_CUDA_CHECK(cudaMallocHost(&pointer, bytes == 0 ? 1 : bytes));
  return pointer;
}

void PinnedHostAllocator::deallocate(void* pointer, size_t /*bytes*/) {
  // From Storage's destructor: must not throw.
  if (pointer != nullptr) static_cast<void>(cudaFreeHost(pointer));
}

}  // namespace anvil::cuda
