// Optimizer and schedules against float64 references written here.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "anvil/train/lr_schedule.h"
#include "anvil/train/optimizer.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

using train::ParamRole;

// A table with every role, in an order that splits the decay groups into several runs.
train::ParamTable mixed_table() {
  train::ParamTable table;
  table.add("embed", {7, 5}, ParamRole::Embedding, 0.02);
  table.add("norm", {5}, ParamRole::Norm, 0.0, 1.0F);
  table.add("w1", {6, 5}, ParamRole::Matrix, 0.02);
  table.add("bias", {6}, ParamRole::Bias, 0.0);
  table.add("w2", {5, 6}, ParamRole::Matrix, 0.02);
  table.add("w3", {9, 4}, ParamRole::Matrix, 0.02);
  table.add("head", {7, 5}, ParamRole::Head, 0.02);
  return table;
}

Tensor to_f32(const HostArray& array) {
  std::vector<float> values(array.values.begin(), array.values.end());
  return Tensor::from_f32(array.shape, values);
}

// torch.optim.AdamW after torch.nn.utils.clip_grad_norm_, in float64.
struct ReferenceAdamW {
  train::OptimizerConfig config;
  std::vector<double> m, v;
  int64_t step = 0;

  void update(std::vector<double>& p, std::vector<double> g, const std::vector<bool>& decay, double lr) {
    double norm = 0.0;
    for (const double x : g) norm += x * x;
    norm = std::sqrt(norm);
    const double coef = config.grad_clip > 0.0 ? std::min(1.0, config.grad_clip / (norm + 1e-6)) : 1.0;
    ++step;
    const double bc1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
    for (size_t i = 0; i < p.size(); ++i) {
      g[i] *= coef;
      if (decay[i]) p[i] *= 1.0 - lr * config.weight_decay;
      m[i] = config.beta1 * m[i] + (1.0 - config.beta1) * g[i];
      v[i] = config.beta2 * v[i] + (1.0 - config.beta2) * g[i] * g[i];
      p[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + config.eps);
    }
  }
};

std::vector<bool> default_decay_mask(const train::ParamTable& table) {
  std::vector<bool> mask;
  for (const train::ParamEntry& e : table.entries()) {
    const bool decay = e.role == ParamRole::Matrix || e.role == ParamRole::Head;
    mask.insert(mask.end(), static_cast<size_t>(e.numel()), decay);
  }
  return mask;
}

TEST(TrainOptimizer, AdamWStepsMatchFloat64Reference) {
  Rng rng(test_seed());
  const train::ParamTable table = mixed_table();
  for (const double clip : {0.0, 1.0}) {
    SCOPED_TRACE("grad_clip " + std::to_string(clip));
    train::OptimizerConfig config;
    config.lr = 0.05;
    config.weight_decay = 0.3;
    config.grad_clip = clip;
    train::Optimizer optimizer(test_ctx(), table, config);
    HostArray p_array = random_array({table.total()}, rng);
    round_to(p_array, DType::F32);
    Tensor params = to_f32(p_array);
    ReferenceAdamW reference{config, std::vector<double>(p_array.values.size()),
                             std::vector<double>(p_array.values.size())};
    std::vector<double> p = p_array.values;
    for (int step = 0; step < 4; ++step) {
      HostArray g = random_array({table.total()}, rng, -0.5, 0.5);
      round_to(g, DType::F32);
      const double factor = 1.0 - 0.2 * step;
      const train::OptimizerStepInfo info = optimizer.step(params, to_f32(g), factor);
      reference.update(p, g.values, default_decay_mask(table), config.lr * factor);
      EXPECT_NEAR(info.lr, config.lr * factor, 1e-12);
      if (clip > 0.0) {
        EXPECT_LT(info.clip_scale, 1.0);  // the norm of ~150 values of 0.25 is above 1
      }
    }
    expect_close(to_host(test_ctx(), params), HostArray{{table.total()}, p}, Tolerance{1e-5, 1e-6},
                 "params after 4 AdamW steps");
  }
}

TEST(TrainOptimizer, DecayGroupsFollowTheConfig) {
  const train::ParamTable table = mixed_table();
  for (const bool decay_all : {false, true}) {
    train::OptimizerConfig config;
    config.lr = 0.1;
    config.weight_decay = 0.5;
    config.decay_embeddings = decay_all;
    config.decay_norms_and_biases = decay_all;
    train::Optimizer optimizer(test_ctx(), table, config);
    Tensor params = Tensor::from_f32({table.total()}, std::vector<float>(static_cast<size_t>(table.total()), 2.0F));
    optimizer.step(params, Tensor::zeros({table.total()}, DType::F32), 1.0);  // zero gradients: decay only
    for (const train::ParamEntry& e : table.entries()) {
      const bool decays = decay_all || e.role == ParamRole::Matrix || e.role == ParamRole::Head;
      EXPECT_EQ(optimizer.decays(e), decays) << e.name;
      const float expected = decays ? 2.0F * (1.0F - 0.05F) : 2.0F;
      EXPECT_FLOAT_EQ(params.data<float>()[e.offset], expected) << e.name;
    }
  }
}

