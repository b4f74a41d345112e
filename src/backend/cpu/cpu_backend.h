#pragma once
// The CPU backend: the reference implementation of every op (what CI runs), with SIMD
// paths picked at run time from CpuFeatures and OpenBLAS for f32 GEMM. Each op's kernels
// live in their own file (cpu/<op>.cpp).
#include "anvil/backend/backend.h"
#include "anvil/core/cpu_features.h"
#include "anvil/core/thread_pool.h"

namespace anvil::cpu {

class CpuBackend final : public Backend {
 public:
  CpuBackend(ThreadPool& pool, const CpuFeatures& features);

  [[nodiscard]] Device device() const override { return Device::cpu(); }
  [[nodiscard]] Allocator& allocator() override { return CpuAllocator::instance(); }
  [[nodiscard]] bool supports(OpKind op, DType dtype) const override;
  [[nodiscard]] ThreadPool& pool() const { return pool_; }
  [[nodiscard]] CpuIsa isa() const { return isa_; }
  [[nodiscard]] const CpuFeatures& features() const { return features_; }

  void copy(Tensor& dst, const Tensor& src) override;
  void fill_zero(Tensor& t) override;
  void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
              float beta) override;
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
  void attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionParams& params) override;
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse,
                          const AttentionParams& params) override;
  void kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v, const Tensor& slots,
                      bool slots_checked) override;
  void paged_attention(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                       const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                       const PagedAttentionParams& params) override;
  void cross_entropy(Tensor& losses, const Tensor& logits, const Tensor& targets) override;
  void cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                              const Tensor& targets) override;
  void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) override;
  void argmax(Tensor& ids, const Tensor& logits) override;
  void top_k_filter(Tensor& logits, int64_t k) override;
  void top_p_filter(Tensor& logits, float top_p) override;
  void min_p_filter(Tensor& logits, float min_p) override;
  void sample_multinomial(Tensor& ids, const Tensor& logits, float temperature, uint64_t seed,
                          uint64_t offset) override;
  void quantized_matmul(Tensor& out, const Tensor& x, const Tensor& weight) override;
  void quantize_activations(Tensor& out, const Tensor& x) override;

 private:
  ThreadPool& pool_;
  CpuFeatures features_;
  CpuIsa isa_;
};

}  // namespace anvil::cpu
