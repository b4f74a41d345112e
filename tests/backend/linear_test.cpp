// linear: out = x @ weight^T [+ bias] [+ residual] against float64, every backend, with the
// bias and residual combinations training uses (CUDA: cuBLASLt bias epilogue, residual as C).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "anvil/ops/matmul.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

struct LinearCase {
  int64_t rows, out_features, in_features;
};

// {64, 96, 48} and {130, 256, 64}: aligned tiles (the epilogue path); the rest odd sizes.
const std::vector<LinearCase> kCases = {{1, 1, 1}, {5, 3, 7}, {64, 96, 48}, {33, 40, 17}, {130, 256, 64}};

enum class Residual { None, Separate, Aliased };

// out[r, o] = sum_i x[r, i] w[o, i] + bias[o] + residual[r, o] in float64.
HostArray linear_reference(const LinearCase& c, const HostArray& x, const HostArray& weight, const HostArray* bias,
                           const HostArray* residual) {
  HostArray out{{c.rows, c.out_features}, std::vector<double>(static_cast<size_t>(c.rows * c.out_features))};
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t o = 0; o < c.out_features; ++o) {
      double sum = bias != nullptr ? (*bias)[o] : 0.0;
      if (residual != nullptr) sum += (*residual)[r * c.out_features + o];
      for (int64_t i = 0; i < c.in_features; ++i) sum += x[r * c.in_features + i] * weight[o * c.in_features + i];
      out[r * c.out_features + o] = sum;
    }
  }
  return out;
}

const char* residual_name(Residual residual) {
  switch (residual) {
    case Residual::None:
      return "none";
    case Residual::Separate:
      return "separate";
    default:
      return "aliased";
  }
}

TEST(OpLinear, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      for (const LinearCase& c : kCases) {
        for (const DType out_dtype : {DType::F32, dtype}) {
          // Bias: none, out's dtype (fused on the GPU), or f32 (composed when out is bf16).
          for (const std::optional<DType> bias_dtype :
               {std::optional<DType>(), std::optional(out_dtype), std::optional(DType::F32)}) {
            for (const Residual residual : {Residual::None, Residual::Separate, Residual::Aliased}) {
              SCOPED_TRACE(case_label(dtype, device, {c.rows, c.out_features, c.in_features}) +
                           " out=" + std::string(dtype_name(out_dtype)) +
                           " bias=" + (bias_dtype ? std::string(dtype_name(*bias_dtype)) : "none") +
                           " residual=" + residual_name(residual));
              HostArray x = random_array({c.rows, c.in_features}, rng);
              HostArray weight = random_array({c.out_features, c.in_features}, rng);
              HostArray bias = random_array({c.out_features}, rng);
              HostArray extra = random_array({c.rows, c.out_features}, rng, -2.0, 2.0);
              const Tensor x_tensor = make_tensor(ctx, x, dtype, device);
              const Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
              const Tensor bias_tensor = bias_dtype ? make_tensor(ctx, bias, *bias_dtype, device) : Tensor();
              const Tensor residual_tensor =
                  residual == Residual::None ? Tensor() : make_tensor(ctx, extra, out_dtype, device);
              HostArray nan{{c.rows, c.out_features},
                            std::vector<double>(extra.values.size(), std::numeric_limits<double>::quiet_NaN())};
              Tensor out =
                  residual == Residual::Aliased ? residual_tensor : make_tensor_exact(ctx, nan, out_dtype, device);
              linear(ctx, out, x_tensor, weight_tensor, bias_tensor, residual_tensor);
              const HostArray ref = linear_reference(c, x, weight, bias_dtype ? &bias : nullptr,
                                                     residual == Residual::None ? nullptr : &extra);
              Tolerance tolerance = tolerance_for(out_dtype);
              tolerance.atol_scale = std::max(1.0, std::sqrt(static_cast<double>(c.in_features)) / 8.0);
              expect_close(to_host(ctx, out), ref, tolerance, "out");
            }
          }
        }
      }
    }
  }
}