TEST(TrainOptimizer, GlobalNormIsExactAndThreadIndependent) {
  Rng rng(test_seed());
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{200003}}) {
    HostArray values = random_array({n}, rng);
    round_to(values, DType::F32);
    double reference = 0.0;
    for (const double v : values.values) reference += v * v;
    reference = std::sqrt(reference);
    const Tensor tensor = to_f32(values);
    Ctx one_thread(CtxOptions{1, false});
    const double single = train::global_norm(one_thread, tensor);
    EXPECT_NEAR(single, reference, 1e-12 * reference);
    EXPECT_EQ(single, train::global_norm(test_ctx(), tensor));  // bit for bit
  }
}

// The same iteration in float64.
std::vector<double> reference_newton_schulz(std::vector<double> x, int64_t rows, int64_t cols, int64_t steps) {
  const bool tall = rows > cols;
  if (tall) {
    std::vector<double> t(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = x[r * cols + c];
    }
    x = t;
    std::swap(rows, cols);
  }
  double norm = 0.0;
  for (const double v : x) norm += v * v;
  for (double& v : x) v /= std::sqrt(norm) + 1e-7;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<double> a(rows * rows, 0.0), b(rows * rows, 0.0), next(x.size(), 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < rows; ++j) {
        for (int64_t k = 0; k < cols; ++k) a[i * rows + j] += x[i * cols + k] * x[j * cols + k];
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < rows; ++j) {
        double aa = 0.0;
        for (int64_t k = 0; k < rows; ++k) aa += a[i * rows + k] * a[k * rows + j];
        b[i * rows + j] = -4.7750 * a[i * rows + j] + 2.0315 * aa;
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        double bx = 0.0;
        for (int64_t k = 0; k < rows; ++k) bx += b[i * rows + k] * x[k * cols + j];
        next[i * cols + j] = 3.4445 * x[i * cols + j] + bx;
      }
    }
    x = next;
  }
  if (!tall) return x;
  std::vector<double> t(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = x[r * cols + c];
  }
  return t;
}

TEST(TrainOptimizer, NewtonSchulzMatchesReferenceAndOrthogonalises) {
  Rng rng(test_seed());
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{8, 24}, {33, 7}, {16, 16}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    HostArray x = random_array({rows, cols}, rng);
    round_to(x, DType::F32);
    Tensor tensor = to_f32(x);
    train::newton_schulz(test_ctx(), tensor, 5);
    const std::vector<double> reference = reference_newton_schulz(x.values, rows, cols, 5);
    expect_close(to_host(test_ctx(), tensor), HostArray{{rows, cols}, reference}, Tolerance{1e-4, 1e-5},
                 "newton_schulz");
    // Singular values end near 1: the Gram matrix of the short side is near the identity.
    const int64_t small = std::min(rows, cols);
    const std::vector<double> y = reference;
    for (int64_t i = 0; i < small; ++i) {
      double diagonal = 0.0;
      for (int64_t k = 0; k < std::max(rows, cols); ++k) {
        const double v = rows <= cols ? y[i * cols + k] : y[k * cols + i];
        diagonal += v * v;
      }
      EXPECT_GT(diagonal, 0.3);
      EXPECT_LT(diagonal, 1.6);
    }
  }
}

