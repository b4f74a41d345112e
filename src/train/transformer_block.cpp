// Forward and backward of one transformer block (GPT-2 or Llama) on the CPU ops.
#include "transformer_block.h"

#include <algorithm>

#include "anvil/ops/activations.h"
#include "anvil/ops/attention.h"
#include "anvil/ops/copy.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/layer_norm.h"
#include "anvil/ops/matmul.h"
#include "anvil/ops/rms_norm.h"
#include "anvil/ops/rope.h"

namespace anvil::train::detail {

namespace {

bool is_gpt2(const model::ModelConfig& config) { return config.architecture == model::Architecture::Gpt2; }

// (N, H * D) rows as the (B, T, H, D) layout attention wants.
Tensor heads_view(const Tensor& rows, const Dims& d, int64_t heads) {
  return rows.view({d.batch, d.seq, heads, d.head_dim});
}

void attention_forward(Ctx& ctx, const model::ModelConfig& config, const Dims& d, const BlockParams& w,
                       const Tensor& positions, BlockActivations& a) {
  linear_forward(ctx, a.q, a.n1, w.wq, w.bq);
  linear_forward(ctx, a.k, a.n1, w.wk, w.bk);
  linear_forward(ctx, a.v, a.n1, w.wv, w.bv);
  if (!config.learned_positions) {
    Tensor q_heads = a.q.view({d.rows(), d.heads, d.head_dim});
    Tensor k_heads = a.k.view({d.rows(), d.kv_heads, d.head_dim});
    rope(ctx, q_heads, q_heads, positions, config.rope);
    rope(ctx, k_heads, k_heads, positions, config.rope);
  }
  Tensor out = heads_view(a.att, d, d.heads);
  attention(ctx, out, a.lse, heads_view(a.q, d, d.heads), heads_view(a.k, d, d.kv_heads),
            heads_view(a.v, d, d.kv_heads), AttentionParams{});
}

void mlp_forward(Ctx& ctx, const model::ModelConfig& config, const BlockParams& w, BlockActivations& a) {
  if (is_gpt2(config)) {
    linear_gelu(ctx, a.act, a.up, a.n2, w.w_up, w.b_up);  // CUDA: GELU in the GEMM's epilogue
  } else {
    linear_forward(ctx, a.gate, a.n2, w.w_gate, Tensor());
    linear_forward(ctx, a.up, a.n2, w.w_up, Tensor());
    swiglu(ctx, a.act, a.gate, a.up);
  }
}

// x_out = x_in + x @ weight^T + bias: one GEMM on the GPU (x_in as C, bias in the epilogue).
void residual_linear(Ctx& ctx, Tensor& x_out, const Tensor& x_in, const Tensor& x, const Tensor& weight,
                     const Tensor& bias) {
  linear(ctx, x_out, x, weight, bias, x_in);
}

// The residual gradient as the GEMMs' operand: dres itself in f32, its bf16 copy in bf16
// (the GEMM inputs share one dtype; the norm backward that last updated dres wrote it).
const Tensor& gemm_operand(const Tensor& dres, const BackwardScratch& s) {
  return s.dres_low.defined() ? s.dres_low : dres;
}

// dres += d norm / d x, with dres_low refreshed: one pass for LayerNorm, which also adds the
// column sums of the updated dres to dres_sums (defined only when folds_residual_biases).
void norm_backward_into_residual(Ctx& ctx, const model::ModelConfig& config, Tensor& dres, Tensor& dweight,
                                 Tensor& dbias, Tensor& dres_sums, const Tensor& dout, const Tensor& x,
                                 const Tensor& weight, const Tensor& mean, const Tensor& rstd, BackwardScratch& s) {
  if (config.norm == model::NormKind::LayerNorm) {
    layer_norm_backward_residual(ctx, dres, s.dres_low, dweight, dbias, dres_sums, dout, x, weight, mean, rstd);
    return;
  }
  rms_norm_backward(ctx, s.dx, dweight, dout, x, weight, rstd);
  add(ctx, dres, dres, s.dx);
  residual_grad_ready(ctx, dres, s);
}

// dres += d loss / d x_in through the MLP half (dres holds d loss / d x_out). b_down's
// gradient is left out when the block above added it (down_bias_folded).
void mlp_backward(Ctx& ctx, const model::ModelConfig& config, const BlockParams& w, BlockParams& g,
                  const BlockActivations& a, Tensor& dres, BackwardScratch& s, bool down_bias_folded) {
  Tensor none;
  Tensor& down_bias = down_bias_folded ? none : g.b_down;
  Tensor& mid_bias = folds_residual_biases(config) ? g.bo : none;
  const Tensor& dout = gemm_operand(dres, s);
  if (is_gpt2(config)) {
    // d pre-GELU straight from the down projection's input-gradient GEMM (CUDA: the DGELU
    // epilogue); the fc bias gradient from the fc weight-gradient GEMM (BGRADB).
    linear_gelu_input_grad(ctx, s.dup, none, dout, w.w_down, a.up);
    linear_weight_grad(ctx, g.w_down, down_bias, dout, a.act);
    linear_backward(ctx, s.dn, g.w_up, g.b_up, s.dup, a.n2, w.w_up, false);
  } else {
    linear_backward(ctx, s.dact, g.w_down, down_bias, dout, a.act, w.w_down, false);
    swiglu_backward(ctx, s.dgate, s.dup, s.dact, a.gate, a.up);
    linear_backward(ctx, s.dn, g.w_gate, none, s.dgate, a.n2, w.w_gate, false);
    linear_backward(ctx, s.dn, g.w_up, none, s.dup, a.n2, w.w_up, true);
  }
  norm_backward_into_residual(ctx, config, dres, g.norm2, g.norm2_bias, mid_bias, s.dn, a.x_mid, w.norm2, a.mean2,
                              a.rstd2, s);
}

// dres += d loss / d x_in through the attention half (dres holds d loss / d x_mid). bo's
// gradient came from the second norm when folds_residual_biases; the first norm then adds
// below_down_bias's.
void attention_backward_half(Ctx& ctx, const model::ModelConfig& config, const Dims& d, const BlockParams& w,
                             BlockParams& g, const Tensor& x_in, const Tensor& positions, const BlockActivations& a,
                             Tensor& dres, BackwardScratch& s, Tensor& below_down_bias) {
  Tensor none;
  const bool folds = folds_residual_biases(config);
  linear_backward(ctx, s.datt, g.wo, folds ? none : g.bo, gemm_operand(dres, s), a.att, w.wo, false);
  Tensor dq = heads_view(s.dq, d, d.heads), dk = heads_view(s.dk, d, d.kv_heads), dv = heads_view(s.dv, d, d.kv_heads);
  attention_backward(ctx, dq, dk, dv, heads_view(s.datt, d, d.heads), heads_view(a.q, d, d.heads),
                     heads_view(a.k, d, d.kv_heads), heads_view(a.v, d, d.kv_heads), heads_view(a.att, d, d.heads),
                     a.lse, AttentionParams{});
  if (!config.learned_positions) {
    Tensor dq_rows = s.dq.view({d.rows(), d.heads, d.head_dim});
    Tensor dk_rows = s.dk.view({d.rows(), d.kv_heads, d.head_dim});
    rope_backward(ctx, dq_rows, dq_rows, positions, config.rope);
    rope_backward(ctx, dk_rows, dk_rows, positions, config.rope);
  }
  linear_backward(ctx, s.dn, g.wq, g.bq, s.dq, a.n1, w.wq, false);
  linear_backward(ctx, s.dn, g.wk, g.bk, s.dk, a.n1, w.wk, true);
  linear_backward(ctx, s.dn, g.wv, g.bv, s.dv, a.n1, w.wv, true);
  norm_backward_into_residual(ctx, config, dres, g.norm1, g.norm1_bias, folds ? below_down_bias : none, s.dn, x_in,
                              w.norm1, a.mean1, a.rstd1, s);
}

}  // namespace

BlockActivations make_block_activations(Ctx& ctx, Device device, const Dims& d, bool gpt2, DType compute) {
  const auto f32 = [&](const Shape& shape) { return ctx.empty(shape, DType::F32, device); };
  const auto low = [&](const Shape& shape) { return ctx.empty(shape, compute, device); };
  const int64_t n = d.rows();
  BlockActivations a;
  a.n1 = low({n, d.width});
  a.rstd1 = f32({n});
  a.q = low({n, d.q_width()});
  a.k = low({n, d.kv_width()});
  a.v = low({n, d.kv_width()});
  a.att = low({n, d.q_width()});
  a.lse = f32({d.batch, d.heads, d.seq});
  a.x_mid = f32({n, d.width});
  a.n2 = low({n, d.width});
  a.rstd2 = f32({n});
  a.up = low({n, d.hidden});
  a.act = low({n, d.hidden});
  if (gpt2) {
    a.mean1 = f32({n});
    a.mean2 = f32({n});
  } else {
    a.gate = low({n, d.hidden});
  }
  return a;
}

BackwardScratch make_backward_scratch(Ctx& ctx, Device device, const Dims& d, bool gpt2, DType compute) {
  const auto f32 = [&](const Shape& shape) { return ctx.empty(shape, DType::F32, device); };
  const auto low = [&](const Shape& shape) { return ctx.empty(shape, compute, device); };
  const int64_t n = d.rows();
  BackwardScratch s;
  if (!gpt2) s.dx = f32({n, d.width});  // GPT-2: LayerNorm backward adds into dres directly
  s.dn = f32({n, d.width});
  if (compute != DType::F32) s.dres_low = low({n, d.width});
  s.datt = low({n, d.q_width()});
  s.dq = low({n, d.q_width()});
  s.dk = low({n, d.kv_width()});
  s.dv = low({n, d.kv_width()});
  s.dup = low({n, d.hidden});
  if (gpt2) {
    s.position_sum = f32({d.seq, d.width});
  } else {
    s.dact = low({n, d.hidden});
    s.dgate = low({n, d.hidden});
  }
  return s;
}

void linear_forward(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  linear(ctx, out, x, weight, bias);
}

void linear_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                     const Tensor& weight, bool accumulate_dx) {
  Tensor none;
  if (dx.defined()) matmul_backward(ctx, dx, none, dout, x, weight, false, true, accumulate_dx);
  linear_weight_grad(ctx, dweight, dbias, dout, x);  // CUDA: dbias from the GEMM's BGRADB epilogue
}

