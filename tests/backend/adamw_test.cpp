// AdamW: several steps against a float64 reference of torch.optim.AdamW, every backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "anvil/ops/adamw.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

struct AdamWState {
  HostArray param;
  HostArray m;
  HostArray v;
};

// One step in float64, in torch.optim.AdamW's order: decoupled decay of param, the moment
// updates, then the bias-corrected Adam step. The hyper-parameters are the f32 values the op gets.
void adamw_reference(AdamWState& state, const HostArray& grad, const AdamWParams& p) {
  const double lr = p.learning_rate;
  const double beta1 = p.beta1;
  const double beta2 = p.beta2;
  const auto step = static_cast<double>(p.step);
  for (int64_t i = 0; i < grad.numel(); ++i) {
    const double g = grad[i] * static_cast<double>(p.grad_scale);
    state.param[i] *= 1.0 - lr * static_cast<double>(p.weight_decay);
    state.m[i] = beta1 * state.m[i] + (1.0 - beta1) * g;
    state.v[i] = beta2 * state.v[i] + (1.0 - beta2) * g * g;
    const double m_hat = state.m[i] / (1.0 - std::pow(beta1, step));
    const double v_hat = state.v[i] / (1.0 - std::pow(beta2, step));
    state.param[i] -= lr * m_hat / (std::sqrt(v_hat) + static_cast<double>(p.eps));
  }
}

HostArray zeros_like(const HostArray& array) { return {array.shape, std::vector<double>(array.values.size(), 0.0)}; }

// f32 state after a few steps: about an ulp of rounding per step. param and m are
// differences of O(1) terms (param * decay - update, b1 m + (1 - b1) g) that can cancel,
// so their absolute floor is a few ulps of 1; v is a sum of positive terms: relative only.
constexpr Tolerance kCancellingTolerance{2e-6, 1e-6};
constexpr Tolerance kPositiveTolerance{2e-6, 1e-9};

void expect_state_close(Ctx& ctx, const Tensor& param, const Tensor& m, const Tensor& v, const AdamWState& ref) {
  expect_close(to_host(ctx, param), ref.param, kCancellingTolerance, "param");
  expect_close(to_host(ctx, m), ref.m, kCancellingTolerance, "m");
  expect_close(to_host(ctx, v), ref.v, kPositiveTolerance, "v");
}

const std::vector<Shape> kShapes = {{1}, {7}, {1000}, {4097}, {3, 5}};

struct Config {
  float learning_rate;
  float beta1;
  float beta2;
  float weight_decay;
  float grad_scale;
};

const std::vector<Config> kConfigs = {
    {1e-2F, 0.9F, 0.999F, 0.0F, 1.0F},   // plain Adam
    {2e-2F, 0.9F, 0.999F, 0.1F, 1.0F},   // with weight decay
    {5e-3F, 0.8F, 0.95F, 0.05F, 0.37F},  // other betas, decay and grad scaling
};

TEST(OpAdamW, StepsFromZeroMomentsMatchFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType grad_dtype : {DType::F32, DType::BF16}) {
      for (const Config& config : kConfigs) {
        for (const Shape& shape : kShapes) {
          SCOPED_TRACE(case_label(grad_dtype, device, shape) + ", wd " + std::to_string(config.weight_decay) +
                       ", grad_scale " + std::to_string(config.grad_scale));
          AdamWState state{random_array(shape, rng, -2.0, 2.0), {}, {}};
          round_to(state.param, DType::F32);
          state.m = zeros_like(state.param);
          state.v = zeros_like(state.param);
          Tensor param = make_tensor_exact(ctx, state.param, DType::F32, device);
          Tensor m = make_tensor_exact(ctx, state.m, DType::F32, device);
          Tensor v = make_tensor_exact(ctx, state.v, DType::F32, device);
          for (int64_t step = 1; step <= 5; ++step) {
            SCOPED_TRACE("step " + std::to_string(step));
            HostArray grad = random_array(shape, rng, -1.5, 1.5);
            const Tensor grad_tensor = make_tensor(ctx, grad, grad_dtype, device);
            const AdamWParams params{config.learning_rate, config.beta1, config.beta2,     1e-8F,
                                     config.weight_decay,  step,         config.grad_scale};
            adamw(ctx, param, m, v, grad_tensor, params);
            adamw_reference(state, grad, params);
            expect_state_close(ctx, param, m, v, state);
          }
        }
      }
    }
  }
}

TEST(OpAdamW, LateStepFromArbitraryMomentsMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType grad_dtype : {DType::F32, DType::BF16}) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(grad_dtype, device, shape));
        AdamWState state{random_array(shape, rng, -2.0, 2.0), random_array(shape, rng, -0.5, 0.5),
                         random_array(shape, rng, 1e-4, 0.5)};
        for (HostArray* array : {&state.param, &state.m, &state.v}) round_to(*array, DType::F32);
        Tensor param = make_tensor_exact(ctx, state.param, DType::F32, device);
        Tensor m = make_tensor_exact(ctx, state.m, DType::F32, device);
        Tensor v = make_tensor_exact(ctx, state.v, DType::F32, device);
        HostArray grad = random_array(shape, rng, -1.0, 1.0);
        const Tensor grad_tensor = make_tensor(ctx, grad, grad_dtype, device);
        const AdamWParams params{3e-3F, 0.9F, 0.99F, 1e-6F, 0.01F, 250, 2.0F};
        adamw(ctx, param, m, v, grad_tensor, params);
        adamw_reference(state, grad, params);
        expect_state_close(ctx, param, m, v, state);
      }
    }
  }
}

