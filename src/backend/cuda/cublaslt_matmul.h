#pragma once
// Row-major (batched) GEMMs through cuBLASLt, with the descriptors and the heuristic's algo
// cached per problem. anvil tensors are row-major; cuBLAS is column-major, so
// out (M, N) = op(a) @ op(b) is computed as out^T (N, M) = op(b)^T @ op(a)^T: cuBLAS's "A"
// is our b and its "B" our a, each with the transpose flag that maps the row-major storage.
// Compute is CUBLAS_COMPUTE_32F (no TF32) with f32 alpha/beta for every input dtype.
// With tuning on, a large problem's first call outside stream capture times the heuristic's
// first few algos on the call's own operands and keeps the fastest (the heuristic's first pick
// is not always it, notably with the GELU epilogues); the results of different processes may
// then differ in their last bits, as the chosen algo may.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "anvil/core/dtype.h"
#include "cuda/caching_allocator.h"

namespace anvil::cuda {

// What the epilogue computes beyond the bias add (batch 1 only), in row-major terms:
// GeluAux: out = gelu(product + bias), aux (M, N) of out's dtype = product + bias;
// DGelu: out = product * gelu'(aux), aux (M, N) of out's dtype the saved pre-activation;
// BiasGradA: bias_grad (M) f32 = column sums of op(a) (K, M) over K, i.e. the bias gradient of
// a weight-gradient GEMM out = dout^T @ x with a = dout.
enum class GemmEpilogue : uint8_t { None, GeluAux, DGelu, BiasGradA };

// out (batch, M, N) = alpha * op(a) @ op(b) + beta * out, every operand row-major and
// contiguous per batch entry. a is (M, K), or (K, M) when trans_a; b is (K, N), or (N, K)
// when trans_b. Strides are in elements; a stride of 0 shares the operand by every entry.
struct RowMajorGemm {
  DType input_dtype = DType::F32;   // a and b
  DType output_dtype = DType::F32;  // out: f32 or input_dtype
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_out = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  float alpha = 1.0F;
  float beta = 0.0F;
  // Epilogue inputs (batch 1 only): bias (N) of out's dtype added to every row (null = none),
  // and c, the (M, N) tensor beta scales in place of out (null = out itself).
  const void* bias = nullptr;
  const void* c = nullptr;
  GemmEpilogue epilogue = GemmEpilogue::None;
  void* aux = nullptr;         // GeluAux (written) / DGelu (read): (M, N) like out
  float* bias_grad = nullptr;  // BiasGradA: (M) f32, overwritten
};

// What a cached plan was made for: dtypes, transposes, sizes, strides, pointer alignments.
using GemmPlanKey = std::array<int64_t, 14>;

// The cuBLASLt objects of one problem shape. Owns its descriptors.
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layout_a = nullptr;  // cuBLAS's A: our b
  cublasLtMatrixLayout_t layout_b = nullptr;  // cuBLAS's B: our a
  cublasLtMatrixLayout_t layout_c = nullptr;  // C and D: our out
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
  bool has_algo = false;  // false: the heuristic found nothing; use the fallback kernel
  // Tuning: the heuristic's candidates (algo first), timed at the first uncaptured call, then cleared.
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;

  GemmPlan() = default;
  ~GemmPlan();
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
};

class CublasLtMatmul {
 public:
  // The most workspace a plan may ask for (32 MiB suits Hopper's split-K and stream-K algos).
  static constexpr size_t kMaxWorkspaceBytes = size_t{32} << 20;
  // Tuning times this many of the heuristic's algos, for problems of at least kTuneMinFlops.
  static constexpr int kTuneCandidates = 8;
  static constexpr double kTuneMinFlops = 2e9;

  explicit CublasLtMatmul(bool tune = false) : tune_(tune) {}

  // Queues `gemm` on `stream`. Problems cuBLASLt has no algo for (and K = 0) run on a
  // simple tiled kernel instead. Workspace comes from `allocator` and is released,
  // stream-ordered, right after the launch. A gemm with a bias, c or epilogue that cuBLASLt
  // cannot take is not run: returns false (the caller composes it from plain ops).
  bool run(cublasLtHandle_t handle, const RowMajorGemm& gemm, CachingAllocator& allocator, cudaStream_t stream);

 private:
  GemmPlan& plan_for(cublasLtHandle_t handle, const RowMajorGemm& gemm);
  // Times plan.candidates on `gemm` and keeps the fastest as plan.algo (called under mutex_).
  void tune(cublasLtHandle_t handle, GemmPlan& plan, const RowMajorGemm& gemm, CachingAllocator& allocator,
            cudaStream_t stream);

  bool tune_;
  std::mutex mutex_;
  std::map<GemmPlanKey, GemmPlan> plans_;  // node-based: references stay valid on insert
};

}  // namespace anvil::cuda