TEST(TrainOptimizer, MuonUpdatesMatricesAndAdamWTheRest) {
  Rng rng(test_seed());
  const train::ParamTable table = mixed_table();
  train::OptimizerConfig config;
  config.name = "muon";
  config.lr = 0.01;
  config.muon_lr = 0.02;
  config.weight_decay = 0.1;
  config.grad_clip = 0.0;
  train::Optimizer muon(test_ctx(), table, config);
  config.name = "adamw";
  train::Optimizer adamw(test_ctx(), table, config);
  HostArray p = random_array({table.total()}, rng);
  round_to(p, DType::F32);
  Tensor with_muon = to_f32(p), with_adamw = to_f32(p);
  HostArray g = random_array({table.total()}, rng);
  round_to(g, DType::F32);
  muon.step(with_muon, to_f32(g), 0.5);
  adamw.step(with_adamw, to_f32(g), 0.5);
  for (const train::ParamEntry& e : table.entries()) {
    SCOPED_TRACE(e.name);
    const Tensor got = table.view(with_muon, e);
    if (!muon.uses_muon(e)) {
      EXPECT_EQ(got.to_f64_vector(), table.view(with_adamw, e).to_f64_vector());
      continue;
    }
    // First step: buf = (1 - mu) g, u = (1 - mu) g + mu buf = (1 - mu^2) g; NS5 is scale free.
    std::vector<double> u(g.values.begin() + e.offset, g.values.begin() + e.offset + e.numel());
    const std::vector<double> orth = reference_newton_schulz(u, e.shape[0], e.shape[1], 5);
    const double lr = 0.02 * 0.5;
    const double step = lr * std::sqrt(std::max(1.0, static_cast<double>(e.shape[0]) / e.shape[1]));
    HostArray expected{e.shape, {}};
    for (int64_t i = 0; i < e.numel(); ++i) {
      expected.values.push_back(p[e.offset + i] * (1.0 - lr * 0.1) - step * orth[static_cast<size_t>(i)]);
    }
    expect_close(to_host(test_ctx(), got), expected, Tolerance{1e-5, 1e-6}, "muon update of " + e.name);
  }
  EXPECT_EQ(muon.state().size(), 3U);
  EXPECT_EQ(adamw.state().size(), 2U);
}

// Mixed precision's compute copy written by the update itself: after each step it must hold
// exactly the updated f32 parameters rounded to bf16 (AdamW runs and Muon's matrices), and
// the f32 parameters must be those of a step without the copy.
TEST(TrainOptimizer, StepsWriteTheRoundedComputeCopy) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const train::ParamTable table = mixed_table();
  for (const Device device : test_devices(ctx)) {
    for (const char* name : {"adamw", "muon"}) {
      SCOPED_TRACE(std::string(name) + " on " + device_string(device));
      train::OptimizerConfig config;
      config.name = name;
      config.weight_decay = 0.1;
      train::Optimizer with_copy(ctx, table, config, device);
      train::Optimizer without(ctx, table, config, device);
      HostArray p = random_array({table.total()}, rng);
      round_to(p, DType::F32);
      Tensor params = make_tensor_exact(ctx, p, DType::F32, device);
      Tensor reference = make_tensor_exact(ctx, p, DType::F32, device);
      Tensor low = ctx.zeros({table.total()}, DType::BF16, device);
      for (int step = 0; step < 3; ++step) {
        HostArray g = random_array({table.total()}, rng);
        const Tensor grads = make_tensor(ctx, g, DType::F32, device);
        with_copy.step(params, grads, 1.0, low);
        without.step(reference, grads, 1.0);
        HostArray rounded = to_host(ctx, params);
        EXPECT_EQ(rounded.values, to_host(ctx, reference).values) << "step " << step << ": f32 parameters";
        round_to(rounded, DType::BF16);
        EXPECT_EQ(to_host(ctx, low).values, rounded.values) << "step " << step << ": bf16 copy";
      }
    }
  }
}

TEST(TrainSchedule, WarmupCosineAndWsd) {
  train::ScheduleConfig schedule;
  schedule.warmup_steps = 10;
  schedule.kind = train::ScheduleKind::Cosine;
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.1, 0, 110), 0.1);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.1, 4, 110), 0.5);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.1, 9, 110), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.1, 10, 110), 1.0);
  EXPECT_NEAR(train::lr_factor(schedule, 0.1, 60, 110), 0.55, 1e-12);  // half way: (1 + 0.1) / 2
  EXPECT_NEAR(train::lr_factor(schedule, 0.1, 35, 110), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(train::lr_factor(schedule, 0.1, 110, 110), 0.1, 1e-12);
  EXPECT_NEAR(train::lr_factor(schedule, 0.1, 500, 110), 0.1, 1e-12);

  schedule.kind = train::ScheduleKind::Wsd;
  schedule.decay_fraction = 0.2;  // decay over steps 80..100 of 100
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 5, 100), 0.6);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 50, 100), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 79, 100), 1.0);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 80, 100), 1.0);
  EXPECT_NEAR(train::lr_factor(schedule, 0.0, 90, 100), 0.5, 1e-12);
  EXPECT_NEAR(train::lr_factor(schedule, 0.2, 90, 100), 0.6, 1e-12);
  EXPECT_NEAR(train::lr_factor(schedule, 0.0, 100, 100), 0.0, 1e-12);

  schedule.kind = train::ScheduleKind::Constant;
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 3, 100), 0.4);
  EXPECT_DOUBLE_EQ(train::lr_factor(schedule, 0.0, 99, 100), 1.0);
}

}  // namespace
}  // namespace anvil::testing
