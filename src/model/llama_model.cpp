// The Llama family's inference forward pass over a paged KV cache.
#include "anvil/core/error.h"
#include "anvil/core/quant.h"
#include "anvil/ops/activations.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/paged_attention.h"
#include "anvil/ops/quantized_matmul.h"
#include "anvil/ops/rms_norm.h"
#include "anvil/ops/rope.h"
#include "architectures.h"
#include "decode_graphs.h"
#include "layers.h"

namespace anvil::model {

namespace {

class LlamaModel final : public CausalLM {
 public:
  // From this many rows the GPU runs f16/bf16-weight projections as tensor-core GEMMs
  // (CudaBackend::kTensorCoreMinRows).
  static constexpr int64_t kHalfInputMinRows = 16;

  LlamaModel(ModelConfig config, ModelWeights weights, Device device)
      : config_(std::move(config)),
        weights_(std::move(weights)),
        device_(device),
        graphs_enabled_(!device.is_cpu() && DecodeGraphs::enabled_by_environment()),
        projection_dtype_(shared_half_dtype(weights_, device)) {}

  [[nodiscard]] const ModelConfig& config() const override { return config_; }
  [[nodiscard]] Device device() const override { return device_; }
  void set_device_graphs(bool enabled) override { graphs_enabled_ = enabled && !device_.is_cpu(); }
  [[nodiscard]] DeviceGraphStats device_graph_stats() const override {
    return graphs_ ? graphs_->stats() : DeviceGraphStats{};
  }

  Tensor forward(Ctx& ctx, const Batch& batch, PagedKvCache& cache) override {
    ANVIL_CHECK(cache.device() == device_, "forward: the kv cache is on ", device_string(cache.device()),
                " but the model is on ", device_string(device_));
    if (uses_graphs(ctx, batch)) return graphs_->forward(ctx, batch, cache, weights_.token_embedding);
    const StepInputs step = make_step_inputs(ctx, batch, cache, config_);
    Tensor x = gather_rows(ctx, weights_.token_embedding, batch.tokens, device_);  // (N, C) residual stream
    if (step.tokens > 0) run_layers(ctx, x, step, cache);
    return output_logits(ctx, x, batch, weights_, config_);
  }

 private:
  // Whether this step replays a decode graph (made on first use).
  bool uses_graphs(Ctx& ctx, const Batch& batch) {
    if (!graphs_enabled_ || !ctx.backend(device_).supports_graphs()) return false;
    if (!graphs_) {
      graphs_ = std::make_unique<DecodeGraphs>(ctx, device_, config_,
                                               [this](Ctx& c, const StepInputs& step, Tensor& x, PagedKvCache& cache) {
                                                 run_layers(c, x, step, cache);
                                                 return head_logits(c, x, weights_, config_);
                                               });
    }
    return graphs_->accepts(batch);
  }

  // The residual stream x (N, C) through every layer. Each residual add is fused with the
  // norm that follows it (add_rms_norm); the last one is a plain add (the head norms later).
  void run_layers(Ctx& ctx, Tensor& x, const StepInputs& step, PagedKvCache& cache) const {
    const int64_t n = step.tokens;
    Tensor h = norm(ctx, x, weights_.layers.front().attn_norm, attention_input_dtype(n, weights_.layers.front()));
    for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
      const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
      tap("attn_norm", layer, h);
      const Tensor attn_out = attention(ctx, layer, h, step, cache);
      tap("attn_out", layer, attn_out);
      h = add_norm(ctx, x, attn_out, w.ffn_norm, mlp_input_dtype(n, w));
      tap("ffn_inp", layer, x);
      tap("ffn_norm", layer, h);
      const Tensor out = mlp(ctx, layer, w, h);
      tap("ffn_out", layer, out);
      if (layer + 1 < config_.num_layers) {
        const LayerWeights& next = weights_.layers[static_cast<size_t>(layer) + 1];
        h = add_norm(ctx, x, out, next.attn_norm, attention_input_dtype(n, next));
      } else {
        add(ctx, x, x, out);
      }
      tap("l_out", layer, x);
    }
  }

