// RMSNorm: forward against float64, backward against finite differences, every backend.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/ops/elementwise.h"
#include "anvil/ops/rms_norm.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

constexpr double kEps = 1e-5;

// y[r, c] = x[r, c] / sqrt(mean_c(x[r]^2) + eps) * w[c], in float64.
HostArray rms_norm_reference(const HostArray& x, const HostArray& weight) {
  const int64_t channels = weight.numel();
  HostArray y{x.shape, std::vector<double>(x.values.size())};
  for (int64_t row = 0; row < x.numel() / channels; ++row) {
    double sum_squares = 0.0;
    for (int64_t c = 0; c < channels; ++c) sum_squares += x[row * channels + c] * x[row * channels + c];
    const double inv_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(channels) + kEps);
    for (int64_t c = 0; c < channels; ++c) y[row * channels + c] = x[row * channels + c] * inv_rms * weight[c];
  }
  return y;
}

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {17, 64}, {5, 257}, {2, 3, 33}};

TEST(OpRmsNorm, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        Tensor rstd = ctx.empty({x.numel() / shape.back()}, DType::F32, device);
        rms_norm(ctx, out, rstd, x_tensor, weight_tensor, static_cast<float>(kEps));
        expect_close(to_host(ctx, out), rms_norm_reference(x, weight), tolerance_for(dtype), "out");
      }
    }
  }
}

// f32 rows and gains normalised into bf16 (mixed-precision training; the CUDA vector kernel
// stores 4 bf16 per 4 f32 lanes). {40, 768}: rows of whole vectors.
TEST(OpRmsNorm, F32RowsIntoBf16Output) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const Shape& shape : {Shape{3, 7}, Shape{17, 64}, Shape{40, 768}}) {
      SCOPED_TRACE(case_label(DType::BF16, device, shape));
      HostArray x = random_array(shape, rng, -2.0, 2.0);
      HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
      Tensor out = ctx.empty(shape, DType::BF16, device);
      Tensor rstd = ctx.empty({x.numel() / shape.back()}, DType::F32, device);
      rms_norm(ctx, out, rstd, make_tensor(ctx, x, DType::F32, device), make_tensor(ctx, weight, DType::F32, device),
               static_cast<float>(kEps));
      // One bf16 rounding of an f32-exact value: 2^-8 relative.
      expect_close(to_host(ctx, out), rms_norm_reference(x, weight), {4e-3, 1e-6}, "out");
    }
  }
}

TEST(OpRmsNorm, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      // {19, 64}: rows of whole 16-byte vectors, several rows per block (the CUDA fast path).
      for (const Shape& shape : {Shape{1, 1}, Shape{3, 7}, Shape{4, 33}, Shape{19, 64}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        const int64_t channels = shape.back();
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray weight = random_array({channels}, rng, 0.5, 1.5);
        HostArray dout = random_array(shape, rng);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        Tensor rstd = ctx.empty({x.numel() / channels}, DType::F32, device);
        rms_norm(ctx, out, rstd, x_tensor, weight_tensor, static_cast<float>(kEps));
        Tensor dx = ctx.empty(shape, dtype, device);
        HostArray dweight_start = random_array({channels}, rng);  // backward accumulates into it
        Tensor dweight = make_tensor(ctx, dweight_start, DType::F32, device);
        rms_norm_backward(ctx, dx, dweight, dout_tensor, x_tensor, weight_tensor, rstd);

        const HostArray dx_ref =
            finite_difference([&](const HostArray& probe) { return rms_norm_reference(probe, weight); }, x, dout);
        HostArray dweight_ref =
            finite_difference([&](const HostArray& probe) { return rms_norm_reference(x, probe); }, weight, dout);
        for (int64_t c = 0; c < channels; ++c) dweight_ref[c] += dweight_start[c];
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dx), dx_ref, tolerance, "dx");
        expect_close(to_host(ctx, dweight), dweight_ref, tolerance, "dweight");
      }
    }
  }
}

// add_rms_norm: x += delta (rounded to x's dtype), out = rms_norm(x) * w; against float64,
// with rows as long as a model's (4096), longer than the GPU keeps in registers (5000: 8
// per thread of 512), and odd ones.
TEST(OpAddRmsNorm, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape :
           {Shape{1, 4096}, Shape{3, 4096}, Shape{1, 5000}, Shape{5, 257}, Shape{2, 3, 33}, Shape{1, 1}}) {
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray delta = random_array(shape, rng, -2.0, 2.0);
        HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        const Tensor delta_tensor = make_tensor(ctx, delta, dtype, device);
        const Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
        Tensor out = ctx.empty(shape, dtype, device);
        add_rms_norm(ctx, out, x_tensor, delta_tensor, weight_tensor, static_cast<float>(kEps));
        HostArray sum = x;
        for (int64_t i = 0; i < sum.numel(); ++i) sum[i] = x[i] + delta[i];
        round_to(sum, dtype);
        expect_close(to_host(ctx, x_tensor), sum, tolerance_for(dtype), "x");
        expect_close(to_host(ctx, out), rms_norm_reference(sum, weight), tolerance_for(dtype), "out");
      }
    }
  }
}