// x w + residual = 1 + 2^-7 + 2^-9 is not a bf16 value (it rounds to 1 + 2^-7), while the whole
// sum with the bias, 2^-7 + 2^-9, is: a linear that rounds once gets it exactly; one that rounds
// before adding the bias is off by 20%.
TEST(OpLinear, Bf16OutRoundsOnceWhenTermsCancel) {
  Ctx& ctx = test_ctx();
  for (const Device device : test_devices(ctx)) {
    for (const DType bias_dtype : {DType::BF16, DType::F32}) {
      SCOPED_TRACE(std::string(device_string(device)) + " bias=" + std::string(dtype_name(bias_dtype)));
      const Tensor x = make_tensor_exact(ctx, HostArray{{1, 1}, {1.0}}, DType::BF16, device);
      const Tensor weight = make_tensor_exact(ctx, HostArray{{1, 1}, {1.0 + 0x1p-7}}, DType::BF16, device);
      const Tensor bias = make_tensor_exact(ctx, HostArray{{1}, {-1.0}}, bias_dtype, device);
      const Tensor residual = make_tensor_exact(ctx, HostArray{{1, 1}, {0x1p-9}}, DType::BF16, device);
      Tensor out = make_tensor_exact(ctx, HostArray{{1, 1}, {0.0}}, DType::BF16, device);
      linear(ctx, out, x, weight, bias, residual);
      EXPECT_EQ(to_host(ctx, out)[0], 0x1p-7 + 0x1p-9);
    }
  }
}

bool has_gpu(Ctx& ctx) {
  const std::vector<Device> devices = test_devices(ctx);
  return std::any_of(devices.begin(), devices.end(), [](Device d) { return !d.is_cpu(); });
}

