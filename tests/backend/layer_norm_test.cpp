// LayerNorm: forward against float64, backward against finite differences, every backend.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/ops/layer_norm.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

constexpr double kEps = 1e-5;

// y[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * w[c] + b[c] (no bias when `bias` is empty),
// in float64. Also returns each row's mean and 1/sqrt(var + eps) when asked.
HostArray layer_norm_reference(const HostArray& x, const HostArray& weight, const HostArray* bias,
                               HostArray* means = nullptr, HostArray* rstds = nullptr) {
  const int64_t channels = weight.numel();
  const int64_t rows = x.numel() / channels;
  HostArray y{x.shape, std::vector<double>(x.values.size())};
  if (means != nullptr) *means = HostArray{{rows}, std::vector<double>(static_cast<size_t>(rows))};
  if (rstds != nullptr) *rstds = HostArray{{rows}, std::vector<double>(static_cast<size_t>(rows))};
  for (int64_t row = 0; row < rows; ++row) {
    double mean = 0.0;
    for (int64_t c = 0; c < channels; ++c) mean += x[row * channels + c];
    mean /= static_cast<double>(channels);
    double variance = 0.0;
    for (int64_t c = 0; c < channels; ++c) variance += (x[row * channels + c] - mean) * (x[row * channels + c] - mean);
    variance /= static_cast<double>(channels);
    const double inv_std = 1.0 / std::sqrt(variance + kEps);
    for (int64_t c = 0; c < channels; ++c) {
      const double shift = bias != nullptr ? (*bias)[c] : 0.0;
      y[row * channels + c] = (x[row * channels + c] - mean) * inv_std * weight[c] + shift;
    }
    if (means != nullptr) (*means)[row] = mean;
    if (rstds != nullptr) (*rstds)[row] = inv_std;
  }
  return y;
}

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {17, 64}, {5, 257}, {2, 3, 33}, {40, 9}};

TEST(OpLayerNorm, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        const int64_t channels = shape.back();
        const int64_t rows = shape_numel(shape) / channels;
        // An offset mean: the kernel must not lose the variance to cancellation.
        HostArray x = random_array(shape, rng, 1.0, 4.0);
        HostArray weight = random_array({channels}, rng, 0.5, 1.5);
        HostArray bias = random_array({channels}, rng, -1.0, 1.0);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
        Tensor bias_tensor = make_tensor(ctx, bias, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        Tensor mean = ctx.empty({rows}, DType::F32, device);
        Tensor rstd = ctx.empty({rows}, DType::F32, device);
        layer_norm(ctx, out, mean, rstd, x_tensor, weight_tensor, bias_tensor, static_cast<float>(kEps));
        HostArray mean_ref;
        HostArray rstd_ref;
        const HostArray out_ref = layer_norm_reference(x, weight, &bias, &mean_ref, &rstd_ref);
        expect_close(to_host(ctx, out), out_ref, tolerance_for(dtype), "out");
        expect_close(to_host(ctx, mean), mean_ref, tolerance_for(DType::F32), "mean");
        // rstd of a row of one element is 1/sqrt(eps): f32 precision of that is all we ask.
        expect_close(to_host(ctx, rstd), rstd_ref, {1e-5, 0.0}, "rstd");
      }
    }
  }
}