  // W_o attention(rope(W_q h), rope(W_k h), W_v h) of the normed stream h (N, C).
  Tensor attention(Ctx& ctx, int64_t layer, const Tensor& h, const StepInputs& step, PagedKvCache& cache) const {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
    const int64_t n = step.tokens;
    const int64_t d = config_.head_dim;
    Tensor q;
    Tensor k;
    Tensor v;
    Tensor qkv;                        // q, k and v heads side by side: one rotation and cache
    if (n == 1 && w.wqkv.defined()) {  // write; one GEMV, a single row split into contiguous views
      qkv = project(ctx, h, w.wqkv, w.bqkv);
      q = columns(qkv, 0, config_.num_heads * d).view({n, config_.num_heads, d});
      k = columns(qkv, config_.num_heads * d, config_.num_kv_heads * d).view({n, config_.num_kv_heads, d});
      v = columns(qkv, (config_.num_heads + config_.num_kv_heads) * d, config_.num_kv_heads * d)
              .view({n, config_.num_kv_heads, d});
    } else {
      q = project(ctx, h, w.wq, w.bq).view({n, config_.num_heads, d});
      k = project(ctx, h, w.wk, w.bk).view({n, config_.num_kv_heads, d});
      v = project(ctx, h, w.wv, w.bv).view({n, config_.num_kv_heads, d});
    }
    tap("Qcur", layer, q);
    tap("Kcur", layer, k);
    tap("Vcur", layer, v);
    if (config_.qk_norm) {
      q = norm(ctx, q, w.q_norm);
      k = norm(ctx, k, w.k_norm);
      qkv = Tensor();
    }
    if (qkv.defined()) {  // rotates q and k in place and writes k and v to the cache
      Tensor heads = qkv.view({n, config_.num_heads + 2 * config_.num_kv_heads, d});
      rope_kv_cache_write(ctx, heads, cache.keys(layer), cache.values(layer), step.positions, step.slots, config_.rope,
                          /*slots_checked=*/true);
    } else {
      rope(ctx, q, q, step.positions, config_.rope);
      rope(ctx, k, k, step.positions, config_.rope);
    }
    tap("Qcur_rope", layer, q);
    tap("Kcur_rope", layer, k);
    // The o projection's activations from the attention kernel itself where it can (blocks
    // of 32 within a head: Q8Act for f32 queries).
    const bool attention_codes =
        activation_input_dtype(n, {&w.wo}) == DType::Q8Act && q.dtype() == DType::F32 && d % kQuantBlock == 0;
    const Tensor attended = cached_attention(ctx, q, k, v, cache, layer, step, config_, half_input_dtype(n, w.wo),
                                             /*kv_written=*/qkv.defined(), attention_codes ? DType::Q8Act : DType::F32);
    tap("kqv_out", layer, attended);
    return project(ctx, attended.view({n, config_.num_heads * d}), w.wo, w.bo);
  }

  // W_down (silu(W_gate h) * W_up h) of the normed stream h (N, C).
  Tensor mlp(Ctx& ctx, int64_t layer, const LayerWeights& w, const Tensor& h) const {
    const int64_t n = h.size(0);
    const int64_t f = config_.intermediate_size;
    Tensor gate;
    Tensor up;
    if (n == 1 && w.w_gate_up.defined()) {
      const Tensor gate_up = project(ctx, h, w.w_gate_up, Tensor());
      gate = columns(gate_up, 0, f);
      up = columns(gate_up, f, f);
    } else {
      gate = project(ctx, h, w.w_gate, Tensor());
      up = project(ctx, h, w.w_up, Tensor());
    }
    tap("ffn_gate", layer, gate);
    tap("ffn_up", layer, up);
    const DType codes = activation_input_dtype(n, {&w.w_down});
    Tensor hidden = ctx.empty(gate.shape(), codes != DType::F32 ? codes : half_input_dtype(n, w.w_down), device_);
    swiglu(ctx, hidden, gate, up);
    tap("ffn_swiglu", layer, hidden);
    return project(ctx, hidden, w.w_down, Tensor());
  }

  // x += delta, then RMSNorm of x with `weight` (one kernel on a GPU).
  [[nodiscard]] Tensor add_norm(Ctx& ctx, Tensor& x, const Tensor& delta, const Tensor& weight, DType dtype) const {
    Tensor out = ctx.empty(x.shape(), dtype, device_);
    add_rms_norm(ctx, out, x, delta, weight, config_.norm_eps);
    return out;
  }

  // The dtype of the normed stream h (N, C) the projections read: on a GPU, for prefill-sized
  // steps of f16/bf16 weights, the weights' (their GEMMs would round h to it anyway; made by
  // the norm, it saves a cast pass per GEMM); else f32.
  [[nodiscard]] DType normed_dtype(int64_t rows) const {
    return rows >= kHalfInputMinRows ? projection_dtype_ : DType::F32;
  }

