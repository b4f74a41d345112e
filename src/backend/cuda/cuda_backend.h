#pragma once
// The CUDA backend for one device. Every kernel and copy it issues goes on its one stream,
// in order, which is what the caching allocator's reuse relies on. Ops land one by one;
// until an op is written here the Backend default throws "not supported".
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#include <vector>

#include "anvil/backend/backend.h"
#include "cuda/caching_allocator.h"
#include "cuda/cublaslt_matmul.h"
#include "cuda/cuda_graph.h"

namespace anvil::cuda {

class CudaBackend final : public Backend {
 public:
  // Opens device `device_index`: its stream and caching allocator. Throws anvil::Error
  // when the runtime refuses (the factory checks that the device exists first).
  // tune_gemms: time cuBLASLt's candidate algos for large GEMMs (cublaslt_matmul.h).
  explicit CudaBackend(int device_index, bool tune_gemms = false);
  // Waits for queued work, then frees cached memory, the cuBLASLt handle and the stream.
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  [[nodiscard]] Device device() const override { return Device::cuda(device_index_); }
  [[nodiscard]] Allocator& allocator() override { return *allocator_; }
  [[nodiscard]] CachingAllocator& caching_allocator() { return *allocator_; }
  [[nodiscard]] bool supports(OpKind op, DType dtype) const override;

  // dst = src where each is on this device or the host (at least one on this device).
  // Same dtype: cudaMemcpyAsync on the stream; device->host waits for the copy. Different
  // dtype: host<->device converts on the host (anvil::convert_host) before upload or after
  // download; device->device runs the cast kernel (f32/bf16/f16 only, else anvil::Error).
  // Device sources must be contiguous (there is no strided-gather kernel yet).
  void copy(Tensor& dst, const Tensor& src) override;
  // cudaMemsetAsync on the stream.
  void fill_zero(Tensor& t) override;
  // One cuBLASLt GEMM: bias epilogue, residual as C (cuda_backend_linalg.cpp).
  void linear(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) override;
  // One cuBLASLt GEMM each: GELU_AUX_BIAS, DGELU and BGRADB epilogues (cuda_backend_linalg.cpp);
  // what cuBLASLt has no algo for is composed (the Backend defaults).
  void linear_gelu(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight, const Tensor& bias) override;
  void linear_gelu_input_grad(Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                              const Tensor& pre) override;
  void linear_weight_grad(Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x) override;
  // Name and peaks from the device properties (cuda_backend_report.cpp); the caching
  // allocator's high-water mark.
  [[nodiscard]] DeviceReport device_report() override;
  [[nodiscard]] int64_t peak_memory_bytes() override;
  void reset_peak_memory() override;

