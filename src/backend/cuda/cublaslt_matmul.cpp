#include "cuda/cublaslt_matmul.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/gemm_fallback_kernels.h"
#include "cuda/scratch_buffer.h"

namespace anvil::cuda {
namespace {

// cuBLASLt's heuristic assumes 256-byte aligned operands unless told otherwise.
constexpr uint64_t kMaxAlignmentBytes = 256;

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return CUDA_R_32F;
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
    default:
      throw make_error("cuda matmul: dtype ", dtype_name(dtype), " is not f32, bf16 or f16");
  }
}

uint64_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  if (address == 0) return kMaxAlignmentBytes;
  return std::min<uint64_t>(kMaxAlignmentBytes, uint64_t{1} << std::countr_zero(address));
}

// A column-major layout of `rows` x `cols` (leading dimension `ld`), strided over `batch`.
cublasLtMatrixLayout_t make_layout(DType dtype, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t layout = nullptr;
  ANVIL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, cuda_type(dtype), static_cast<uint64_t>(rows),
                                                static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const auto count = static_cast<int32_t>(batch);
    ANVIL_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    ANVIL_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return layout;
}

GemmPlanKey key_of(const RowMajorGemm& g) {
  return {static_cast<int64_t>(g.input_dtype),
          static_cast<int64_t>(g.output_dtype),
          (g.trans_a ? 1 : 0) + (g.trans_b ? 2 : 0),
          g.m,
          g.n,
          g.k,
          g.batch,
          g.stride_a,
          g.stride_b,
          g.stride_out,
          static_cast<int64_t>(alignment_of(g.a)),
          static_cast<int64_t>(alignment_of(g.b)),
          static_cast<int64_t>(std::min({alignment_of(g.out), alignment_of(g.c), alignment_of(g.aux)})),
          (g.bias != nullptr ? 1 : 0) + (g.c != nullptr ? 2 : 0) +
              4 * static_cast<int64_t>(std::min(alignment_of(g.bias), alignment_of(g.bias_grad))) +
              4096 * static_cast<int64_t>(g.epilogue)};
}

// The cuBLASLt epilogue of `g`. cuBLAS's D is (N, M) column-major: its rows are our
// columns (one bias entry each), its columns our rows.
cublasLtEpilogue_t epilogue_of(const RowMajorGemm& g) {
  const bool bias = g.bias != nullptr;
  switch (g.epilogue) {
    case GemmEpilogue::GeluAux:
      return bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case GemmEpilogue::DGelu:
      return CUBLASLT_EPILOGUE_DGELU;
    case GemmEpilogue::BiasGradA:
      // Our a is cuBLAS's B (K x M after its op); the sums over K have D's column count M.
      return CUBLASLT_EPILOGUE_BGRADB;
    default:
      return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  }
}

void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const void* value, size_t bytes) {
  ANVIL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, value, bytes));
}

void describe_epilogue(const RowMajorGemm& g, cublasLtMatmulDesc_t desc) {
  const cublasLtEpilogue_t epilogue = epilogue_of(g);
  if (epilogue == CUBLASLT_EPILOGUE_DEFAULT) return;
  set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue));
  const bool bias_grad = g.epilogue == GemmEpilogue::BiasGradA;
  if (g.bias != nullptr || bias_grad) {
    const cudaDataType_t bias_type = bias_grad ? CUDA_R_32F : cuda_type(g.output_dtype);
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type));
  }
  if (g.epilogue == GemmEpilogue::GeluAux || g.epilogue == GemmEpilogue::DGelu) {
    const int64_t aux_ld = g.n;  // aux is laid out like D
    set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld));
  }
}

// Fills `plan` with the descriptors of `g` in cuBLAS terms: D (N, M) = op(b)^T-ish @ op(a)^T-ish.
void describe(const RowMajorGemm& g, GemmPlan& plan) {
  ANVIL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // Row-major b (K, N) is column-major (N, K) with ld N: op N. Row-major b (N, K) is
  // column-major (K, N) with ld K: op T. Likewise for a with M in place of N.
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  ANVIL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_b, sizeof(op_b)));
  ANVIL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_a, sizeof(op_a)));
  plan.layout_a = g.trans_b ? make_layout(g.input_dtype, g.k, g.n, g.k, g.batch, g.stride_b)
                            : make_layout(g.input_dtype, g.n, g.k, g.n, g.batch, g.stride_b);
  plan.layout_b = g.trans_a ? make_layout(g.input_dtype, g.m, g.k, g.m, g.batch, g.stride_a)
                            : make_layout(g.input_dtype, g.k, g.m, g.k, g.batch, g.stride_a);
  plan.layout_c = make_layout(g.output_dtype, g.n, g.m, g.n, g.batch, g.stride_out);
  describe_epilogue(g, plan.desc);
}

