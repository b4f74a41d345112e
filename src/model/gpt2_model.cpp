// GPT-2's inference forward pass over a paged KV cache.
#include "anvil/core/error.h"
#include "anvil/ops/activations.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/layer_norm.h"
#include "architectures.h"
#include "layers.h"

namespace anvil::model {

namespace {

class Gpt2Model final : public CausalLM {
 public:
  Gpt2Model(ModelConfig config, ModelWeights weights, Device device)
      : config_(std::move(config)), weights_(std::move(weights)), device_(device) {}

  [[nodiscard]] const ModelConfig& config() const override { return config_; }
  [[nodiscard]] Device device() const override { return device_; }

  Tensor forward(Ctx& ctx, const Batch& batch, PagedKvCache& cache) override {
    ANVIL_CHECK(cache.device() == device_, "forward: the kv cache is on ", device_string(cache.device()),
                " but the model is on ", device_string(device_));
    const StepInputs step = make_step_inputs(ctx, batch, cache, config_);
    Tensor x = gather_rows(ctx, weights_.token_embedding, batch.tokens, device_);  // (N, C) residual stream
    if (step.tokens > 0) {
      add(ctx, x, x, gather_rows(ctx, weights_.position_embedding, batch.positions, device_));
      for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
        attention_block(ctx, layer, x, step, cache);
        mlp_block(ctx, weights_.layers[static_cast<size_t>(layer)], x);
      }
    }
    return output_logits(ctx, x, batch, weights_, config_);
  }

 private:
  // x += W_o attention(W_q h + b_q, W_k h + b_k, W_v h + b_v) + b_o, h = layer_norm(x).
  void attention_block(Ctx& ctx, int64_t layer, Tensor& x, const StepInputs& step, PagedKvCache& cache) const {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
    const int64_t n = step.tokens;
    const int64_t heads = config_.num_heads;
    const int64_t d = config_.head_dim;
    const Tensor h = norm(ctx, x, w.attn_norm, w.attn_norm_bias);
    const Tensor q = project(ctx, h, w.wq, w.bq).view({n, heads, d});
    const Tensor k = project(ctx, h, w.wk, w.bk).view({n, heads, d});
    const Tensor v = project(ctx, h, w.wv, w.bv).view({n, heads, d});
    const Tensor attended = cached_attention(ctx, q, k, v, cache, layer, step, config_);
    add(ctx, x, x, project(ctx, attended.view({n, heads * d}), w.wo, w.bo));
  }

  // x += W_down gelu(W_up h + b_up) + b_down, h = layer_norm(x).
  void mlp_block(Ctx& ctx, const LayerWeights& w, Tensor& x) const {
    const Tensor h = norm(ctx, x, w.ffn_norm, w.ffn_norm_bias);
    const Tensor up = project(ctx, h, w.w_up, w.b_up);
    Tensor hidden = activation(ctx, up.shape(), device_);
    gelu(ctx, hidden, up);
    add(ctx, x, x, project(ctx, hidden, w.w_down, w.b_down));
  }

  [[nodiscard]] Tensor norm(Ctx& ctx, const Tensor& x, const Tensor& weight, const Tensor& bias) const {
    Tensor out = activation(ctx, x.shape(), device_);
    Tensor none;
    layer_norm(ctx, out, none, none, x, weight, bias, config_.norm_eps);
    return out;
  }

  ModelConfig config_;
  ModelWeights weights_;
  Device device_;
};

}  // namespace

std::unique_ptr<CausalLM> make_gpt2_model(ModelConfig config, ModelWeights weights, Device device) {
  return std::make_unique<Gpt2Model>(std::move(config), std::move(weights), device);
}

}  // namespace anvil::model
