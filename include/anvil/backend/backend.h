#pragma once
// The backend interface: one virtual method per op kernel. The free functions in
// anvil/ops/*.h validate arguments once, then call the backend of the tensors' device.
// A backend that lacks an op keeps the default, which throws a clear "not supported".
// Tensors given to a backend are already checked: same device, contiguous, shapes agree.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "anvil/backend/device_graph.h"
#include "anvil/backend/op_params.h"
#include "anvil/core/device.h"
#include "anvil/core/tensor.h"

namespace anvil {

enum class OpKind : uint8_t {
  Copy,
  Matmul,
  Add,
  Mul,
  Scale,
  AddBackward,
  MulBackward,
  Embedding,
  EmbeddingBackward,
  LayerNorm,
  LayerNormBackward,
  RmsNorm,
  RmsNormBackward,
  Rope,
  RopeBackward,
  Gelu,
  GeluBackward,
  Silu,
  SiluBackward,
  Swiglu,
  SwigluBackward,
  Softmax,
  SoftmaxBackward,
  Attention,
  AttentionBackward,
  CrossEntropy,
  CrossEntropyBackward,
  AdamW,
  Argmax,
  TopKFilter,
  TopPFilter,
  MinPFilter,
  SampleMultinomial,
  QuantizedMatmul,
  KvCacheWrite,
  PagedAttention,
  AddRmsNorm,
  RopeKvCacheWrite,
  QuantizeActivations,
};
const char* op_name(OpKind op);

// What a training run reports about a device (for the MFU figure).
struct DeviceReport {
  std::string name;             // e.g. "NVIDIA H100 80GB HBM3"; empty when unknown
  double peak_bf16_gflops = 0;  // dense bf16 tensor-core peak (f32 accumulation); 0 = unknown
  double peak_f32_gflops = 0;   // plain f32 (no TF32) peak; 0 = unknown
};

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual Device device() const = 0;
  [[nodiscard]] virtual Allocator& allocator() = 0;
  // Whether `op` runs on this backend with `dtype` as its main input type.
  [[nodiscard]] virtual bool supports(OpKind op, DType dtype) const = 0;

  // dst = src (same shape; dtypes may differ; devices may differ when one is the host).
  virtual void copy(Tensor& dst, const Tensor& src);
  // Every byte of the contiguous tensor t (on this backend's device) set to zero.
  virtual void fill_zero(Tensor& t);

  // The device's name and peak throughput (the default knows neither).
  [[nodiscard]] virtual DeviceReport device_report();
  // Bytes of device memory in use at most since the last reset_peak_memory() (0 = not tracked).
  [[nodiscard]] virtual int64_t peak_memory_bytes() { return 0; }
  virtual void reset_peak_memory() {}