// Asks the heuristic for its best `count` algos within the workspace limit and the operands'
// alignment: the first becomes the plan's algo, all of them its candidates when count > 1.
void choose_algo(cublasLtHandle_t handle, const RowMajorGemm& g, GemmPlan& plan, int count) {
  cublasLtMatmulPreference_t preference = nullptr;
  ANVIL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  {
    const uint64_t workspace = CublasLtMatmul::kMaxWorkspaceBytes;
    const uint32_t align_a = static_cast<uint32_t>(alignment_of(g.b));  // cuBLAS's A is our b
    const uint32_t align_b = static_cast<uint32_t>(alignment_of(g.a));
    const uint32_t align_c =
        static_cast<uint32_t>(std::min({alignment_of(g.out), alignment_of(g.c), alignment_of(g.aux)}));
    const auto set = [&](cublasLtMatmulPreferenceAttributes_t attribute, const void* value, size_t bytes) {
      if (status == CUBLAS_STATUS_SUCCESS)
        status = cublasLtMatmulPreferenceSetAttribute(preference, attribute, value, bytes);
    };
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c));
    if (status == CUBLAS_STATUS_SUCCESS) {
      status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.layout_a, plan.layout_b, plan.layout_c,
                                              plan.layout_c, preference, count, results.data(), &found);
    }
  }
  static_cast<void>(cublasLtMatmulPreferenceDestroy(preference));
  // NOT_SUPPORTED means no algo fits: the fallback kernel takes the problem. An epilogue this
  // cuBLASLt rejects for these types (INVALID_VALUE) leaves the plan without an algo too: the
  // caller composes the op.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return;
  if (status == CUBLAS_STATUS_INVALID_VALUE && g.epilogue != GemmEpilogue::None) return;
  ANVIL_CUBLAS_CHECK(status);
  results.resize(static_cast<size_t>(std::max(found, 0)));
  std::erase_if(results, [](const cublasLtMatmulHeuristicResult_t& r) { return r.state != CUBLAS_STATUS_SUCCESS; });
  if (results.empty()) return;
  plan.algo = results.front().algo;
  plan.workspace_bytes = results.front().workspaceSize;
  plan.has_algo = true;
  if (results.size() > 1) plan.candidates = std::move(results);
}

double flops_of(const RowMajorGemm& g) {
  return 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k) *
         static_cast<double>(g.batch);
}

// One launch of `g` with `algo`, D written to `d` (out, or a scratch while tuning).
cublasStatus_t launch(cublasLtHandle_t handle, const GemmPlan& plan, const cublasLtMatmulAlgo_t& algo,
                      const RowMajorGemm& g, void* d, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const void* c = g.c != nullptr ? g.c : g.out;
  return cublasLtMatmul(handle, plan.desc, &g.alpha, g.b, plan.layout_a, g.a, plan.layout_b, &g.beta, c, plan.layout_c,
                        d, plan.layout_c, &algo, workspace, workspace_bytes, stream);
}

