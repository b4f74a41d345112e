#pragma once
// Ctx: everything shared by the ops — thread pool, CPU features, the backends (and, with
// CUDA, the device's streams, library handles and caching allocator). There are no
// globals: every op takes a Ctx.
#include <memory>

#include "anvil/backend/backend.h"
#include "anvil/core/cpu_features.h"
#include "anvil/core/thread_pool.h"

namespace anvil {

struct CtxOptions {
  int num_threads = 0;   // 0: one per hardware thread
  bool use_cuda = true;  // open the CUDA backend when built with CUDA and a GPU is present
  // Time cuBLASLt's candidate algos at each large GEMM shape's first use and keep the
  // fastest (training); off, GEMMs take the heuristic's first pick, the same in every process.
  bool tune_gemms = false;
};

class Ctx {
 public:
  explicit Ctx(const CtxOptions& options = {});
  ~Ctx();
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;

  [[nodiscard]] ThreadPool& pool() { return *pool_; }
  [[nodiscard]] const CpuFeatures& cpu_features() const { return cpu_features_; }
  // The backend for `device`; throws if that device is not available.
  [[nodiscard]] Backend& backend(Device device);
  [[nodiscard]] bool has_cuda() const { return cuda_backend_ != nullptr; }
  // Allocator for `device` (host or the CUDA caching allocator).
  [[nodiscard]] Allocator& allocator(Device device) { return backend(device).allocator(); }
  // New uninitialised tensor on `device`.
  [[nodiscard]] Tensor empty(const Shape& shape, DType dtype, Device device);
  // Copy of `src` on `device` (same dtype).
  [[nodiscard]] Tensor to_device(const Tensor& src, Device device);
  // New zero-filled tensor on `device`.
  [[nodiscard]] Tensor zeros(const Shape& shape, DType dtype, Device device);

 private:
  CpuFeatures cpu_features_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Backend> cpu_backend_;
  std::unique_ptr<Backend> cuda_backend_;
};

}  // namespace anvil
