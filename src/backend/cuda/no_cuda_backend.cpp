// Built when ANVIL_WITH_CUDA is off: there is never a CUDA backend.
#include "cuda/cuda_backend_factory.h"

namespace anvil::cuda {

std::unique_ptr<Backend> make_cuda_backend(int /*device_index*/, bool /*tune_gemms*/) { return nullptr; }

}  // namespace anvil::cuda