// Runs of odd lengths with gaps (some empty), decay alternating at random, 300 of them (more
// than one CUDA launch's 128), on aligned buffers and on buffers offset by one element (the
// scalar path): adamw_runs must give exactly adamw's bits per run and leave gaps untouched.
TEST(OpAdamW, RunsMatchPerRunCallsBitwise) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  std::vector<AdamWRun> runs;
  int64_t cursor = 0;
  const HostArray lengths = random_ints({300}, rng, 0, 40);
  const HostArray gaps = random_ints({300}, rng, 0, 3);
  const HostArray decays = random_ints({300}, rng, 0, 2);
  for (int64_t r = 0; r < 300; ++r) {
    cursor += static_cast<int64_t>(gaps[r]);
    const auto length = static_cast<int64_t>(lengths[r]);
    runs.push_back({cursor, cursor + length, decays[r] > 0.5});
    cursor += length;
  }
  const int64_t count = cursor + 5;
  for (const Device device : test_devices(ctx)) {
    for (const DType grad_dtype : {DType::F32, DType::BF16}) {
      for (const int64_t offset : {0, 1}) {
        SCOPED_TRACE(case_label(grad_dtype, device, {count}) + ", offset " + std::to_string(offset));
        HostArray param0 = random_array({count + offset}, rng, -2.0, 2.0);
        HostArray m0 = random_array({count + offset}, rng, -0.5, 0.5);
        HostArray v0 = random_array({count + offset}, rng, 1e-4, 0.5);
        HostArray grad = random_array({count + offset}, rng, -1.0, 1.0);
        for (HostArray* array : {&param0, &m0, &v0}) round_to(*array, DType::F32);
        const Tensor grad_full = make_tensor(ctx, grad, grad_dtype, device);
        const Tensor grad_tensor = grad_full.slice(0, offset, offset + count);
        const AdamWParams params{3e-3F, 0.9F, 0.99F, 1e-6F, 0.1F, 7, 0.6F};
        std::vector<HostArray> results;
        for (const bool one_call : {false, true}) {
          Tensor param_full = make_tensor_exact(ctx, param0, DType::F32, device);
          Tensor m_full = make_tensor_exact(ctx, m0, DType::F32, device);
          Tensor v_full = make_tensor_exact(ctx, v0, DType::F32, device);
          Tensor param = param_full.slice(0, offset, offset + count), m = m_full.slice(0, offset, offset + count);
          Tensor v = v_full.slice(0, offset, offset + count);
          if (one_call) {
            adamw_runs(ctx, param, m, v, grad_tensor, params, runs);
          } else {
            for (const AdamWRun& run : runs) {
              AdamWParams run_params = params;
              run_params.weight_decay = run.decay ? params.weight_decay : 0.0F;
              Tensor p = param.slice(0, run.begin, run.end), rm = m.slice(0, run.begin, run.end);
              Tensor rv = v.slice(0, run.begin, run.end);
              adamw(ctx, p, rm, rv, grad_tensor.slice(0, run.begin, run.end), run_params);
            }
          }
          for (const Tensor* t : {&param_full, &m_full, &v_full}) results.push_back(to_host(ctx, *t));
        }
        const HostArray* initial[] = {&param0, &m0, &v0};
        for (int k = 0; k < 3; ++k) {
          const HostArray& per_run = results[static_cast<size_t>(k)];
          const HostArray& one = results[static_cast<size_t>(k) + 3];
          int64_t mismatches = 0, changed = 0, first_mismatch = -1;
          for (int64_t i = 0; i < per_run.numel(); ++i) {
            if (per_run[i] != one[i] && first_mismatch < 0) first_mismatch = i;
            mismatches += per_run[i] != one[i] ? 1 : 0;
            changed += one[i] != (*initial[k])[i] ? 1 : 0;
          }
          EXPECT_EQ(mismatches, 0) << "state " << k << ", first at " << first_mismatch << ": per run "
                                   << (first_mismatch < 0 ? 0.0 : per_run[first_mismatch]) << ", one call "
                                   << (first_mismatch < 0 ? 0.0 : one[first_mismatch]);
          EXPECT_GT(changed, count / 2) << "state " << k;  // the runs were updated at all
        }
      }
    }
  }
}