  // Elementwise, embedding, norms, rope, activations, softmax, cross-entropy, AdamW
  // (cuda_backend_ops.cpp).
  void add(Tensor& out, const Tensor& a, const Tensor& b) override;
  void mul(Tensor& out, const Tensor& a, const Tensor& b) override;
  void scale(Tensor& out, const Tensor& a, float factor) override;
  void add_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out) override;
  void mul_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b) override;
  void embedding(Tensor& out, const Tensor& table, const Tensor& ids) override;
  void embedding_backward(Tensor& grad_table, const Tensor& grad_out, const Tensor& ids) override;
  void layer_norm(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight, const Tensor& bias,
                  float eps) override;
  void layer_norm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                           const Tensor& weight, const Tensor& mean, const Tensor& rstd) override;
  void layer_norm_backward_residual(Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias, Tensor& dres_sums,
                                    const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                    const Tensor& rstd) override;
  void rms_norm(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) override;
  void add_rms_norm(Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps) override;
  void rms_norm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                         const Tensor& rstd) override;
  void rope(Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params) override;
  void rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params) override;
  void gelu(Tensor& out, const Tensor& x) override;
  void gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) override;
  void silu(Tensor& out, const Tensor& x) override;
  void silu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) override;
  void swiglu(Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) override;
  void softmax(Tensor& out, const Tensor& x) override;
  void softmax_backward(Tensor& dx, const Tensor& dout, const Tensor& y) override;
  void cross_entropy(Tensor& losses, const Tensor& logits, const Tensor& targets) override;
  void cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                              const Tensor& targets) override;
  void cross_entropy_fused(Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                           const Tensor& targets) override;
  void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) override;
  void adamw_runs(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                  std::span<const AdamWRun> runs, Tensor& param_low) override;
  // Whether the ops above run `op` with main input `dtype`.
  [[nodiscard]] static bool supports_pointwise_ops(OpKind op, DType dtype);

  [[nodiscard]] cudaStream_t stream() const { return stream_; }
  // The cuBLASLt handle, created on first use (thread-safe).
  [[nodiscard]] cublasLtHandle_t cublas_lt();
  // Blocks the host until all work queued on the stream is done.
  void synchronize();

 private:
  void copy_host_to_device(Tensor& dst, const Tensor& src);
  void copy_device_to_host(Tensor& dst, const Tensor& src);
  void copy_device_to_device(Tensor& dst, const Tensor& src);

  int device_index_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  std::once_flag cublas_lt_created_;
  cublasLtHandle_t cublas_lt_ = nullptr;

  // ---- graphs: capture, private pools, pinned staging (cuda_backend_graphs.cpp).
 public:
  [[nodiscard]] bool supports_graphs() const override { return true; }
  [[nodiscard]] std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& record) override;
  [[nodiscard]] int64_t create_memory_pool() override;
  void use_memory_pool(int64_t pool) override;
  void release_memory_pool(int64_t pool) override;
  [[nodiscard]] Allocator& pinned_host_allocator() override { return pinned_allocator_; }
  void upload_async(Tensor& dst, const Tensor& src) override;

 private:
  PinnedHostAllocator pinned_allocator_{device_index_};

  // ---- attention group: forward and backward (cuda_backend_attention.cpp).
 public:
  // Whether the attention group runs `op` with `dtype` (called by supports()).
  [[nodiscard]] static bool attention_supports(OpKind op, DType dtype);
  void attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionParams& params) override;
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse,
                          const AttentionParams& params) override;

  // ---- linalg group: matmul, quantized_matmul (cuda_backend_linalg.cpp), sampling
  // (cuda_backend_sampling.cpp), paged KV cache (cuda_backend_paged_attention.cpp).
 public:
  // Whether the linalg group runs `op` with `dtype` (called by supports()).
  [[nodiscard]] static bool linalg_supports(OpKind op, DType dtype);
  void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
              float beta) override;
  void quantized_matmul(Tensor& out, const Tensor& x, const Tensor& weight) override;
  void quantize_activations(Tensor& out, const Tensor& x) override;
  // add_rms_norm, swiglu and paged_attention write Q8Act / Q8KAct outs in their own kernels
  // (paged_attention: Q8Act from its tiled kernel, else through an f32 scratch).
  [[nodiscard]] bool writes_activation_codes(OpKind op) const override {
    return op == OpKind::AddRmsNorm || op == OpKind::Swiglu || op == OpKind::PagedAttention;
  }
  void argmax(Tensor& ids, const Tensor& logits) override;
  void top_k_filter(Tensor& logits, int64_t k) override;
  void top_p_filter(Tensor& logits, float top_p) override;
  void min_p_filter(Tensor& logits, float min_p) override;
  void sample_multinomial(Tensor& ids, const Tensor& logits, float temperature, uint64_t seed,
                          uint64_t offset) override;
  void kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v, const Tensor& slots,
                      bool slots_checked) override;
  void rope_kv_cache_write(Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                           const Tensor& slots, const RopeParams& params, bool slots_checked) override;
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                       const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                       const PagedAttentionParams& params) override;

 private:
  // Rows of x from which f16/bf16-weight quantized_matmul casts x to the weight's dtype and
  // runs a tensor-core GEMM (cuBLASLt) instead of the f32-activation GEMV kernel.
  static constexpr int64_t kTensorCoreMinRows = 16;
  void half_weight_gemm(Tensor& out, const Tensor& x, const Tensor& weight);
  void half_x_matmul(Tensor& out, const Tensor& x, const Tensor& weight);
  // A device tensor's i32 values on the host (waits for the stream): index checks.
  [[nodiscard]] std::vector<int32_t> download_i32(const Tensor& tensor);
  CublasLtMatmul matmul_;  // cached cuBLASLt plans
  int num_sms_ = 0;        // multiprocessors, read on first use
  // Zeroed counters for paged_attention's fused combine (they are reset by the kernel that
  // uses them, so graphs replay on the same buffer); allocated with the backend so that no
  // allocation or memset lands in a captured graph. Calls that need more take the combine
  // kernel (a plan needs at most tokens x kv heads counters, and only when that is below
  // one wave of blocks).
  static constexpr int64_t kPagedCounters = 16384;
  int32_t* paged_counters_ = nullptr;
  // ---- end linalg group
};

}  // namespace anvil::cuda