// Training's tuned GEMMs (CtxOptions::tune_gemms): timing the candidate algos must leave the
// result of one launch, also where D is read (the residual as C aliasing out, an accumulating
// weight gradient, DGELU). 512 x 1024 x 2048 is over the tuning threshold; each op runs twice
// (the first call tunes, the second uses the kept algo).
TEST(OpLinear, TunedGemmsMatchFloat64AndTheUntunedGpu) {
  Ctx& plain = test_ctx();
  if (!has_gpu(plain)) GTEST_SKIP() << "needs a GPU";
  Ctx tuned(CtxOptions{0, true, true});
  const Device gpu = Device::cuda(0);
  Rng rng(test_seed());
  const LinearCase c{512, 1024, 2048};
  HostArray x = random_array({c.rows, c.in_features}, rng);
  HostArray weight = random_array({c.out_features, c.in_features}, rng);
  HostArray bias = random_array({c.out_features}, rng);
  HostArray extra = random_array({c.rows, c.out_features}, rng, -2.0, 2.0);
  const Tensor x_tensor = make_tensor(tuned, x, DType::BF16, gpu);
  const Tensor weight_tensor = make_tensor(tuned, weight, DType::BF16, gpu);
  const Tensor bias_tensor = make_tensor(tuned, bias, DType::BF16, gpu);
  round_to(extra, DType::BF16);
  const HostArray ref = linear_reference(c, x, weight, &bias, &extra);
  Tolerance tolerance = tolerance_for(DType::BF16);
  tolerance.atol_scale = std::sqrt(static_cast<double>(c.in_features)) / 8.0;
  for (int call = 0; call < 2; ++call) {
    SCOPED_TRACE("call " + std::to_string(call));
    Tensor aliased = make_tensor_exact(tuned, extra, DType::BF16, gpu);
    linear(tuned, aliased, x_tensor, weight_tensor, bias_tensor, aliased);
    expect_close(to_host(tuned, aliased), ref, tolerance, "linear, residual aliasing out");
    const Tensor residual = make_tensor_exact(tuned, extra, DType::BF16, gpu);
    Tensor out = Tensor::empty({c.rows, c.out_features}, DType::BF16, tuned.allocator(gpu));
    linear(tuned, out, x_tensor, weight_tensor, bias_tensor, residual);
    expect_close(to_host(tuned, out), ref, tolerance, "linear, separate residual");
  }

  // The fused training GEMMs against the same ops untuned: linear_gelu (GELU_AUX_BIAS) on
  // x, w; the input gradient through dout (N, O) @ w (O, I) and gelu'(pre2) (DGELU); the
  // weight gradient dout^T @ x added to a nonzero f32 dweight (BGRADB, C = D).
  HostArray dout = random_array({c.rows, c.out_features}, rng);
  HostArray pre2 = random_array({c.rows, c.in_features}, rng, -3.0, 3.0);
  HostArray start = random_array({c.out_features, c.in_features}, rng);
  HostArray start_bias = random_array({c.out_features}, rng);
  round_to(pre2, DType::BF16);
  const auto run = [&](Ctx& ctx) {
    const Tensor xs = make_tensor_exact(ctx, x, DType::BF16, gpu);
    const Tensor ws = make_tensor_exact(ctx, weight, DType::BF16, gpu);
    const Tensor bs = make_tensor_exact(ctx, bias, DType::BF16, gpu);
    const Tensor douts = make_tensor(ctx, dout, DType::BF16, gpu);
    const Tensor pre2s = make_tensor_exact(ctx, pre2, DType::BF16, gpu);
    Tensor up = Tensor::empty({c.rows, c.out_features}, DType::BF16, ctx.allocator(gpu));
    Tensor pre = Tensor::empty({c.rows, c.out_features}, DType::BF16, ctx.allocator(gpu));
    Tensor dpre = Tensor::empty({c.rows, c.in_features}, DType::BF16, ctx.allocator(gpu));
    Tensor dweight = make_tensor_exact(ctx, start, DType::F32, gpu);
    Tensor dbias = make_tensor_exact(ctx, start_bias, DType::F32, gpu);
    Tensor no_bias;
    for (int call = 0; call < 2; ++call) {
      linear_gelu(ctx, up, pre, xs, ws, bs);
      linear_gelu_input_grad(ctx, dpre, no_bias, douts, ws, pre2s);
      linear_weight_grad(ctx, dweight, dbias, douts, xs);
    }
    return std::vector<HostArray>{to_host(ctx, up), to_host(ctx, pre), to_host(ctx, dpre), to_host(ctx, dweight),
                                  to_host(ctx, dbias)};
  };
  const std::vector<HostArray> want = run(plain);
  const std::vector<HostArray> got = run(tuned);
  expect_close(got[0], want[0], tolerance_for(DType::BF16), "linear_gelu out");
  expect_close(got[1], want[1], tolerance_for(DType::BF16), "linear_gelu pre");
  expect_close(got[2], want[2], tolerance_for(DType::BF16), "linear_gelu_input_grad dpre");
  expect_close(got[3], want[3], tolerance_for(DType::F32), "linear_weight_grad dweight (added twice)");
  expect_close(got[4], want[4], tolerance_for(DType::F32), "linear_weight_grad dbias (added twice)");
}

TEST(OpLinear, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  const Tensor x = Tensor::zeros({4, 3}, DType::F32);
  const Tensor weight = Tensor::zeros({5, 3}, DType::F32);
  Tensor out = Tensor::zeros({4, 5}, DType::F32);
  EXPECT_THROW(linear(ctx, out, x, Tensor::zeros({3, 5}, DType::F32)), Error);                     // weight not (O, I)
  EXPECT_THROW(linear(ctx, out, x, weight, Tensor::zeros({4}, DType::F32)), Error);                // bias length
  EXPECT_THROW(linear(ctx, out, x, weight, Tensor(), Tensor::zeros({4, 5}, DType::BF16)), Error);  // residual dtype
  EXPECT_THROW(linear(ctx, out, Tensor::zeros({2, 2, 3}, DType::F32), weight), Error);             // x not 2-D
  Tensor small = Tensor::zeros({4, 4}, DType::F32);
  EXPECT_THROW(linear(ctx, small, x, weight), Error);  // out shape
}

}  // namespace
}  // namespace anvil::testing
