// Optimizer: global-norm clipping, AdamW by weight-decay group, Muon for hidden matrices.
#include "anvil/train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "anvil/core/error.h"
#include "anvil/ops/adamw.h"
#include "anvil/ops/copy.h"
#include "anvil/ops/elementwise.h"
#include "anvil/ops/matmul.h"

namespace anvil::train {

double global_norm(Ctx& ctx, const Tensor& values) {
  ANVIL_CHECK(values.dtype() == DType::F32 && values.is_contiguous(), "global_norm: expected a contiguous f32 tensor");
  if (!values.device().is_cpu()) {  // on a GPU: the dot product v . v as a (1, N) x (N, 1) GEMM, in f32
    const Tensor row = values.view({1, values.numel()});
    Tensor out = ctx.empty({1, 1}, DType::F32, values.device());
    matmul(ctx, out, row, row, false, true);
    const Tensor host = ctx.to_device(out, Device::cpu());
    return std::sqrt(static_cast<double>(host.data<const float>()[0]));
  }
  constexpr int64_t kBlock = 1 << 16;
  const int64_t count = values.numel();
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  const float* data = values.data<const float>();
  ctx.pool().parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      double sum = 0.0;
      for (int64_t i = block * kBlock; i < std::min(count, (block + 1) * kBlock); ++i) {
        sum += static_cast<double>(data[i]) * data[i];
      }
      partial[static_cast<size_t>(block)] = sum;
    }
  });
  double total = 0.0;
  for (const double sum : partial) total += sum;
  return std::sqrt(total);
}

void newton_schulz(Ctx& ctx, Tensor& x, int64_t steps) {
  ANVIL_CHECK(x.dim() == 2 && x.dtype() == DType::F32 && x.is_contiguous(),
              "newton_schulz: expected a contiguous 2-D f32 matrix, got ", x.to_string(0));
  constexpr float kA = 3.4445F, kB = -4.7750F, kC = 2.0315F;
  // A tall X (R > C) iterates on its C x C Gram matrix: X = a X + X (b A + c A^2) with
  // A = X^T X is the transpose of the wide form's step on X^T (A is symmetric), so no
  // transposes are needed and every step is ops on x's device.
  const bool tall = x.size(0) > x.size(1);
  const int64_t side = std::min(x.size(0), x.size(1));
  const Device device = x.device();
  const double norm = global_norm(ctx, x);
  Tensor work = ctx.empty(x.shape(), DType::F32, device);
  scale(ctx, work, x, static_cast<float>(1.0 / (norm + 1e-7)));
  Tensor gram = ctx.empty({side, side}, DType::F32, device);
  Tensor poly = ctx.empty({side, side}, DType::F32, device);
  Tensor next = ctx.empty(x.shape(), DType::F32, device);
  for (int64_t i = 0; i < steps; ++i) {
    matmul(ctx, gram, work, work, tall, !tall);             // A = X X^T (wide) or X^T X (tall)
    scale(ctx, poly, gram, kB);                             // b A
    matmul(ctx, poly, gram, gram, false, false, kC, 1.0F);  // + c A A
    scale(ctx, next, work, kA);                             // a X
    if (tall) {
      matmul(ctx, next, work, poly, false, false, 1.0F, 1.0F);  // + X (b A + c A A)
    } else {
      matmul(ctx, next, poly, work, false, false, 1.0F, 1.0F);  // + (b A + c A A) X
    }
    std::swap(work, next);
  }
  copy(ctx, x, work);
}

Optimizer::Optimizer(Ctx& ctx, const ParamTable& table, const OptimizerConfig& config, Device device)
    : ctx_(ctx), table_(table), config_(config) {
  for (const ParamEntry& entry : table.entries()) {
    if (uses_muon(entry)) {
      muon_entries_.push_back(&entry);
      continue;
    }
    const bool decay = decays(entry);
    if (!adamw_runs_.empty() && adamw_runs_.back().end == entry.offset && adamw_runs_.back().decay == decay) {
      adamw_runs_.back().end += entry.numel();
    } else {
      adamw_runs_.push_back({entry.offset, entry.offset + entry.numel(), decay});
    }
  }
  m_ = ctx.zeros({table.total()}, DType::F32, device);
  v_ = ctx.zeros({table.total()}, DType::F32, device);
  if (!muon_entries_.empty()) momentum_ = ctx.zeros({table.total()}, DType::F32, device);
}