// A decode step's add_rms_norm: f32 stream, delta and out with the norm weights as the model
// stores them (bf16 / f16 / f32), rows of a whole number of 8-element groups (the CUDA vector
// kernel: 1, 2 and 4 groups per thread) and not (5000 = 625 groups is; 4100 is not).
TEST(OpAddRmsNorm, F32RowsWithStoredWeightsMatchFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType weight_dtype : float_dtypes()) {
      for (const Shape& shape : {Shape{1, 576}, Shape{1, 4096}, Shape{2, 8192}, Shape{1, 5000}, Shape{1, 4100}}) {
        SCOPED_TRACE(case_label(weight_dtype, device, shape));
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray delta = random_array(shape, rng, -2.0, 2.0);
        HostArray weight = random_array({shape.back()}, rng, 0.5, 1.5);
        Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
        const Tensor delta_tensor = make_tensor(ctx, delta, DType::F32, device);
        const Tensor weight_tensor = make_tensor(ctx, weight, weight_dtype, device);
        Tensor out = ctx.empty(shape, DType::F32, device);
        add_rms_norm(ctx, out, x_tensor, delta_tensor, weight_tensor, static_cast<float>(kEps));
        HostArray sum = x;
        for (int64_t i = 0; i < sum.numel(); ++i) sum[i] = x[i] + delta[i];
        round_to(sum, DType::F32);
        expect_close(to_host(ctx, x_tensor), sum, tolerance_for(DType::F32), "x");
        expect_close(to_host(ctx, out), rms_norm_reference(sum, weight), tolerance_for(DType::F32), "out");
      }
    }
  }
}

// On the CPU the fused op is add then rms_norm, bit for bit (the CPU model's numbers must
// not move when the model switches to it).
TEST(OpAddRmsNorm, CpuEqualsAddThenRmsNorm) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const DType dtype : float_dtypes()) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    HostArray x = random_array({3, 576}, rng, -2.0, 2.0);
    HostArray delta = random_array({3, 576}, rng, -2.0, 2.0);
    HostArray weight = random_array({576}, rng, 0.5, 1.5);
    Tensor fused_x = make_tensor(ctx, x, dtype, Device::cpu());
    Tensor split_x = make_tensor(ctx, x, dtype, Device::cpu());
    const Tensor delta_tensor = make_tensor(ctx, delta, dtype, Device::cpu());
    const Tensor weight_tensor = make_tensor(ctx, weight, dtype, Device::cpu());
    Tensor fused = ctx.empty({3, 576}, dtype, Device::cpu());
    Tensor split = ctx.empty({3, 576}, dtype, Device::cpu());
    Tensor none;
    add_rms_norm(ctx, fused, fused_x, delta_tensor, weight_tensor, 1e-5F);
    add(ctx, split_x, split_x, delta_tensor);
    rms_norm(ctx, split, none, split_x, weight_tensor, 1e-5F);
    EXPECT_EQ(to_host(ctx, fused).values, to_host(ctx, split).values);
    EXPECT_EQ(to_host(ctx, fused_x).values, to_host(ctx, split_x).values);
  }
}

TEST(OpRmsNorm, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({4, 8}, DType::F32);
  Tensor weight = Tensor::zeros({7}, DType::F32);
  Tensor out = Tensor::zeros({4, 8}, DType::F32);
  Tensor rstd;
  EXPECT_THROW(rms_norm(ctx, out, rstd, x, weight, 1e-5F), Error);
  Tensor ids = Tensor::zeros({4, 8}, DType::I32);
  Tensor good_weight = Tensor::zeros({8}, DType::F32);
  EXPECT_THROW(rms_norm(ctx, out, rstd, ids, good_weight, 1e-5F), Error);
  Tensor short_delta = Tensor::zeros({4, 7}, DType::F32);
  EXPECT_THROW(add_rms_norm(ctx, out, x, short_delta, good_weight, 1e-5F), Error);
}

}  // namespace
}  // namespace anvil::testing