  // out (..., M, N) = alpha * op(a) @ op(b) + beta * out. a: (..., M, K) or (..., K, M) when
  // trans_a; b: (..., K, N) or (..., N, K) when trans_b, or 2-D and shared by every batch.
  virtual void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
                      float beta);
  // out (N, O) = x (N, I) @ weight (O, I)^T [+ bias (O)] [+ residual (N, O)] (bias / residual
  // may be undefined; residual may alias out). The default composes copy, matmul and add, in an
  // f32 scratch when out is bf16/f16 and has a bias, so the result is rounded once.
  virtual void linear(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual);
  // pre (N, O) = x @ weight^T [+ bias] and out (N, O) = gelu(pre) (tanh approximation); out
  // and pre share a dtype. A backend may compute out from pre before pre is rounded to its
  // dtype (CUDA: the cuBLASLt GELU_AUX_BIAS epilogue). The default runs linear then gelu.
  virtual void linear_gelu(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight, const Tensor& bias);
  // dpre (N, F) = (dout (N, O) @ weight (O, F)) * gelu'(pre (N, F)): the input gradient of
  // linear(gelu(pre), weight) through the GELU; dbias (F) f32 (may be undefined) += the column
  // sums of dpre (the bias gradient of the linear that made pre). A backend may skip rounding
  // the product to dpre's dtype before the multiply (CUDA: the DGELU epilogue, then the column
  // sums). The default runs matmul, gelu_backward, add_backward and add.
  virtual void linear_gelu_input_grad(Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                                      const Tensor& pre);
  // The parameter gradients of out = x @ weight^T + bias: dweight (O, I) f32 += dout (N, O)^T
  // @ x (N, I); dbias (O) f32 (may be undefined) += the column sums of dout. The default runs
  // matmul, add_backward and add; CUDA takes the column sums from the GEMM's BGRADB epilogue.
  virtual void linear_weight_grad(Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x);

  // Elementwise with b broadcast over a's leading dims (b's shape is a suffix of a's).
  virtual void add(Tensor& out, const Tensor& a, const Tensor& b);
  virtual void mul(Tensor& out, const Tensor& a, const Tensor& b);
  virtual void scale(Tensor& out, const Tensor& a, float factor);
  // grad_a = grad_out; grad_b = grad_out summed over the broadcast dims (either may be undefined).
  virtual void add_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out);
  virtual void mul_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b);

  // out (N, C) = table[ids]; ids (N) i32. Backward accumulates: grad_table[ids[i]] += grad_out[i].
  virtual void embedding(Tensor& out, const Tensor& table, const Tensor& ids);
  virtual void embedding_backward(Tensor& grad_table, const Tensor& grad_out, const Tensor& ids);

  // Normalisation over the last dim C of x (N, C). mean/rstd (N) f32 are saved for backward
  // (may be undefined in inference). Backward writes dx and accumulates dweight/dbias.
  virtual void layer_norm(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                          const Tensor& bias, float eps);
  virtual void layer_norm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                   const Tensor& weight, const Tensor& mean, const Tensor& rstd);
  // layer_norm_backward whose dx is added to a residual gradient: dres (N, C) f32 += dx, then
  // dres_low (N, C) bf16 (may be undefined) = dres rounded (the next GEMMs' operand), and
  // dres_sums (C) f32 (may be undefined) += the column sums of the updated dres (the bias
  // gradient of the linear whose output was added to the residual stream there). The default
  // runs layer_norm_backward into a temporary, add, copy and the column sums; CUDA does it
  // in one pass.
  virtual void layer_norm_backward_residual(Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias,
                                            Tensor& dres_sums, const Tensor& dout, const Tensor& x,
                                            const Tensor& weight, const Tensor& mean, const Tensor& rstd);
  virtual void rms_norm(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps);
  virtual void rms_norm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x, const Tensor& weight,
                                 const Tensor& rstd);
  // Residual add then RMSNorm in one pass (inference): x += delta (x rounded to its dtype),
  // then out = rms_norm(x) * weight; x, delta, out (N, C). The result equals add followed
  // by rms_norm on the same backend up to that backend's reduction order (on the CPU: bit
  // for bit, it runs exactly those two ops).
  virtual void add_rms_norm(Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps);

  // Rotary embedding of x (N, H, D) at positions (N) i32; out may alias x.
  virtual void rope(Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params);
  virtual void rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params);

  // Activations. gelu is the tanh approximation. swiglu: out = silu(gate) * up.
  virtual void gelu(Tensor& out, const Tensor& x);
  virtual void gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x);
  virtual void silu(Tensor& out, const Tensor& x);
  virtual void silu_backward(Tensor& dx, const Tensor& dout, const Tensor& x);
  virtual void swiglu(Tensor& out, const Tensor& gate, const Tensor& up);
  virtual void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up);

  // Softmax over the last dim; backward from the saved output y.
  virtual void softmax(Tensor& out, const Tensor& x);
  virtual void softmax_backward(Tensor& dx, const Tensor& dout, const Tensor& y);

  // Self-attention. q (B, T, Hq, D), k/v (B, T, Hkv, D) with Hq a multiple of Hkv (GQA);
  // out (B, T, Hq, D); lse (B, Hq, T) f32 log-sum-exp of scaled scores, saved for backward.
  virtual void attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionParams& params);
  virtual void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                  const AttentionParams& params);

  // Paged KV cache (anvil/ops/paged_attention.h): caches (num_blocks, block_size, Hkv, D).
  // kv_cache_write copies k/v (N, Hkv, D) to flat slots (N) i32. paged_attention: out/q
  // (N, Hq, D); token i of sequence token_sequences[i] at positions[i] attends causally to
  // its sequence's cached positions through block_tables (S, max_blocks) i32. Slot, sequence,
  // position and block id values are checked here (they may live on the device).
  // slots_checked: the caller has checked the slots (see PagedAttentionParams::checked_max_visible).
  virtual void kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                              const Tensor& slots, bool slots_checked);
  virtual void paged_attention(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                               const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                               const PagedAttentionParams& params);
  // A decode step's rotary embedding and cache write in one op: qkv (N, Hq + 2 Hkv, D) holds
  // each token's q, k and v heads; the q and k heads rotate in place at positions (N), then
  // k and v go to the caches at slots (N) as kv_cache_write writes them. The default runs
  // rope on each token's q and k heads and then kv_cache_write (on the CPU: exactly those
  // ops); CUDA does it in one kernel.
  virtual void rope_kv_cache_write(Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                                   const Tensor& slots, const RopeParams& params, bool slots_checked);

  // Fused softmax + cross-entropy. logits (N, V); targets (N) i32, negative = ignored (loss 0).
  // losses (N) f32. Backward: dlogits = (softmax - onehot) * dlosses[row].
  virtual void cross_entropy(Tensor& losses, const Tensor& logits, const Tensor& targets);
  virtual void cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                      const Tensor& targets);
  // Both in one pass over the logits: losses as cross_entropy, dlogits as
  // cross_entropy_backward; dlogits may alias logits (the logits are then overwritten). The
  // default runs the two ops (into a temporary when aliased).
  virtual void cross_entropy_fused(Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                   const Tensor& targets);

  // One AdamW step, in place on param, m, v (f32); grad f32 or bf16.
  virtual void adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params);
  // The same step on the runs of flat (P) buffers: runs sorted, disjoint, within [0, P);
  // elements outside every run untouched. Each element's result is bit-identical to adamw on
  // its run's slice (weight_decay 0 for runs without decay); param_low (P) bf16 (may be
  // undefined) receives every updated element rounded. The default calls adamw (and copy)
  // per run; CUDA updates every run in one launch.
  virtual void adamw_runs(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                          std::span<const AdamWRun> runs, Tensor& param_low);

  // Sampling primitives on logits (N, V) f32. Filters set dropped entries to -inf in place.
  virtual void argmax(Tensor& ids, const Tensor& logits);
  virtual void top_k_filter(Tensor& logits, int64_t k);
  virtual void top_p_filter(Tensor& logits, float top_p);
  virtual void min_p_filter(Tensor& logits, float min_p);
  // Draws ids (N) i32 from softmax(logits / temperature) per row using Philox(seed, row), counter `offset`.
  virtual void sample_multinomial(Tensor& ids, const Tensor& logits, float temperature, uint64_t seed, uint64_t offset);

  // out (M, N) f32 = x (M, K) f32 @ weight^T; weight (N, K) block-quantized (Q8_0..Q6_K) or
  // f32/f16/bf16; K a whole number of weight blocks. x is quantised to 8 bits per block first
  // for quantized weights; for f16/bf16 weights a backend may round x to the weight's dtype
  // from 16 rows on (CUDA does: a tensor-core GEMM with f32 accumulation, for prefill).
  // x may also be given in the f16/bf16 dtype of such a weight (then used as it is).
  // x may also be Q8Act / Q8KAct activations (quantize_activations) for such a weight: then
  // the matmul reads them as they are (its result is the same bits as from the f32 x).
  virtual void quantized_matmul(Tensor& out, const Tensor& x, const Tensor& weight);
  // out (M, K) Q8Act / Q8KAct = x (M, K) f32 quantised as quantized_matmul quantises x.
  virtual void quantize_activations(Tensor& out, const Tensor& x);
  // Whether `op` (AddRmsNorm, Swiglu) writes a Q8Act / Q8KAct out itself; where not, the op
  // layer runs it into an f32 scratch and then quantize_activations.
  [[nodiscard]] virtual bool writes_activation_codes(OpKind /*op*/) const { return false; }

  // ---- Device graphs (CUDA); the defaults throw "not supported".
  // Whether the calls below work here.
  [[nodiscard]] virtual bool supports_graphs() const { return false; }
  // Records (does not run) the ops `record` issues into a graph. `record` must not wait for
  // the device, copy from pageable host memory, or free memory a replay will use: run it
  // with a private memory pool active, after one uncaptured run of the same work so the
  // pool already holds every block. Throws anvil::Error (the stream usable again) when the
  // capture fails.
  [[nodiscard]] virtual std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& record);
  // A new private memory pool (see CachingAllocator) and which pool (0: the shared one)
  // serves this backend's allocations; release_memory_pool once its graphs are destroyed.
  [[nodiscard]] virtual int64_t create_memory_pool();
  virtual void use_memory_pool(int64_t pool);
  virtual void release_memory_pool(int64_t pool);
  // Page-locked host memory (host tensors from it upload without staging).
  [[nodiscard]] virtual Allocator& pinned_host_allocator();
  // dst (this device) = src (contiguous pinned host memory, same dtype and shape), queued
  // without a host wait: src must stay unchanged until the stream has passed the copy (a
  // later download waits for it).
  virtual void upload_async(Tensor& dst, const Tensor& src);

 protected:
  [[noreturn]] void not_supported(OpKind op) const;
  // sums (F) f32 += the column sums of rows (N, F), through a scratch (a bias gradient).
  void add_column_sums(Tensor& sums, const Tensor& rows);
};

}  // namespace anvil