void residual_grad_ready(Ctx& ctx, const Tensor& dres, BackwardScratch& s) {
  if (s.dres_low.defined()) copy(ctx, s.dres_low, dres);
}

void norm_forward(Ctx& ctx, const model::ModelConfig& config, Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                  const Tensor& weight, const Tensor& bias) {
  if (config.norm == model::NormKind::LayerNorm) {
    layer_norm(ctx, out, mean, rstd, x, weight, bias, config.norm_eps);
  } else {
    rms_norm(ctx, out, rstd, x, weight, config.norm_eps);
  }
}

void norm_backward(Ctx& ctx, const model::ModelConfig& config, Tensor& dx, Tensor& dweight, Tensor& dbias,
                   const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  if (config.norm == model::NormKind::LayerNorm) {
    layer_norm_backward(ctx, dx, dweight, dbias, dout, x, weight, mean, rstd);
  } else {
    rms_norm_backward(ctx, dx, dweight, dout, x, weight, rstd);
  }
}

void block_forward(Ctx& ctx, const model::ModelConfig& config, const Dims& dims, const BlockParams& w,
                   const Tensor& x_in, const Tensor& positions, BlockActivations& a, Tensor& x_out) {
  norm_forward(ctx, config, a.n1, a.mean1, a.rstd1, x_in, w.norm1, w.norm1_bias);
  attention_forward(ctx, config, dims, w, positions, a);
  residual_linear(ctx, a.x_mid, x_in, a.att, w.wo, w.bo);
  norm_forward(ctx, config, a.n2, a.mean2, a.rstd2, a.x_mid, w.norm2, w.norm2_bias);
  mlp_forward(ctx, config, w, a);
  residual_linear(ctx, x_out, a.x_mid, a.act, w.w_down, w.b_down);
}

bool folds_residual_biases(const model::ModelConfig& config) { return config.norm == model::NormKind::LayerNorm; }

void block_backward(Ctx& ctx, const model::ModelConfig& config, const Dims& dims, const BlockParams& w, BlockParams& g,
                    const Tensor& x_in, const Tensor& positions, const BlockActivations& a, Tensor& dres,
                    BackwardScratch& s, Tensor& below_down_bias, bool down_bias_folded) {
  mlp_backward(ctx, config, w, g, a, dres, s, down_bias_folded);
  attention_backward_half(ctx, config, dims, w, g, x_in, positions, a, dres, s, below_down_bias);
}

}  // namespace anvil::train::detail