// f32 rows, gains and biases normalised into bf16 (mixed-precision training; the CUDA vector
// kernel stores 4 bf16 per 4 f32 lanes). {40, 768}: GPT-2's width, rows of whole vectors.
TEST(OpLayerNorm, F32RowsIntoBf16Output) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const Shape& shape : {Shape{3, 7}, Shape{17, 64}, Shape{40, 768}}) {
      SCOPED_TRACE(case_label(DType::BF16, device, shape));
      const int64_t rows = shape_numel(shape) / shape.back();
      HostArray x = random_array(shape, rng, 1.0, 4.0);
      HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
      HostArray bias = random_array({shape.back()}, rng, -1.0, 1.0);
      Tensor out = ctx.empty(shape, DType::BF16, device);
      Tensor mean = ctx.empty({rows}, DType::F32, device);
      Tensor rstd = ctx.empty({rows}, DType::F32, device);
      layer_norm(ctx, out, mean, rstd, make_tensor(ctx, x, DType::F32, device),
                 make_tensor(ctx, weight, DType::F32, device), make_tensor(ctx, bias, DType::F32, device),
                 static_cast<float>(kEps));
      HostArray mean_ref;
      HostArray rstd_ref;
      const HostArray out_ref = layer_norm_reference(x, weight, &bias, &mean_ref, &rstd_ref);
      // One bf16 rounding of an f32-exact value: 2^-8 relative.
      expect_close(to_host(ctx, out), out_ref, {4e-3, 1e-6}, "out");
      expect_close(to_host(ctx, rstd), rstd_ref, {1e-5, 0.0}, "rstd");
    }
  }
}

TEST(OpLayerNorm, ForwardWithoutBiasOrSavedStats) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      const Shape shape = {6, 45};
      SCOPED_TRACE(case_label(dtype, device, shape));
      HostArray x = random_array(shape, rng, -2.0, 2.0);
      HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
      Tensor x_tensor = make_tensor(ctx, x, dtype, device);
      Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
      Tensor out = ctx.empty(shape, dtype, device);
      Tensor none;
      layer_norm(ctx, out, none, none, x_tensor, weight_tensor, none, static_cast<float>(kEps));
      expect_close(to_host(ctx, out), layer_norm_reference(x, weight, nullptr), tolerance_for(dtype), "out");
    }
  }
}

TEST(OpLayerNorm, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      // {19, 64}: rows of whole 16-byte vectors, several rows per block (the CUDA fast path).
      for (const Shape& shape : {Shape{1, 1}, Shape{3, 7}, Shape{4, 33}, Shape{37, 5}, Shape{19, 64}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        const int64_t channels = shape.back();
        const int64_t rows = shape_numel(shape) / channels;
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray weight = random_array({channels}, rng, 0.5, 1.5);
        HostArray bias = random_array({channels}, rng, -1.0, 1.0);
        HostArray dout = random_array(shape, rng);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
        Tensor bias_tensor = make_tensor(ctx, bias, dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        Tensor mean = ctx.empty({rows}, DType::F32, device);
        Tensor rstd = ctx.empty({rows}, DType::F32, device);
        layer_norm(ctx, out, mean, rstd, x_tensor, weight_tensor, bias_tensor, static_cast<float>(kEps));
        Tensor dx = ctx.empty(shape, dtype, device);
        HostArray dweight_start = random_array({channels}, rng);  // backward accumulates into these
        HostArray dbias_start = random_array({channels}, rng);
        Tensor dweight = make_tensor(ctx, dweight_start, DType::F32, device);
        Tensor dbias = make_tensor(ctx, dbias_start, DType::F32, device);
        layer_norm_backward(ctx, dx, dweight, dbias, dout_tensor, x_tensor, weight_tensor, mean, rstd);

        const HostArray dx_ref = finite_difference(
            [&](const HostArray& probe) { return layer_norm_reference(probe, weight, &bias); }, x, dout);
        HostArray dweight_ref = finite_difference(
            [&](const HostArray& probe) { return layer_norm_reference(x, probe, &bias); }, weight, dout);
        HostArray dbias_ref = finite_difference(
            [&](const HostArray& probe) { return layer_norm_reference(x, weight, &probe); }, bias, dout);
        for (int64_t c = 0; c < channels; ++c) {
          dweight_ref[c] += dweight_start[c];
          dbias_ref[c] += dbias_start[c];
        }
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dx), dx_ref, tolerance, "dx");
        expect_close(to_host(ctx, dweight), dweight_ref, tolerance, "dweight");
        expect_close(to_host(ctx, dbias), dbias_ref, tolerance, "dbias");
      }
    }
  }
}