  // The dtype in which an input of `rows` rows to a projection by `weight` may be made (by
  // the op before it, in place of f32): the normed stream's f16/bf16 when the weight has it
  // (its GEMM would round the input to it anyway: the same bits, one cast pass fewer).
  [[nodiscard]] DType half_input_dtype(int64_t rows, const Tensor& weight) const {
    const DType dtype = normed_dtype(rows);
    return weight.defined() && weight.dtype() == dtype ? dtype : DType::F32;
  }

  // The dtype in which the normed stream h (N, C) that layer `w`'s attention projects is made.
  [[nodiscard]] DType attention_input_dtype(int64_t rows, const LayerWeights& w) const {
    const DType codes = rows == 1 && w.wqkv.defined() ? activation_input_dtype(rows, {&w.wqkv})
                                                      : activation_input_dtype(rows, {&w.wq, &w.wk, &w.wv});
    return codes != DType::F32 ? codes : normed_dtype(rows);
  }

  // The same for the normed stream its MLP projects (gate and up).
  [[nodiscard]] DType mlp_input_dtype(int64_t rows, const LayerWeights& w) const {
    const DType codes = rows == 1 && w.w_gate_up.defined() ? activation_input_dtype(rows, {&w.w_gate_up})
                                                           : activation_input_dtype(rows, {&w.w_gate, &w.w_up});
    return codes != DType::F32 ? codes : normed_dtype(rows);
  }

  // On a GPU, for decode-sized steps (the GEMV kernels) whose projections all take one
  // activation dtype (quantized weights of one family): that dtype, so that the op making
  // their input (the norm, SwiGLU) quantises it in its own kernel, once, rather than each
  // quantized_matmul in a kernel of its own. Else (and while a tap watches the f32
  // intermediates) f32.
  [[nodiscard]] DType activation_input_dtype(int64_t rows, std::initializer_list<const Tensor*> weights) const {
    if (device_.is_cpu() || rows >= kHalfInputMinRows || tapping()) return DType::F32;
    std::optional<DType> shared;
    for (const Tensor* weight : weights) {
      if (!weight->defined()) return DType::F32;
      const std::optional<DType> codes = activation_dtype_for(weight->dtype());
      if (!codes || (shared && *shared != *codes)) return DType::F32;
      shared = codes;
    }
    return shared.value_or(DType::F32);
  }

  // f16/bf16 when on a GPU every Q, K, V, gate and up weight has that one dtype, else f32.
  [[nodiscard]] static DType shared_half_dtype(const ModelWeights& weights, Device device) {
    if (weights.layers.empty()) return DType::F32;
    const DType dtype = weights.layers.front().wq.dtype();
    if (device.is_cpu() || (dtype != DType::BF16 && dtype != DType::F16)) return DType::F32;
    for (const LayerWeights& w : weights.layers) {
      for (const Tensor* matrix : {&w.wq, &w.wk, &w.wv, &w.w_gate, &w.w_up}) {
        if (!matrix->defined() || matrix->dtype() != dtype) return DType::F32;
      }
    }
    return dtype;
  }

  // Columns [begin, begin + width) of a one-row matrix (1, T): a contiguous (1, width) view.
  [[nodiscard]] static Tensor columns(const Tensor& row, int64_t begin, int64_t width) {
    return Tensor(row.storage(), {1, width}, row.dtype(), row.offset_bytes() + begin * dtype_bytes_for(row.dtype(), 1));
  }

  // RMSNorm over the last dim of x (..., C) with weight (C).
  [[nodiscard]] Tensor norm(Ctx& ctx, const Tensor& x, const Tensor& weight, DType dtype = DType::F32) const {
    Tensor out = ctx.empty(x.shape(), dtype, device_);
    Tensor no_rstd;
    rms_norm(ctx, out, no_rstd, x, weight, config_.norm_eps);
    return out;
  }

  ModelConfig config_;
  ModelWeights weights_;
  Device device_;
  bool graphs_enabled_;
  DType projection_dtype_;  // what normed_dtype gives prefill-sized steps
  std::unique_ptr<DecodeGraphs> graphs_;
};

}  // namespace

std::unique_ptr<CausalLM> make_llama_model(ModelConfig config, ModelWeights weights, Device device) {
  return std::make_unique<LlamaModel>(std::move(config), std::move(weights), device);
}

}  // namespace anvil::model
