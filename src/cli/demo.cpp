// `anvil demo`: a one-block Llama-style transformer (RMSNorm, RoPE, grouped-query
// attention, SwiGLU, tied nothing) trained with AdamW on a synthetic next-token task.
// It runs every CPU op forward and backward; the loss must fall for the demo to pass.
#include "demo.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "anvil/context.h"
#include "anvil/ops.h"

namespace anvil::cli {
namespace {

// Sizes: B sequences of T tokens, width C, H query heads and KV heads of size D, MLP F.
struct Dims {
  int64_t batch = 4, seq = 32, width = 64, heads = 4, kv_heads = 2, head_dim = 16, hidden = 128, vocab = 64;
  [[nodiscard]] int64_t tokens() const { return batch * seq; }
};

struct Param {
  Tensor value, grad, m, v;
};

Param make_param(const Shape& shape, std::mt19937_64& rng, float stddev, float constant = 0.0F) {
  std::normal_distribution<float> normal(0.0F, stddev);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& value : values) value = stddev > 0.0F ? normal(rng) : constant;
  return {Tensor::from_f32(shape, values), Tensor::zeros(shape, DType::F32), Tensor::zeros(shape, DType::F32),
          Tensor::zeros(shape, DType::F32)};
}

struct Weights {
  Param embed, norm1, wq, wk, wv, wo, norm2, w_gate, w_up, w_down, norm_final, head;
  [[nodiscard]] std::vector<Param*> all() {
    return {&embed, &norm1, &wq, &wk, &wv, &wo, &norm2, &w_gate, &w_up, &w_down, &norm_final, &head};
  }
};

Weights init_weights(const Dims& d, std::mt19937_64& rng) {
  const float scale = 1.0F / std::sqrt(static_cast<float>(d.width));
  return {make_param({d.vocab, d.width}, rng, 1.0F),
          make_param({d.width}, rng, 0.0F, 1.0F),
          make_param({d.width, d.heads * d.head_dim}, rng, scale),
          make_param({d.width, d.kv_heads * d.head_dim}, rng, scale),
          make_param({d.width, d.kv_heads * d.head_dim}, rng, scale),
          make_param({d.heads * d.head_dim, d.width}, rng, scale),
          make_param({d.width}, rng, 0.0F, 1.0F),
          make_param({d.width, d.hidden}, rng, scale),
          make_param({d.width, d.hidden}, rng, scale),
          make_param({d.hidden, d.width}, rng, 1.0F / std::sqrt(static_cast<float>(d.hidden))),
          make_param({d.width}, rng, 0.0F, 1.0F),
          make_param({d.width, d.vocab}, rng, scale)};
}

// Everything the forward pass keeps for the backward pass.
struct Activations {
  Tensor x0, n1, rstd1, q, k, v, att, lse, o, x1, n2, rstd2, gate, up, act, mlp, x2, nf, rstdf, logits, losses;
};

Tensor f32(const Shape& shape) { return Tensor::empty(shape, DType::F32); }

Activations forward(Ctx& ctx, Weights& w, const Dims& d, const Tensor& ids, const Tensor& positions,
                    const Tensor& targets) {
  const int64_t n = d.tokens();
  const RopeParams rope_params{};
  const AttentionParams attention_params{};
  Activations a;
  a.x0 = f32({n, d.width});
  embedding(ctx, a.x0, w.embed.value, ids);
  a.n1 = f32({n, d.width});
  a.rstd1 = f32({n});
  rms_norm(ctx, a.n1, a.rstd1, a.x0, w.norm1.value, 1e-5F);
  a.q = f32({n, d.heads, d.head_dim});
  a.k = f32({n, d.kv_heads, d.head_dim});
  a.v = f32({n, d.kv_heads, d.head_dim});
  Tensor q_flat = a.q.view({n, -1}), k_flat = a.k.view({n, -1}), v_flat = a.v.view({n, -1});
  matmul(ctx, q_flat, a.n1, w.wq.value);
  matmul(ctx, k_flat, a.n1, w.wk.value);
  matmul(ctx, v_flat, a.n1, w.wv.value);
  rope(ctx, a.q, a.q, positions, rope_params);
  rope(ctx, a.k, a.k, positions, rope_params);
  a.att = f32({d.batch, d.seq, d.heads, d.head_dim});
  a.lse = f32({d.batch, d.heads, d.seq});
  attention(ctx, a.att, a.lse, a.q.view({d.batch, d.seq, d.heads, d.head_dim}),
            a.k.view({d.batch, d.seq, d.kv_heads, d.head_dim}), a.v.view({d.batch, d.seq, d.kv_heads, d.head_dim}),
            attention_params);
  a.o = f32({n, d.width});
  matmul(ctx, a.o, a.att.view({n, -1}), w.wo.value);
  a.x1 = f32({n, d.width});
  add(ctx, a.x1, a.x0, a.o);
  a.n2 = f32({n, d.width});
  a.rstd2 = f32({n});
  rms_norm(ctx, a.n2, a.rstd2, a.x1, w.norm2.value, 1e-5F);
  a.gate = f32({n, d.hidden});
  a.up = f32({n, d.hidden});
  matmul(ctx, a.gate, a.n2, w.w_gate.value);
  matmul(ctx, a.up, a.n2, w.w_up.value);
  a.act = f32({n, d.hidden});
  swiglu(ctx, a.act, a.gate, a.up);
  a.mlp = f32({n, d.width});
  matmul(ctx, a.mlp, a.act, w.w_down.value);
  a.x2 = f32({n, d.width});
  add(ctx, a.x2, a.x1, a.mlp);
  a.nf = f32({n, d.width});
  a.rstdf = f32({n});
  rms_norm(ctx, a.nf, a.rstdf, a.x2, w.norm_final.value, 1e-5F);
  a.logits = f32({n, d.vocab});
  matmul(ctx, a.logits, a.nf, w.head.value);
  a.losses = f32({n});
  cross_entropy(ctx, a.losses, a.logits, targets);
  return a;
}

// Backward through the block; parameter gradients accumulate into Param::grad.
void backward(Ctx& ctx, Weights& w, const Dims& d, const Activations& a, const Tensor& ids, const Tensor& positions,
              const Tensor& targets) {
  const int64_t n = d.tokens();
  std::vector<float> mean_weights(static_cast<size_t>(n), 1.0F / static_cast<float>(n));
  const Tensor dlosses = Tensor::from_f32({n}, mean_weights);
  Tensor dlogits = f32({n, d.vocab});
  cross_entropy_backward(ctx, dlogits, dlosses, a.logits, targets);
  Tensor dnf = Tensor::zeros({n, d.width}, DType::F32);  // matmul_backward accumulates
  matmul_backward(ctx, dnf, w.head.grad, dlogits, a.nf, w.head.value, false, false, true);
  Tensor dx2 = f32({n, d.width});
  rms_norm_backward(ctx, dx2, w.norm_final.grad, dnf, a.x2, w.norm_final.value, a.rstdf);
  // MLP branch: x2 = x1 + mlp.
  Tensor dact = Tensor::zeros({n, d.hidden}, DType::F32);
  matmul_backward(ctx, dact, w.w_down.grad, dx2, a.act, w.w_down.value, false, false, true);
  Tensor dgate = f32({n, d.hidden}), dup = f32({n, d.hidden});
  swiglu_backward(ctx, dgate, dup, dact, a.gate, a.up);
  Tensor dn2 = Tensor::zeros({n, d.width}, DType::F32);
  matmul_backward(ctx, dn2, w.w_gate.grad, dgate, a.n2, w.w_gate.value, false, false, true);
  matmul_backward(ctx, dn2, w.w_up.grad, dup, a.n2, w.w_up.value, false, false, true);
  Tensor dx1 = f32({n, d.width});
  rms_norm_backward(ctx, dx1, w.norm2.grad, dn2, a.x1, w.norm2.value, a.rstd2);
  add(ctx, dx1, dx1, dx2);
  // Attention branch: x1 = x0 + o.
  Tensor datt = Tensor::zeros({n, d.heads * d.head_dim}, DType::F32);
  matmul_backward(ctx, datt, w.wo.grad, dx1, a.att.view({n, -1}), w.wo.value, false, false, true);
  Tensor dq = f32({d.batch, d.seq, d.heads, d.head_dim});
  Tensor dk = f32({d.batch, d.seq, d.kv_heads, d.head_dim});
  Tensor dv = f32({d.batch, d.seq, d.kv_heads, d.head_dim});
  attention_backward(ctx, dq, dk, dv, datt.view({d.batch, d.seq, d.heads, d.head_dim}),
                     a.q.view({d.batch, d.seq, d.heads, d.head_dim}),
                     a.k.view({d.batch, d.seq, d.kv_heads, d.head_dim}),
                     a.v.view({d.batch, d.seq, d.kv_heads, d.head_dim}), a.att, a.lse, AttentionParams{});
  Tensor dq_rows = dq.view({n, d.heads, d.head_dim}), dk_rows = dk.view({n, d.kv_heads, d.head_dim});
  rope_backward(ctx, dq_rows, dq_rows, positions, RopeParams{});
  rope_backward(ctx, dk_rows, dk_rows, positions, RopeParams{});
  Tensor dn1 = Tensor::zeros({n, d.width}, DType::F32);
  matmul_backward(ctx, dn1, w.wq.grad, dq.view({n, -1}), a.n1, w.wq.value, false, false, true);
  matmul_backward(ctx, dn1, w.wk.grad, dk.view({n, -1}), a.n1, w.wk.value, false, false, true);
  matmul_backward(ctx, dn1, w.wv.grad, dv.view({n, -1}), a.n1, w.wv.value, false, false, true);
  Tensor dx0 = f32({n, d.width});
  rms_norm_backward(ctx, dx0, w.norm1.grad, dn1, a.x0, w.norm1.value, a.rstd1);
  add(ctx, dx0, dx0, dx1);
  embedding_backward(ctx, w.embed.grad, dx0, ids);
}

double mean_of(const Tensor& values) {
  double total = 0.0;
  for (const float value : values.to_f32_vector()) total += value;
  return total / static_cast<double>(values.numel());
}

double elapsed_ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int run_system(int threads) {
  Ctx ctx(CtxOptions{threads});
  std::printf("cpu features : %s\n", ctx.cpu_features().to_string().c_str());
  std::printf("kernel isa   : %s\n", isa_name(best_isa(ctx.cpu_features())));
  std::printf("threads      : %d\n", ctx.pool().num_threads());
  std::printf("cuda backend : %s\n", ctx.has_cuda() ? "available" : "not available");
  return 0;
}

int run_demo(const DemoOptions& options) {
  Ctx ctx(CtxOptions{options.threads});
  std::mt19937_64 rng(options.seed);
  const Dims d;
  Weights weights = init_weights(d, rng);
  // Task: each sequence counts up by a stride of 7 (mod vocab) from a random start;
  // the next token follows from the current one, which attention must find.
  std::vector<int32_t> ids(static_cast<size_t>(d.tokens())), targets(ids.size()), positions(ids.size());
  for (int64_t b = 0; b < d.batch; ++b) {
    const auto start = static_cast<int32_t>(rng() % static_cast<uint64_t>(d.vocab));
    for (int64_t t = 0; t < d.seq; ++t) {
      const auto i = static_cast<size_t>(b * d.seq + t);
      ids[i] = static_cast<int32_t>((start + 7 * t) % d.vocab);
      targets[i] = static_cast<int32_t>((start + 7 * (t + 1)) % d.vocab);
      positions[i] = static_cast<int32_t>(t);
    }
  }
  const Tensor ids_tensor = Tensor::from_i32({d.tokens()}, ids);
  const Tensor targets_tensor = Tensor::from_i32({d.tokens()}, targets);
  const Tensor positions_tensor = Tensor::from_i32({d.tokens()}, positions);
  std::printf(
      "demo: training a 1-block transformer (width %lld, %lld heads / %lld kv heads, vocab %lld) on %d threads, isa "
      "%s\n",
      static_cast<long long>(d.width), static_cast<long long>(d.heads), static_cast<long long>(d.kv_heads),
      static_cast<long long>(d.vocab), ctx.pool().num_threads(), isa_name(best_isa(ctx.cpu_features())));
  double first_loss = 0.0, last_loss = 0.0;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= options.steps; ++step) {
    for (Param* param : weights.all())
      std::memset(param->grad.raw_data(), 0, static_cast<size_t>(param->grad.nbytes()));
    const Activations acts = forward(ctx, weights, d, ids_tensor, positions_tensor, targets_tensor);
    backward(ctx, weights, d, acts, ids_tensor, positions_tensor, targets_tensor);
    AdamWParams adam;
    adam.learning_rate = 1e-2F;
    adam.step = step;
    for (Param* param : weights.all()) adamw(ctx, param->value, param->m, param->v, param->grad, adam);
    last_loss = mean_of(acts.losses);
    if (step == 1) first_loss = last_loss;
    if (step == 1 || step % 10 == 0 || step == options.steps) {
      std::printf("demo: step %3d  loss %.4f  (%.1f ms/step)\n", step, last_loss, elapsed_ms(start) / step);
    }
  }
  std::printf("demo: loss %.4f -> %.9f (uniform guess: %.4f)\n", first_loss, last_loss,
              std::log(static_cast<double>(d.vocab)));
  if (!(last_loss < 0.5 * first_loss)) {
    std::printf("demo: FAILED (loss did not fall)\n");
    return 1;
  }
  std::printf("demo: ok\n");
  return 0;
}

}  // namespace anvil::cli