TEST(OpLayerNorm, BackwardWithoutParameterGradients) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    const Shape shape = {5, 19};
    SCOPED_TRACE(case_label(DType::F32, device, shape));
    HostArray x = random_array(shape, rng, -2.0, 2.0);
    HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
    HostArray dout = random_array(shape, rng);
    Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
    Tensor weight_tensor = make_tensor(ctx, weight, DType::F32, device);
    Tensor dout_tensor = make_tensor(ctx, dout, DType::F32, device);
    Tensor out = ctx.empty(shape, DType::F32, device);
    Tensor mean = ctx.empty({shape[0]}, DType::F32, device);
    Tensor rstd = ctx.empty({shape[0]}, DType::F32, device);
    Tensor none;
    layer_norm(ctx, out, mean, rstd, x_tensor, weight_tensor, none, static_cast<float>(kEps));
    Tensor dx = ctx.empty(shape, DType::F32, device);
    layer_norm_backward(ctx, dx, none, none, dout_tensor, x_tensor, weight_tensor, mean, rstd);
    const HostArray dx_ref = finite_difference(
        [&](const HostArray& probe) { return layer_norm_reference(probe, weight, nullptr); }, x, dout);
    expect_close(to_host(ctx, dx), dx_ref, {1e-4, 1e-6}, "dx");
  }
}

TEST(OpLayerNorm, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({4, 8}, DType::F32);
  Tensor weight = Tensor::zeros({8}, DType::F32);
  Tensor out = Tensor::zeros({4, 8}, DType::F32);
  Tensor none;
  Tensor short_weight = Tensor::zeros({7}, DType::F32);
  EXPECT_THROW(layer_norm(ctx, out, none, none, x, short_weight, none, 1e-5F), Error);
  Tensor short_bias = Tensor::zeros({7}, DType::F32);
  EXPECT_THROW(layer_norm(ctx, out, none, none, x, weight, short_bias, 1e-5F), Error);
  Tensor ids = Tensor::zeros({4, 8}, DType::I32);
  EXPECT_THROW(layer_norm(ctx, out, none, none, ids, weight, none, 1e-5F), Error);
  Tensor wrong_out = Tensor::zeros({4, 7}, DType::F32);
  EXPECT_THROW(layer_norm(ctx, wrong_out, none, none, x, weight, none, 1e-5F), Error);
  Tensor bf16_mean = Tensor::zeros({4}, DType::BF16);
  EXPECT_THROW(layer_norm(ctx, out, bf16_mean, none, x, weight, none, 1e-5F), Error);
  Tensor long_rstd = Tensor::zeros({5}, DType::F32);
  EXPECT_THROW(layer_norm(ctx, out, none, long_rstd, x, weight, none, 1e-5F), Error);

  Tensor mean = Tensor::zeros({4}, DType::F32);
  Tensor rstd = Tensor::zeros({4}, DType::F32);
  Tensor dx = Tensor::zeros({4, 8}, DType::F32);
  Tensor dweight = Tensor::zeros({8}, DType::F32);
  // Backward needs the saved statistics, and parameter gradients in f32.
  EXPECT_THROW(layer_norm_backward(ctx, dx, dweight, none, out, x, weight, none, rstd), Error);
  Tensor bf16_dweight = Tensor::zeros({8}, DType::BF16);
  EXPECT_THROW(layer_norm_backward(ctx, dx, bf16_dweight, none, out, x, weight, mean, rstd), Error);
  Tensor short_dbias = Tensor::zeros({7}, DType::F32);
  EXPECT_THROW(layer_norm_backward(ctx, dx, dweight, short_dbias, out, x, weight, mean, rstd), Error);
  Tensor wrong_dout = Tensor::zeros({4, 9}, DType::F32);
  EXPECT_THROW(layer_norm_backward(ctx, dx, dweight, none, wrong_dout, x, weight, mean, rstd), Error);
}

}  // namespace
}  // namespace anvil::testing
