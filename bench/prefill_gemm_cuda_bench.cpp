// Prefill GEMMs of bf16-weight models on the GPU: anvil's quantized_matmul with M >= 16
// rows (bf16 activations, as the model's norms now make them, cuBLASLt GEMM, f32 out; and
// with f32 activations, which it casts first) against a plain cuBLASLt
// bf16 GEMM of the same shape (bf16 activations already in place, f32 out, the heuristic's
// first algo, 32 MiB workspace), written here directly against the cuBLASLt API. Shapes:
// Llama-3-8B's projections (fused QKV, O, fused gate/up, down, head) at M prompt rows.
//   usage: anvil_prefill_gemm_cuda_bench [M ...]   (default 512 2048; needs a CUDA device)
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "anvil/context.h"
#include "cuda_timing.h"
#include "anvil/ops/quantized_matmul.h"

namespace {

using anvil::Ctx;
using anvil::Device;
using anvil::DType;
using anvil::Tensor;
using anvil::bench::seconds_per_call;
using anvil::bench::synchronize;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "failed: %s\n", what);
    std::exit(1);
  }
}

// Random values (a pool of 2^20 normals repeated at a random stride: the host generator
// would take seconds for the 0.5 G elements of the head).
Tensor random_tensor(Ctx& ctx, int64_t rows, int64_t cols, DType dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0F, 0.02F);
  std::vector<float> pool(size_t{1} << 20);
  for (float& value : pool) value = normal(rng);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  const size_t stride = 7919;
  for (size_t i = 0; i < values.size(); ++i) values[i] = pool[(i * stride) & (pool.size() - 1)];
  return ctx.to_device(Tensor::from_f32({rows, cols}, values).to_dtype(dtype), Device::cuda(0));
}

// out (M, N) f32 = x (M, K) bf16 @ w (N, K)^T bf16 through cuBLASLt, column-major: D (N, M)
// = A^T B with A = w seen as (K, N), B = x seen as (K, M); D is out row-major.
class PlainCublasLt {
 public:
  PlainCublasLt(int64_t m, int64_t n, int64_t k, cudaStream_t stream) : stream_(stream) {
    check(cublasLtCreate(&handle_) == CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
    check(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS, "desc");
    const cublasOperation_t transpose = CUBLAS_OP_T;
    cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose));
    cublasLtMatrixLayoutCreate(&a_, CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k);
    cublasLtMatrixLayoutCreate(&b_, CUDA_R_16BF, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k);
    cublasLtMatrixLayoutCreate(&c_, CUDA_R_32F, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n);
    cublasLtMatmulPreference_t preference = nullptr;
    cublasLtMatmulPreferenceCreate(&preference);
    const uint64_t workspace = kWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                         sizeof(workspace));
    int found = 0;
    cublasLtMatmulHeuristicResult_t result{};
    check(cublasLtMatmulAlgoGetHeuristic(handle_, desc_, a_, b_, c_, c_, preference, 1, &result, &found) ==
                  CUBLAS_STATUS_SUCCESS &&
              found == 1,
          "heuristic");
    algo_ = result.algo;
    cublasLtMatmulPreferenceDestroy(preference);
    check(cudaMalloc(&workspace_, kWorkspaceBytes) == cudaSuccess, "workspace");
  }
  ~PlainCublasLt() {
    cudaFree(workspace_);
    cublasLtMatrixLayoutDestroy(a_);
    cublasLtMatrixLayoutDestroy(b_);
    cublasLtMatrixLayoutDestroy(c_);
    cublasLtMatmulDescDestroy(desc_);
    cublasLtDestroy(handle_);
  }
  PlainCublasLt(const PlainCublasLt&) = delete;
  PlainCublasLt& operator=(const PlainCublasLt&) = delete;

  void run(const void* w, const void* x, float* out) {
    const float alpha = 1.0F;
    const float beta = 0.0F;
    check(cublasLtMatmul(handle_, desc_, &alpha, w, a_, x, b_, &beta, out, c_, out, c_, &algo_, workspace_,
                         kWorkspaceBytes, stream_) == CUBLAS_STATUS_SUCCESS,
          "cublasLtMatmul");
  }

 private:
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;
  cudaStream_t stream_;
  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  void* workspace_ = nullptr;
};

struct GemmShape {
  const char* name;
  int64_t n, k;
};

}  // namespace

int main(int argc, char** argv) {
  Ctx ctx;
  if (!ctx.has_cuda()) {
    std::fprintf(stderr, "needs a CUDA device\n");
    return 1;
  }
  std::vector<int64_t> rows;
  for (int i = 1; i < argc; ++i) rows.push_back(std::atoll(argv[i]));
  if (rows.empty()) rows = {512, 2048};
  const std::vector<GemmShape> shapes = {{"qkv (fused)", 6144, 4096},
                                         {"o", 4096, 4096},
                                         {"gate+up (fused)", 28672, 4096},
                                         {"down", 4096, 14336},
                                         {"lm head", 128256, 4096}};
  std::mt19937_64 rng(1);
  std::printf("%-16s %6s %6s %6s %14s %16s %8s %16s %8s\n", "gemm", "M", "N", "K", "anvil TFLOP/s", "cuBLASLt TFLOP/s",
              "ratio", "f32 x: TFLOP/s", "ratio");
  for (const int64_t m : rows) {
    for (const GemmShape& shape : shapes) {
      const Tensor weight = random_tensor(ctx, shape.n, shape.k, DType::BF16, rng);
      const Tensor x = random_tensor(ctx, m, shape.k, DType::F32, rng);
      const Tensor x_bf16 = random_tensor(ctx, m, shape.k, DType::BF16, rng);
      Tensor out = ctx.empty({m, shape.n}, DType::F32, Device::cuda(0));
      PlainCublasLt plain(m, shape.n, shape.k, nullptr);
      // Both on the legacy default stream's view of the device: each batch ends in a device sync.
      const double anvil_s = seconds_per_call([&] { anvil::quantized_matmul(ctx, out, x_bf16, weight); }, 10);
      const double cast_s = seconds_per_call([&] { anvil::quantized_matmul(ctx, out, x, weight); }, 10);
      const double plain_s =
          seconds_per_call([&] { plain.run(weight.raw_data(), x_bf16.raw_data(), out.data<float>()); }, 10);
      const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(shape.n) * static_cast<double>(shape.k);
      std::printf("%-16s %6lld %6lld %6lld %14.1f %16.1f %7.3fx %16.1f %7.3fx\n", shape.name, static_cast<long long>(m),
                  static_cast<long long>(shape.n), static_cast<long long>(shape.k), flops / anvil_s / 1e12,
                  flops / plain_s / 1e12, plain_s / anvil_s, flops / cast_s / 1e12, plain_s / cast_s);
      std::fflush(stdout);
    }
  }
  return 0;
}
