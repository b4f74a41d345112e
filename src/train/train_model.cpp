// TrainModel: the parameter layout, initialisation, activation buffers, and the forward
// and backward passes around the blocks of transformer_block.cpp.
#include "anvil/train/train_model.h"

#include <cmath>
#include <cstring>
#include <array>
#include <numbers>

#include "anvil/core/error.h"
#include "anvil/core/rng.h"
#include "anvil/ops/copy.h"
#include "anvil/ops/cross_entropy.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/embedding.h"
#include "transformer_block.h"

namespace anvil::train {

using detail::BackwardScratch;
using detail::BlockActivations;
using detail::BlockParams;
using detail::Dims;

namespace {

bool is_gpt2(const model::ModelConfig& config) { return config.architecture == model::Architecture::Gpt2; }

void add_llama_block(ParamTable& t, const model::ModelConfig& c, const std::string& p, double std,
                     double residual_std) {
  const int64_t q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  const int64_t w = c.hidden_size, f = c.intermediate_size;
  t.add(p + "input_layernorm.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
  t.add(p + "self_attn.q_proj.weight", {q_dim, w}, ParamRole::Matrix, std);
  t.add(p + "self_attn.k_proj.weight", {kv_dim, w}, ParamRole::Matrix, std);
  t.add(p + "self_attn.v_proj.weight", {kv_dim, w}, ParamRole::Matrix, std);
  t.add(p + "self_attn.o_proj.weight", {w, q_dim}, ParamRole::Matrix, residual_std);
  t.add(p + "post_attention_layernorm.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
  t.add(p + "mlp.gate_proj.weight", {f, w}, ParamRole::Matrix, std);
  t.add(p + "mlp.up_proj.weight", {f, w}, ParamRole::Matrix, std);
  t.add(p + "mlp.down_proj.weight", {w, f}, ParamRole::Matrix, residual_std);
}

void add_gpt2_block(ParamTable& t, const model::ModelConfig& c, const std::string& p, double std, double residual_std) {
  const int64_t w = c.hidden_size, f = c.intermediate_size;
  t.add(p + "ln_1.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
  t.add(p + "ln_1.bias", {w}, ParamRole::Bias, 0.0);
  for (const char* name : {"q_proj", "k_proj", "v_proj"}) {
    t.add(p + "attn." + name + ".weight", {w, w}, ParamRole::Matrix, std);
    t.add(p + "attn." + name + ".bias", {w}, ParamRole::Bias, 0.0);
  }
  t.add(p + "attn.c_proj.weight", {w, w}, ParamRole::Matrix, residual_std);
  t.add(p + "attn.c_proj.bias", {w}, ParamRole::Bias, 0.0);
  t.add(p + "ln_2.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
  t.add(p + "ln_2.bias", {w}, ParamRole::Bias, 0.0);
  t.add(p + "mlp.c_fc.weight", {f, w}, ParamRole::Matrix, std);
  t.add(p + "mlp.c_fc.bias", {f}, ParamRole::Bias, 0.0);
  t.add(p + "mlp.c_proj.weight", {w, f}, ParamRole::Matrix, residual_std);
  t.add(p + "mlp.c_proj.bias", {w}, ParamRole::Bias, 0.0);
}

std::string block_prefix(const model::ModelConfig& config, int64_t layer) {
  return (is_gpt2(config) ? "h." : "model.layers.") + std::to_string(layer) + ".";
}

BlockParams block_views(const ParamTable& t, const Tensor& buffer, const model::ModelConfig& config, int64_t layer) {
  const std::string p = block_prefix(config, layer);
  auto v = [&](const std::string& name) { return t.view(buffer, p + name); };
  BlockParams b;
  if (is_gpt2(config)) {
    b.norm1 = v("ln_1.weight");
    b.norm1_bias = v("ln_1.bias");
    b.wq = v("attn.q_proj.weight");
    b.bq = v("attn.q_proj.bias");
    b.wk = v("attn.k_proj.weight");
    b.bk = v("attn.k_proj.bias");
    b.wv = v("attn.v_proj.weight");
    b.bv = v("attn.v_proj.bias");
    b.wo = v("attn.c_proj.weight");
    b.bo = v("attn.c_proj.bias");
    b.norm2 = v("ln_2.weight");
    b.norm2_bias = v("ln_2.bias");
    b.w_up = v("mlp.c_fc.weight");
    b.b_up = v("mlp.c_fc.bias");
    b.w_down = v("mlp.c_proj.weight");
    b.b_down = v("mlp.c_proj.bias");
  } else {
    b.norm1 = v("input_layernorm.weight");
    b.wq = v("self_attn.q_proj.weight");
    b.wk = v("self_attn.k_proj.weight");
    b.wv = v("self_attn.v_proj.weight");
    b.wo = v("self_attn.o_proj.weight");
    b.norm2 = v("post_attention_layernorm.weight");
    b.w_gate = v("mlp.gate_proj.weight");
    b.w_up = v("mlp.up_proj.weight");
    b.w_down = v("mlp.down_proj.weight");
  }
  return b;
}

// The weights the blocks compute with: the matrices, and the biases added to bf16 GEMM
// outputs (q, k, v, MLP up; rounded to bf16 as under torch.autocast) from `compute` (the bf16
// copy); norm gains and the biases added to the f32 residual (bo, b_down) from `master` (f32).
BlockParams mixed_block_views(const BlockParams& master, const BlockParams& compute) {
  BlockParams b = master;
  b.bq = compute.bq;
  b.bk = compute.bk;
  b.bv = compute.bv;
  b.b_up = compute.b_up;
  b.wq = compute.wq;
  b.wk = compute.wk;
  b.wv = compute.wv;
  b.wo = compute.wo;
  b.w_gate = compute.w_gate;
  b.w_up = compute.w_up;
  b.w_down = compute.w_down;
  return b;
}

// Views of the parameters outside the blocks.
struct TopParams {
  Tensor token_embedding, position_embedding, final_norm, final_norm_bias, head;
};

TopParams top_views(const ParamTable& t, const Tensor& buffer, const model::ModelConfig& config) {
  TopParams top;
  if (is_gpt2(config)) {
    top.token_embedding = t.view(buffer, "wte.weight");
    top.position_embedding = t.view(buffer, "wpe.weight");
    top.final_norm = t.view(buffer, "ln_f.weight");
    top.final_norm_bias = t.view(buffer, "ln_f.bias");
  } else {
    top.token_embedding = t.view(buffer, "model.embed_tokens.weight");
    top.final_norm = t.view(buffer, "model.norm.weight");
  }
  top.head = config.tied_embeddings ? top.token_embedding : t.view(buffer, "lm_head.weight");
  return top;
}

// Standard normal number `index` of Philox stream `stream` (Box-Muller on two 32-bit words).
double philox_normal(const Philox& philox, uint64_t index) {
  const std::array<uint32_t, 4> words = philox.block(index / 2);
  const size_t first = 2 * static_cast<size_t>(index % 2);
  const double u1 = (static_cast<double>(words[first]) + 0.5) * 0x1p-32;
  const double u2 = (static_cast<double>(words[first + 1]) + 0.5) * 0x1p-32;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

ParamTable make_param_table(const model::ModelConfig& config, double init_std) {
  ANVIL_CHECK(config.architecture == model::Architecture::Gpt2 || config.architecture == model::Architecture::Llama,
              "train model: architecture ", model::architecture_name(config.architecture),
              " is not trainable (gpt2, llama)");
  config.validate();
  const double residual_std = init_std / std::sqrt(2.0 * static_cast<double>(config.num_layers));
  const int64_t v = config.vocab_size, w = config.hidden_size;
  ParamTable t;
  if (is_gpt2(config)) {
    t.add("wte.weight", {v, w}, ParamRole::Embedding, init_std);
    t.add("wpe.weight", {config.max_position, w}, ParamRole::Embedding, init_std);
  } else {
    t.add("model.embed_tokens.weight", {v, w}, ParamRole::Embedding, init_std);
  }
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    if (is_gpt2(config)) {
      add_gpt2_block(t, config, block_prefix(config, layer), init_std, residual_std);
    } else {
      add_llama_block(t, config, block_prefix(config, layer), init_std, residual_std);
    }
  }
  if (is_gpt2(config)) {
    t.add("ln_f.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
    t.add("ln_f.bias", {w}, ParamRole::Bias, 0.0);
  } else {
    t.add("model.norm.weight", {w}, ParamRole::Norm, 0.0, 1.0F);
  }
  if (!config.tied_embeddings) t.add("lm_head.weight", {v, w}, ParamRole::Head, init_std);
  return t;
}

struct TrainModel::Impl {
  Ctx& ctx;
  model::ModelConfig config;
  TrainModelOptions options;
  ParamTable table;
  Tensor params, grads;  // (P) f32
  std::vector<BlockParams> block_params, block_grads;
  TopParams top_params, top_grads;
  // bf16: the (P) bf16 copy of params and the views forward uses (matrices from the copy);
  // f32: compute_params is undefined and compute_blocks/compute_head alias the f32 views.
  Tensor compute_params;
  std::vector<BlockParams> compute_blocks;
  Tensor compute_head;
  bool compute_params_stale = true;

  // Activations for the current (B, T).
  Dims dims;
  Tensor ids, positions, targets;      // (N) i32, on the device
  Tensor host_targets, host_losses;    // (N): the loss is averaged on the host
  std::vector<Tensor> residuals;       // L + 1 of (N, C): each block's input, then the last output
  std::vector<BlockActivations> acts;  // L, or 1 reused by every block when recomputing
  Tensor final_normed, final_mean, final_rstd, logits, losses;  // (N, C), (N), (N), (N, V), (N)
  Tensor dres, dlogits, dlosses, recompute_out;                 // backward buffers
  BackwardScratch scratch;
  int64_t valid_targets = 0;
  bool has_forward = false;

  Impl(Ctx& c, const model::ModelConfig& m, const TrainModelOptions& o)
      : ctx(c), config(m), options(o), table(make_param_table(m, o.init_std)) {
    params = ctx.zeros({table.total()}, DType::F32, options.device);
    grads = ctx.zeros({table.total()}, DType::F32, options.device);
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
      block_params.push_back(block_views(table, params, config, layer));
      block_grads.push_back(block_views(table, grads, config, layer));
    }
    top_params = top_views(table, params, config);
    top_grads = top_views(table, grads, config);
    ANVIL_CHECK(options.precision == DType::F32 || options.precision == DType::BF16, "train model: precision ",
                dtype_name(options.precision), " is not supported (f32, bf16)");
    compute_blocks = block_params;
    compute_head = top_params.head;
    if (options.precision != DType::F32) {
      compute_params = ctx.empty({table.total()}, options.precision, options.device);
      for (int64_t layer = 0; layer < config.num_layers; ++layer) {
        const auto l = static_cast<size_t>(layer);
        compute_blocks[l] = mixed_block_views(block_params[l], block_views(table, compute_params, config, layer));
      }
      compute_head = top_views(table, compute_params, config).head;
    }
  }

  void allocate(int64_t batch, int64_t seq);
  [[nodiscard]] Tensor f32(const Shape& shape) { return ctx.empty(shape, DType::F32, options.device); }
  [[nodiscard]] Tensor low(const Shape& shape) { return ctx.empty(shape, options.precision, options.device); }
  // One cast of the whole flat buffer into the bf16 copy when params may have changed.
  void refresh_compute_params() {
    if (!compute_params.defined() || !compute_params_stale) return;
    copy(ctx, compute_params, params);
    compute_params_stale = false;
  }
  // `host` (on the host) copied into `device_tensor` (on options.device), or shared on the CPU.
  void upload(Tensor& device_tensor, const Tensor& host) {
    if (options.device.is_cpu()) {
      std::memcpy(device_tensor.raw_data(), host.raw_data(), static_cast<size_t>(host.nbytes()));
    } else {
      ctx.backend(options.device).copy(device_tensor, host);
    }
  }
  BlockActivations& acts_of(int64_t layer) { return acts[options.recompute ? 0 : static_cast<size_t>(layer)]; }
  void embed();
  // valid_targets, and dlosses = 1 / valid_targets for the fused loss + gradient.
  void count_targets(bool with_gradient);
  void head_and_loss(bool with_gradient);
};

void TrainModel::Impl::allocate(int64_t batch, int64_t seq) {
  if (!residuals.empty() && dims.batch == batch && dims.seq == seq) return;
  dims = Dims{batch,
              seq,
              config.hidden_size,
              config.num_heads,
              config.num_kv_heads,
              config.head_dim,
              config.intermediate_size,
              config.vocab_size};
  const int64_t n = dims.rows();
  const bool gpt2 = is_gpt2(config);
  residuals.clear();
  for (int64_t layer = 0; layer <= config.num_layers; ++layer) residuals.push_back(f32({n, dims.width}));
  acts.clear();
  const int64_t sets = options.recompute ? 1 : config.num_layers;
  for (int64_t i = 0; i < sets; ++i) {
    acts.push_back(detail::make_block_activations(ctx, options.device, dims, gpt2, options.precision));
  }
  final_normed = low({n, dims.width});
  final_mean = gpt2 ? f32({n}) : Tensor();
  final_rstd = f32({n});
  logits = low({n, dims.vocab});  // bf16 storage in bf16; cross-entropy computes in f32
  losses = f32({n});
  dres = f32({n, dims.width});
  dlogits = low({n, dims.vocab});
  dlosses = f32({n});
  recompute_out = options.recompute ? f32({n, dims.width}) : Tensor();
  scratch = detail::make_backward_scratch(ctx, options.device, dims, gpt2, options.precision);
  std::vector<int32_t> position_values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) position_values[static_cast<size_t>(i)] = static_cast<int32_t>(i % seq);
  positions = ctx.empty({n}, DType::I32, options.device);
  upload(positions, Tensor::from_i32({n}, position_values));
  ids = ctx.empty({n}, DType::I32, options.device);
  targets = ctx.empty({n}, DType::I32, options.device);
  host_targets = Tensor::empty({n}, DType::I32);
  host_losses = Tensor::empty({n}, DType::F32);
}

void TrainModel::Impl::embed() {
  Tensor& x0 = residuals[0];
  embedding(ctx, x0, top_params.token_embedding, ids);
  if (config.learned_positions) {
    Tensor rows = x0.view({dims.batch, dims.seq, dims.width});
    add(ctx, rows, rows, top_params.position_embedding.slice(0, 0, dims.seq));
  }
}

void TrainModel::Impl::head_and_loss(bool with_gradient) {
  detail::norm_forward(ctx, config, final_normed, final_mean, final_rstd, residuals.back(), top_params.final_norm,
                       top_params.final_norm_bias);
  detail::linear_forward(ctx, logits, final_normed, compute_head, Tensor());
  if (!with_gradient) {
    cross_entropy(ctx, losses, logits, targets);
    return;
  }
  // The loss and d loss / d logits (for loss scale 1; backward rescales) in one pass.
  cross_entropy_fused(ctx, losses, dlogits, dlosses, logits, targets);
}

void TrainModel::Impl::count_targets(bool with_gradient) {
  const int32_t* target_values = host_targets.data<const int32_t>();
  valid_targets = 0;
  for (int64_t i = 0; i < dims.rows(); ++i) valid_targets += target_values[i] >= 0 ? 1 : 0;
  if (!with_gradient) return;
  const float weight = valid_targets > 0 ? 1.0F / static_cast<float>(valid_targets) : 0.0F;
  Tensor host_dlosses = options.device.is_cpu() ? dlosses : Tensor::empty(dlosses.shape(), DType::F32);
  float* values = host_dlosses.data<float>();
  for (int64_t i = 0; i < dims.rows(); ++i) values[i] = weight;
  if (!options.device.is_cpu()) upload(dlosses, host_dlosses);
}

TrainModel::TrainModel(Ctx& ctx, const model::ModelConfig& config, const TrainModelOptions& options)
    : impl_(std::make_unique<Impl>(ctx, config, options)) {}
TrainModel::~TrainModel() = default;

const model::ModelConfig& TrainModel::config() const { return impl_->config; }
const TrainModelOptions& TrainModel::options() const { return impl_->options; }
const ParamTable& TrainModel::table() const { return impl_->table; }
Tensor& TrainModel::params() {
  impl_->compute_params_stale = true;
  return impl_->params;
}
Tensor& TrainModel::low_params() { return impl_->compute_params; }
void TrainModel::low_params_refreshed() { impl_->compute_params_stale = false; }
Tensor& TrainModel::grads() { return impl_->grads; }
int64_t TrainModel::num_params() const { return impl_->table.total(); }
Tensor TrainModel::param(const std::string& name) const {
  const Tensor view = impl_->table.view(impl_->params, name);
  return view.device().is_cpu() ? view : impl_->ctx.to_device(view, Device::cpu());
}
Tensor TrainModel::grad(const std::string& name) const {
  const Tensor view = impl_->table.view(impl_->grads, name);
  return view.device().is_cpu() ? view : impl_->ctx.to_device(view, Device::cpu());
}
const Tensor& TrainModel::logits() const { return impl_->logits; }

void TrainModel::init_weights(uint64_t seed) {
  const std::vector<ParamEntry>& entries = impl_->table.entries();
  Tensor host = impl_->options.device.is_cpu() ? impl_->params : Tensor::empty(impl_->params.shape(), DType::F32);
  float* data = host.data<float>();
  for (size_t e = 0; e < entries.size(); ++e) {
    const ParamEntry& entry = entries[e];
    float* out = data + entry.offset;
    const Philox philox(seed, e);  // one stream per tensor: adding a layer keeps the others' values
    for (int64_t i = 0; i < entry.numel(); ++i) {
      out[i] = entry.init_std > 0.0
                   ? static_cast<float>(entry.init_std * philox_normal(philox, static_cast<uint64_t>(i)))
                   : entry.init_constant;
    }
  }
  if (!impl_->options.device.is_cpu()) impl_->upload(impl_->params, host);
  impl_->compute_params_stale = true;
}

void TrainModel::reserve(int64_t batch, int64_t seq) {
  ANVIL_CHECK(batch > 0 && seq > 0, "reserve: batch and seq must be > 0");
  impl_->allocate(batch, seq);
  impl_->has_forward = false;
}

void TrainModel::zero_grad() { impl_->ctx.backend(impl_->options.device).fill_zero(impl_->grads); }

double TrainModel::forward_train(const Tensor& tokens, const Tensor& targets, bool with_gradient) {
  Impl& m = *impl_;
  ANVIL_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::I32 && tokens.is_contiguous() && tokens.device().is_cpu() &&
                  targets.device().is_cpu(),
              "forward_train: tokens must be a contiguous host (B, T) i32 tensor, got ", tokens.to_string(0));
  ANVIL_CHECK(targets.shape() == tokens.shape() && targets.dtype() == DType::I32 && targets.is_contiguous(),
              "forward_train: targets ", shape_string(targets.shape()), " must be i32 like tokens ",
              shape_string(tokens.shape()));
  ANVIL_CHECK(!m.config.learned_positions || tokens.size(1) <= m.config.max_position, "forward_train: sequence of ",
              tokens.size(1), " tokens is longer than the ", m.config.max_position, " learned positions");
  m.allocate(tokens.size(0), tokens.size(1));
  m.has_forward = false;
  m.upload(m.ids, tokens.view({m.dims.rows()}));
  std::memcpy(m.host_targets.raw_data(), targets.raw_data(), static_cast<size_t>(targets.nbytes()));
  m.upload(m.targets, m.host_targets);
  m.refresh_compute_params();
  m.count_targets(with_gradient);
  m.embed();
  for (int64_t layer = 0; layer < m.config.num_layers; ++layer) {
    const auto l = static_cast<size_t>(layer);
    detail::block_forward(m.ctx, m.config, m.dims, m.compute_blocks[l], m.residuals[l], m.positions, m.acts_of(layer),
                          m.residuals[l + 1]);
  }
  m.head_and_loss(with_gradient);
  // Mean over the targets that count, summed in a fixed order (deterministic).
  if (m.options.device.is_cpu()) {
    m.host_losses = m.losses;
  } else {
    m.ctx.backend(m.options.device).copy(m.host_losses, m.losses);  // waits for the device
  }
  const int32_t* target_values = m.host_targets.data<const int32_t>();
  const float* loss_values = m.host_losses.data<const float>();
  double total = 0.0;
  for (int64_t i = 0; i < m.dims.rows(); ++i) {
    if (target_values[i] >= 0) total += loss_values[i];
  }
  m.has_forward = with_gradient;
  return m.valid_targets > 0 ? total / static_cast<double>(m.valid_targets) : 0.0;
}

void TrainModel::backward(float loss_scale) {
  Impl& m = *impl_;
  ANVIL_CHECK(m.has_forward, "backward: call forward_train first");
  // forward_train left dlogits for loss scale 1.
  if (loss_scale != 1.0F) scale(m.ctx, m.dlogits, m.dlogits, loss_scale);
  Tensor none;
  detail::linear_backward(m.ctx, m.scratch.dn, m.top_grads.head, none, m.dlogits, m.final_normed, m.compute_head,
                          false);
  detail::norm_backward(m.ctx, m.config, m.dres, m.top_grads.final_norm, m.top_grads.final_norm_bias, m.scratch.dn,
                        m.residuals.back(), m.top_params.final_norm, m.final_mean, m.final_rstd);
  detail::residual_grad_ready(m.ctx, m.dres, m.scratch);
  const bool folds = detail::folds_residual_biases(m.config);
  for (int64_t layer = m.config.num_layers - 1; layer >= 0; --layer) {
    const auto l = static_cast<size_t>(layer);
    Tensor below_down_bias = folds && layer > 0 ? m.block_grads[l - 1].b_down : Tensor();
    if (m.options.recompute) {
      detail::block_forward(m.ctx, m.config, m.dims, m.compute_blocks[l], m.residuals[l], m.positions, m.acts_of(layer),
                            m.recompute_out);
    }
    detail::block_backward(m.ctx, m.config, m.dims, m.compute_blocks[l], m.block_grads[l], m.residuals[l], m.positions,
                           m.acts_of(layer), m.dres, m.scratch, below_down_bias,
                           folds && layer + 1 < m.config.num_layers);
  }
  embedding_backward(m.ctx, m.top_grads.token_embedding, m.dres, m.ids);
  if (m.config.learned_positions) {
    Tensor rows = m.dres.view({m.dims.batch, m.dims.seq, m.dims.width});
    add_backward(m.ctx, none, m.scratch.position_sum, rows);
    Tensor used = m.top_grads.position_embedding.slice(0, 0, m.dims.seq);
    add(m.ctx, used, used, m.scratch.position_sum);
  }
}

ActivationMemory TrainModel::activation_memory() const {
  const Impl& m = *impl_;
  ActivationMemory memory;
  auto bytes = [](const Tensor& t) { return t.defined() ? t.nbytes() : 0; };
  for (const Tensor& r : m.residuals) memory.saved_bytes += bytes(r);
  for (const BlockActivations& a : m.acts) {
    for (const Tensor* t : {&a.n1, &a.mean1, &a.rstd1, &a.q, &a.k, &a.v, &a.att, &a.lse, &a.x_mid, &a.n2, &a.mean2,
                            &a.rstd2, &a.gate, &a.up, &a.act}) {
      memory.saved_bytes += bytes(*t);
    }
  }
  for (const Tensor* t : {&m.final_normed, &m.final_mean, &m.final_rstd, &m.logits, &m.losses}) {
    memory.saved_bytes += bytes(*t);
  }
  const BackwardScratch& s = m.scratch;
  for (const Tensor* t : {&s.dx, &s.dn, &s.dres_low, &s.datt, &s.dq, &s.dk, &s.dv, &s.dgate, &s.dup, &s.dact,
                          &s.position_sum, &m.dres, &m.dlogits, &m.dlosses, &m.recompute_out}) {
    memory.scratch_bytes += bytes(*t);
  }
  return memory;
}

double TrainModel::flops_per_token(int64_t seq_len) const {
  const model::ModelConfig& c = impl_->config;
  double matmul_weights = static_cast<double>(c.vocab_size * c.hidden_size);  // the head
  for (const ParamEntry& entry : impl_->table.entries()) {
    if (entry.role == ParamRole::Matrix) matmul_weights += static_cast<double>(entry.numel());
  }
  const double attention = 12.0 * static_cast<double>(c.num_layers * seq_len * c.num_heads * c.head_dim);
  return 6.0 * matmul_weights + attention;
}

}  // namespace anvil::train
