#pragma once
// One transformer block of the training model, forward and backward (internal to train/).
// Shapes: B sequences of T tokens, N = B * T rows, width C, Hq query heads and Hkv KV
// heads of size D, MLP width F.
#include <cstdint>

#include "anvil/context.h"
#include "anvil/model/model_config.h"

namespace anvil::train::detail {

struct Dims {
  int64_t batch = 0, seq = 0, width = 0, heads = 0, kv_heads = 0, head_dim = 0, hidden = 0, vocab = 0;
  [[nodiscard]] int64_t rows() const { return batch * seq; }
  [[nodiscard]] int64_t q_width() const { return heads * head_dim; }
  [[nodiscard]] int64_t kv_width() const { return kv_heads * head_dim; }
};

// Views of one block's parameters (or of their gradients); unused ones stay undefined.
// Llama: norm1, wq, wk, wv, wo, norm2, w_gate, w_up, w_down.
// GPT-2: norm1(+bias), wq/bq, wk/bk, wv/bv, wo/bo, norm2(+bias), w_up/b_up, w_down/b_down.
struct BlockParams {
  Tensor norm1, norm1_bias, wq, bq, wk, bk, wv, bv, wo, bo, norm2, norm2_bias, w_gate, w_up, b_up, w_down, b_down;
};

// What forward keeps for backward. up holds GPT-2's pre-GELU activation; gate is Llama's.
// The residual x_mid and the statistics are f32; the rest is in the compute dtype (f32 or bf16).
struct BlockActivations {
  Tensor n1, mean1, rstd1;  // (N, C), (N), (N)
  Tensor q, k, v;           // (N, Hq * D), (N, Hkv * D) x2, after RoPE
  Tensor att, lse;          // (N, Hq * D) attention output, (B, Hq, T)
  Tensor x_mid;             // (N, C) residual after attention
  Tensor n2, mean2, rstd2;  // (N, C), (N), (N)
  Tensor gate, up, act;     // (N, F)
};

// Gradient buffers of backward, shared by every block. dx, dn, position_sum are f32; the
// rest is in the compute dtype. dres_low holds the residual gradient rounded to bf16 on
// entry to each half-block (bf16 only; residual_grad_ready / the norm backward write it).
struct BackwardScratch {
  Tensor dx, dn;            // (N, C)
  Tensor dres_low;          // (N, C) the residual gradient cast to bf16 for the GEMMs (bf16 only)
  Tensor datt, dq;          // (N, Hq * D)
  Tensor dk, dv;            // (N, Hkv * D)
  Tensor dgate, dup, dact;  // (N, F); dgate, dact Llama only
  Tensor position_sum;      // (T, C) GPT-2 position-table gradient
};

// `compute`: the compute dtype (F32 or BF16).
BlockActivations make_block_activations(Ctx& ctx, Device device, const Dims& dims, bool gpt2, DType compute);
BackwardScratch make_backward_scratch(Ctx& ctx, Device device, const Dims& dims, bool gpt2, DType compute);

// x_out (N, C) = block(x_in); positions (N) i32 feed RoPE. w's matrices are in the compute
// dtype, its norm gains and biases f32; x_in, x_out and dres are f32 (the residual stream).
void block_forward(Ctx& ctx, const model::ModelConfig& config, const Dims& dims, const BlockParams& w,
                   const Tensor& x_in, const Tensor& positions, BlockActivations& a, Tensor& x_out);
// Whether the gradients of the biases added into the residual stream (bo, b_down) come from
// the column sums of the LayerNorm backwards that update dres right after (no pass over dres
// of their own): LayerNorm models.
bool folds_residual_biases(const model::ModelConfig& config);
// dres: d loss / d x_out on entry (with s.dres_low its bf16 copy: residual_grad_ready), d
// loss / d x_in on return (dres_low updated); parameter gradients are added to g. With
// folds_residual_biases, the first norm's backward also adds d loss / d x_in's column sums to
// below_down_bias (the b_down gradient of the block below; undefined for the first block),
// and down_bias_folded says the block above did so for this block's b_down.
void block_backward(Ctx& ctx, const model::ModelConfig& config, const Dims& dims, const BlockParams& w, BlockParams& g,
                    const Tensor& x_in, const Tensor& positions, const BlockActivations& a, Tensor& dres,
                    BackwardScratch& s, Tensor& below_down_bias, bool down_bias_folded);

// out (N, O) = x (N, I) @ weight (O, I)^T [+ bias (O)].
void linear_forward(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias);
// dx = (or += when accumulate_dx) dout @ weight; dweight += dout^T @ x; dbias += column
// sums of dout. dx, dbias may be undefined.
void linear_backward(Ctx& ctx, Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                     const Tensor& weight, bool accumulate_dx);
// s.dres_low = dres rounded (bf16 runs; nothing in f32): before the first block_backward.
void residual_grad_ready(Ctx& ctx, const Tensor& dres, BackwardScratch& s);
// out = norm(x) with the config's norm (LayerNorm saves mean; RMSNorm leaves it undefined).
void norm_forward(Ctx& ctx, const model::ModelConfig& config, Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                  const Tensor& weight, const Tensor& bias);
// dx = d norm / dx (overwritten); dweight, dbias accumulated.
void norm_backward(Ctx& ctx, const model::ModelConfig& config, Tensor& dx, Tensor& dweight, Tensor& dbias,
                   const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd);

}  // namespace anvil::train::detail