bool Optimizer::decays(const ParamEntry& entry) const {
  switch (entry.role) {
    case ParamRole::Matrix:
    case ParamRole::Head:
      return true;
    case ParamRole::Embedding:
      return config_.decay_embeddings;
    case ParamRole::Norm:
    case ParamRole::Bias:
      return config_.decay_norms_and_biases;
  }
  return false;
}

bool Optimizer::uses_muon(const ParamEntry& entry) const {
  return config_.name == "muon" && entry.role == ParamRole::Matrix && entry.shape.size() == 2;
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state() {
  std::vector<std::pair<std::string, Tensor>> tensors = {{"optimizer.m", m_}, {"optimizer.v", v_}};
  if (momentum_.defined()) tensors.emplace_back("optimizer.momentum", momentum_);
  return tensors;
}

OptimizerStepInfo Optimizer::step(Tensor& params, const Tensor& grads, double lr_factor) {
  Tensor none;
  return step(params, grads, lr_factor, none);
}

OptimizerStepInfo Optimizer::step(Tensor& params, const Tensor& grads, double lr_factor, Tensor& params_low) {
  ANVIL_CHECK(params.numel() == table_.total() && grads.numel() == table_.total(), "optimizer: buffers of ",
              params.numel(), " and ", grads.numel(), " elements for a table of ", table_.total());
  OptimizerStepInfo info;
  info.grad_norm = global_norm(ctx_, grads);
  if (config_.grad_clip > 0.0 && info.grad_norm > config_.grad_clip) {
    info.clip_scale = config_.grad_clip / (info.grad_norm + 1e-6);  // torch's clip_grad_norm_
  }
  ++step_count_;
  info.lr = config_.lr * lr_factor;
  const auto grad_scale = static_cast<float>(info.clip_scale);
  adamw_step(params, grads, info.lr, grad_scale, params_low);
  if (!muon_entries_.empty()) muon_updates(params, grads, config_.muon_lr * lr_factor, grad_scale, params_low);
  return info;
}

void Optimizer::adamw_step(Tensor& params, const Tensor& grads, double lr, float grad_scale, Tensor& params_low) {
  AdamWParams adam;
  adam.learning_rate = static_cast<float>(lr);
  adam.beta1 = static_cast<float>(config_.beta1);
  adam.beta2 = static_cast<float>(config_.beta2);
  adam.eps = static_cast<float>(config_.eps);
  adam.step = step_count_;
  adam.grad_scale = grad_scale;
  adam.weight_decay = static_cast<float>(config_.weight_decay);
  if (!adamw_runs_.empty()) adamw_runs(ctx_, params, m_, v_, grads, adam, adamw_runs_, params_low);
}

// Muon (Keller Jordan's formulation): buf = mu buf + (1 - mu) g; u = (1 - mu) g + mu buf
// (Nesterov); p = p (1 - lr wd) - lr sqrt(max(1, rows / cols)) NS5(u). Elementwise ops on the
// state's device (the CPU or a GPU).
void Optimizer::muon_updates(Tensor& params, const Tensor& grads, double lr, float grad_scale, Tensor& params_low) {
  const auto mu = static_cast<float>(config_.muon_momentum);
  const auto decay = static_cast<float>(1.0 - lr * config_.weight_decay);
  const Device device = params.device();
  for (const ParamEntry* entry : muon_entries_) {
    Tensor buf = table_.view(momentum_, *entry), p = table_.view(params, *entry);
    Tensor scaled = ctx_.empty(entry->shape, DType::F32, device);  // (1 - mu) g, clipped
    scale(ctx_, scaled, table_.view(grads, *entry), (1.0F - mu) * grad_scale);
    scale(ctx_, buf, buf, mu);
    add(ctx_, buf, buf, scaled);
    Tensor update = ctx_.empty(entry->shape, DType::F32, device);
    scale(ctx_, update, buf, mu);
    add(ctx_, update, update, scaled);
    newton_schulz(ctx_, update, config_.muon_ns_steps);
    const double aspect = static_cast<double>(entry->shape[0]) / static_cast<double>(entry->shape[1]);
    const auto step_size = static_cast<float>(lr * std::sqrt(std::max(1.0, aspect)));
    scale(ctx_, p, p, decay);
    scale(ctx_, update, update, -step_size);
    add(ctx_, p, p, update);
    if (!params_low.defined()) continue;
    Tensor low = table_.view(params_low, *entry);
    copy(ctx_, low, p);
  }
}

}  // namespace anvil::train