// param_low: every element of a run receives its updated param rounded to bf16, gaps keep
// their values; on aligned buffers (the vector path on CUDA) and offset ones (scalar).
TEST(OpAdamW, RunsRoundTheirElementsIntoParamLow) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const std::vector<AdamWRun> runs = {{0, 37, true}, {40, 41, false}, {44, 300, true}, {303, 309, false}};
  const int64_t count = 311;
  for (const Device device : test_devices(ctx)) {
    for (const int64_t offset : {0, 1}) {
      SCOPED_TRACE(case_label(DType::F32, device, {count}) + ", offset " + std::to_string(offset));
      HostArray param0 = random_array({count + offset}, rng, -2.0, 2.0);
      HostArray state = random_array({count + offset}, rng, 1e-4, 0.5);
      HostArray grad = random_array({count + offset}, rng);
      Tensor param_full = make_tensor(ctx, param0, DType::F32, device);
      Tensor m_full = make_tensor(ctx, state, DType::F32, device);
      Tensor v_full = make_tensor_exact(ctx, state, DType::F32, device);
      const Tensor grad_full = make_tensor(ctx, grad, DType::F32, device);
      const HostArray sevens{{count + offset}, std::vector<double>(static_cast<size_t>(count + offset), 7.0)};
      Tensor low_full = make_tensor_exact(ctx, sevens, DType::BF16, device);
      Tensor param = param_full.slice(0, offset, offset + count), m = m_full.slice(0, offset, offset + count);
      Tensor v = v_full.slice(0, offset, offset + count), low = low_full.slice(0, offset, offset + count);
      adamw_runs(ctx, param, m, v, grad_full.slice(0, offset, offset + count), AdamWParams{}, runs, low);
      HostArray rounded = to_host(ctx, param_full);
      round_to(rounded, DType::BF16);
      const HostArray got = to_host(ctx, low_full);
      int64_t wrong = 0;
      for (int64_t i = 0; i < count; ++i) {
        const bool in_run =
            std::any_of(runs.begin(), runs.end(), [&](const AdamWRun& r) { return r.begin <= i && i < r.end; });
        wrong += got[offset + i] != (in_run ? rounded[offset + i] : 7.0) ? 1 : 0;
      }
      EXPECT_EQ(wrong, 0);
    }
  }
}

TEST(OpAdamW, RunsRejectUnsortedOrOutOfRange) {
  Ctx& ctx = test_ctx();
  Tensor param = Tensor::zeros({32}, DType::F32);
  Tensor m = Tensor::zeros({32}, DType::F32);
  Tensor v = Tensor::zeros({32}, DType::F32);
  const Tensor grad = Tensor::zeros({32}, DType::F32);
  const AdamWParams good;
  const std::vector<AdamWRun> ok = {{0, 8, true}, {10, 32, false}};
  EXPECT_NO_THROW(adamw_runs(ctx, param, m, v, grad, good, ok));
  const std::vector<AdamWRun> overlap = {{0, 8, true}, {7, 12, false}};
  EXPECT_THROW(adamw_runs(ctx, param, m, v, grad, good, overlap), Error);
  const std::vector<AdamWRun> beyond = {{0, 33, true}};
  EXPECT_THROW(adamw_runs(ctx, param, m, v, grad, good, beyond), Error);
  const std::vector<AdamWRun> reversed = {{5, 3, true}};
  EXPECT_THROW(adamw_runs(ctx, param, m, v, grad, good, reversed), Error);
  Tensor low_f32 = Tensor::zeros({32}, DType::F32);
  EXPECT_THROW(adamw_runs(ctx, param, m, v, grad, good, ok, low_f32), Error);  // param_low not bf16
  Tensor low_short = Tensor::zeros({31}, DType::BF16);
  EXPECT_THROW(adamw_runs(ctx, param, m, v, grad, good, ok, low_short), Error);  // param_low shape
}

TEST(OpAdamW, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor param = Tensor::zeros({4, 8}, DType::F32);
  Tensor m = Tensor::zeros({4, 8}, DType::F32);
  Tensor v = Tensor::zeros({4, 8}, DType::F32);
  const Tensor grad = Tensor::zeros({4, 8}, DType::F32);
  const AdamWParams good;
  EXPECT_NO_THROW(adamw(ctx, param, m, v, grad, good));

  Tensor wrong_shape = Tensor::zeros({4, 7}, DType::F32);
  EXPECT_THROW(adamw(ctx, param, wrong_shape, v, grad, good), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, Tensor::zeros({32}, DType::F32), good), Error);
  Tensor bf16_param = Tensor::zeros({4, 8}, DType::BF16);
  EXPECT_THROW(adamw(ctx, bf16_param, m, v, grad, good), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, Tensor::zeros({4, 8}, DType::F16), good), Error);
  EXPECT_THROW(adamw(ctx, param, m, m, grad, good), Error);  // m and v alias
  Tensor undefined;
  EXPECT_THROW(adamw(ctx, param, undefined, v, grad, good), Error);

  const auto with = [&](auto change) {
    AdamWParams params = good;
    change(params);
    return params;
  };
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.step = 0; })), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.beta1 = 1.0F; })), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.beta2 = -0.1F; })), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.learning_rate = -1e-3F; })), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.weight_decay = NAN; })), Error);
  EXPECT_THROW(adamw(ctx, param, m, v, grad, with([](AdamWParams& p) { p.grad_scale = INFINITY; })), Error);
}

}  // namespace
}  // namespace anvil::testing