// A pair of events for timing, destroyed with the scope.
class EventPair {
 public:
  EventPair() {
    ANVIL_CUDA_CHECK(cudaEventCreate(&start_));
    ANVIL_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventPair() {
    static_cast<void>(cudaEventDestroy(stop_));
    static_cast<void>(cudaEventDestroy(start_));
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  [[nodiscard]] cudaEvent_t start() const { return start_; }
  [[nodiscard]] cudaEvent_t stop() const { return stop_; }

 private:
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ANVIL_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace

GemmPlan::~GemmPlan() {
  if (layout_c != nullptr) static_cast<void>(cublasLtMatrixLayoutDestroy(layout_c));
  if (layout_b != nullptr) static_cast<void>(cublasLtMatrixLayoutDestroy(layout_b));
  if (layout_a != nullptr) static_cast<void>(cublasLtMatrixLayoutDestroy(layout_a));
  if (desc != nullptr) static_cast<void>(cublasLtMatmulDescDestroy(desc));
}

GemmPlan& CublasLtMatmul::plan_for(cublasLtHandle_t handle, const RowMajorGemm& gemm) {
  const GemmPlanKey key = key_of(gemm);
  const std::lock_guard lock(mutex_);
  const auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  // A plan that fails to build is erased again, so a later call retries rather than
  // finding a half-made one.
  auto [entry, inserted] = plans_.try_emplace(key);
  try {
    describe(gemm, entry->second);
    const bool tunes = tune_ && flops_of(gemm) >= kTuneMinFlops;
    choose_algo(handle, gemm, entry->second, tunes ? kTuneCandidates : 1);
  } catch (...) {
    plans_.erase(entry);
    throw;
  }
  return entry->second;
}

void CublasLtMatmul::tune(cublasLtHandle_t handle, GemmPlan& plan, const RowMajorGemm& gemm,
                          CachingAllocator& allocator, cudaStream_t stream) {
  constexpr int kRepeats = 3;
  const std::vector<cublasLtMatmulHeuristicResult_t> candidates = std::move(plan.candidates);
  plan.candidates.clear();
  size_t workspace_bytes = 0;
  for (const auto& candidate : candidates) workspace_bytes = std::max(workspace_bytes, candidate.workspaceSize);
  const ScratchBuffer workspace(allocator, workspace_bytes);
  // Repeated launches must leave the same result: D goes to a scratch when it is also read
  // (C = D with beta != 0, or DGELU's aux = D).
  const void* c = gemm.c != nullptr ? gemm.c : gemm.out;
  const bool reads_d = (gemm.beta != 0.0F && c == gemm.out) || gemm.aux == gemm.out;
  const size_t d_bytes =
      static_cast<size_t>(dtype_bytes_for(gemm.output_dtype, (gemm.batch - 1) * gemm.stride_out + gemm.m * gemm.n));
  const ScratchBuffer scratch_d(allocator, reads_d ? d_bytes : 0);
  void* d = reads_d ? scratch_d.get() : gemm.out;
  const EventPair events;
  float best_ms = 0.0F;
  for (const auto& candidate : candidates) {
    // An algo the library refuses at launch is skipped.
    if (launch(handle, plan, candidate.algo, gemm, d, workspace.get(), workspace_bytes, stream) !=
        CUBLAS_STATUS_SUCCESS) {
      continue;
    }
    ANVIL_CUDA_CHECK(cudaEventRecord(events.start(), stream));
    for (int r = 0; r < kRepeats; ++r) {
      ANVIL_CUBLAS_CHECK(launch(handle, plan, candidate.algo, gemm, d, workspace.get(), workspace_bytes, stream));
    }
    ANVIL_CUDA_CHECK(cudaEventRecord(events.stop(), stream));
    ANVIL_CUDA_CHECK(cudaEventSynchronize(events.stop()));
    float ms = 0.0F;
    ANVIL_CUDA_CHECK(cudaEventElapsedTime(&ms, events.start(), events.stop()));
    if (best_ms == 0.0F || ms < best_ms) {
      best_ms = ms;
      plan.algo = candidate.algo;
      plan.workspace_bytes = candidate.workspaceSize;
    }
  }
}

bool CublasLtMatmul::run(cublasLtHandle_t handle, const RowMajorGemm& gemm, CachingAllocator& allocator,
                         cudaStream_t stream) {
  const bool epilogue = gemm.bias != nullptr || gemm.c != nullptr || gemm.epilogue != GemmEpilogue::None;
  ANVIL_CHECK(!epilogue || gemm.batch == 1, "cuda matmul: a bias or c needs batch 1, got ", gemm.batch);
  if (gemm.m == 0 || gemm.n == 0 || gemm.batch == 0) return true;
  // cuBLASLt's batch count is an int32; K = 0 is a pure scaling of out.
  const bool lt_shape = gemm.k > 0 && gemm.batch <= INT32_MAX;
  if (epilogue && !lt_shape) return false;
  GemmPlan* plan = lt_shape ? &plan_for(handle, gemm) : nullptr;
  if (plan == nullptr || !plan->has_algo) {
    if (epilogue) return false;
    launch_gemm_fallback(gemm, stream);
    return true;
  }
  // The bias pointer lives in the cached descriptor: set and launch under the lock.
  const std::lock_guard lock(mutex_);
  if (gemm.bias != nullptr) set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &gemm.bias, sizeof(gemm.bias));
  if (gemm.bias_grad != nullptr) {
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &gemm.bias_grad, sizeof(gemm.bias_grad));
  }
  if (gemm.aux != nullptr) set_desc(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &gemm.aux, sizeof(gemm.aux));
  if (!plan->candidates.empty() && !capturing(stream)) tune(handle, *plan, gemm, allocator, stream);
  const ScratchBuffer workspace(allocator, plan->workspace_bytes);
  ANVIL_CUBLAS_CHECK(launch(handle, *plan, plan->algo, gemm, gemm.out, workspace.get(), plan->workspace_bytes, stream));
  return true;
}

}  // namespace anvil::cuda
