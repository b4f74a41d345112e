#pragma once
// Opens the CUDA backend for one device. Without CUDA support compiled in, or when no
// GPU is present, returns null and the context runs CPU-only.
#include <memory>

#include "anvil/backend/backend.h"

namespace anvil::cuda {

// tune_gemms: see CtxOptions.
std::unique_ptr<Backend> make_cuda_backend(int device_index, bool tune_gemms = false);

}  // namespace anvil::cuda
