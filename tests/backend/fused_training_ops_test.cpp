// The fused training ops (linear_gelu, linear_gelu_input_grad, linear_weight_grad,
// layer_norm_backward_residual, cross_entropy_fused) against float64, every backend. The
// CPU runs the Backend defaults (the plain ops composed); CUDA runs the cuBLASLt epilogues
// (GELU_AUX_BIAS, DGELU, BGRADB) and the one-pass kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <optional>

#include "anvil/ops/cross_entropy.h"
#include "anvil/ops/layer_norm.h"
#include "anvil/ops/matmul.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2 / pi)

double gelu_reference(double x) { return 0.5 * x * (1.0 + std::tanh(kGeluScale * (x + 0.044715 * x * x * x))); }

double gelu_derivative(double x) {
  const double inner = kGeluScale * (x + 0.044715 * x * x * x);
  const double t = std::tanh(inner);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kGeluScale * (1.0 + 3.0 * 0.044715 * x * x);
}

struct GemmCase {
  int64_t rows, out_features, in_features;
};

// Aligned tiles (the epilogue paths) and odd sizes (cuBLASLt may refuse: composed).
const std::vector<GemmCase> kGemmCases = {{5, 3, 7}, {64, 96, 48}, {33, 40, 17}, {128, 512, 256}};

// (rows, cols) row-major product a (rows, inner) @ b (inner, cols) in float64; b_transposed:
// b stored (cols, inner).
HostArray product(const HostArray& a, const HostArray& b, int64_t rows, int64_t inner, int64_t cols,
                  bool b_transposed) {
  HostArray out{{rows, cols}, std::vector<double>(static_cast<size_t>(rows * cols))};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      double sum = 0.0;
      for (int64_t i = 0; i < inner; ++i) sum += a[r * inner + i] * (b_transposed ? b[c * inner + i] : b[i * cols + c]);
      out[r * cols + c] = sum;
    }
  }
  return out;
}

Tolerance gemm_tolerance(DType dtype, int64_t inner) {
  Tolerance tolerance = tolerance_for(dtype);
  tolerance.atol_scale = std::max(1.0, std::sqrt(static_cast<double>(inner)) / 8.0);
  return tolerance;
}

TEST(OpLinearGelu, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      for (const GemmCase& c : kGemmCases) {
        // Bias: none, out's dtype (the epilogue on CUDA), f32 (composed for bf16 out).
        for (const std::optional<DType> bias_dtype :
             {std::optional<DType>(), std::optional(dtype), std::optional(DType::F32)}) {
          SCOPED_TRACE(case_label(dtype, device, {c.rows, c.out_features, c.in_features}) +
                       " bias=" + (bias_dtype ? std::string(dtype_name(*bias_dtype)) : "none"));
          HostArray x = random_array({c.rows, c.in_features}, rng);
          HostArray weight = random_array({c.out_features, c.in_features}, rng);
          HostArray bias = random_array({c.out_features}, rng);
          const Tensor x_tensor = make_tensor(ctx, x, dtype, device);
          const Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
          const Tensor bias_tensor = bias_dtype ? make_tensor(ctx, bias, *bias_dtype, device) : Tensor();
          Tensor out = ctx.empty({c.rows, c.out_features}, dtype, device);
          Tensor pre = ctx.empty({c.rows, c.out_features}, dtype, device);
          linear_gelu(ctx, out, pre, x_tensor, weight_tensor, bias_tensor);
          HostArray pre_ref = product(x, weight, c.rows, c.in_features, c.out_features, true);
          for (int64_t r = 0; r < c.rows; ++r) {
            for (int64_t o = 0; bias_dtype && o < c.out_features; ++o) pre_ref[r * c.out_features + o] += bias[o];
          }
          HostArray out_ref = pre_ref;
          for (double& value : out_ref.values) value = gelu_reference(value);
          const Tolerance tolerance = gemm_tolerance(dtype, c.in_features);
          expect_close(to_host(ctx, pre), pre_ref, tolerance, "pre");
          expect_close(to_host(ctx, out), out_ref, tolerance, "out");
        }
      }
    }
  }
}

TEST(OpLinearGeluInputGrad, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      // Here the GEMM is dout (N, O) @ weight (O, F): O = in_features, F = out_features.
      for (const GemmCase& c : kGemmCases) {
        for (const bool with_bias : {true, false}) {
          SCOPED_TRACE(case_label(dtype, device, {c.rows, c.out_features, c.in_features}) +
                       (with_bias ? " with dbias" : " no dbias"));
          HostArray dout = random_array({c.rows, c.in_features}, rng);
          HostArray weight = random_array({c.in_features, c.out_features}, rng);
          HostArray pre = random_array({c.rows, c.out_features}, rng, -4.0, 4.0);
          HostArray dbias = random_array({c.out_features}, rng);
          const Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
          const Tensor weight_tensor = make_tensor(ctx, weight, dtype, device);
          const Tensor pre_tensor = make_tensor(ctx, pre, dtype, device);
          Tensor dbias_tensor = with_bias ? make_tensor(ctx, dbias, DType::F32, device) : Tensor();
          Tensor dpre = ctx.empty({c.rows, c.out_features}, dtype, device);
          linear_gelu_input_grad(ctx, dpre, dbias_tensor, dout_tensor, weight_tensor, pre_tensor);
          HostArray ref = product(dout, weight, c.rows, c.in_features, c.out_features, false);
          for (int64_t i = 0; i < ref.numel(); ++i) ref[i] *= gelu_derivative(pre[i]);
          for (int64_t i = 0; i < ref.numel(); ++i) dbias[i % c.out_features] += ref[i];
          Tolerance tolerance = gemm_tolerance(dtype, c.in_features);
          // bf16: the product may be rounded before the multiply (CPU), or the derivative
          // approximated to ~3e-3 (cuBLASLt's DGELU epilogue).
          if (dtype == DType::BF16) tolerance.rtol *= 2.0;
          expect_close(to_host(ctx, dpre), ref, tolerance, "dpre");
          // The sums of dpre as computed (f32 before rounding on CUDA, the rounded dpre on the CPU).
          Tolerance sum_tolerance = gemm_tolerance(dtype, c.rows);
          if (dtype == DType::BF16) sum_tolerance.rtol *= 2.0;
          if (with_bias) expect_close(to_host(ctx, dbias_tensor), dbias, sum_tolerance, "dbias");
        }
      }
    }
  }
}

TEST(OpLinearWeightGrad, AccumulatesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : {DType::F32, DType::BF16}) {
      for (const GemmCase& c : kGemmCases) {
        for (const bool with_bias : {true, false}) {
          SCOPED_TRACE(case_label(dtype, device, {c.rows, c.out_features, c.in_features}) +
                       (with_bias ? " with dbias" : " no dbias"));
          HostArray dout = random_array({c.rows, c.out_features}, rng);
          HostArray x = random_array({c.rows, c.in_features}, rng);
          HostArray dweight = random_array({c.out_features, c.in_features}, rng);
          HostArray dbias = random_array({c.out_features}, rng);
          const Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
          const Tensor x_tensor = make_tensor(ctx, x, dtype, device);
          Tensor dweight_tensor = make_tensor(ctx, dweight, DType::F32, device);
          Tensor dbias_tensor = with_bias ? make_tensor(ctx, dbias, DType::F32, device) : Tensor();
          linear_weight_grad(ctx, dweight_tensor, dbias_tensor, dout_tensor, x_tensor);
          HostArray dweight_ref{dweight.shape, dweight.values};
          HostArray dbias_ref{dbias.shape, dbias.values};
          for (int64_t n = 0; n < c.rows; ++n) {
            for (int64_t o = 0; o < c.out_features; ++o) {
              const double g = dout[n * c.out_features + o];
              dbias_ref[o] += g;
              for (int64_t i = 0; i < c.in_features; ++i)
                dweight_ref[o * c.in_features + i] += g * x[n * c.in_features + i];
            }
          }
          const Tolerance tolerance = gemm_tolerance(DType::F32, c.rows);
          expect_close(to_host(ctx, dweight_tensor), dweight_ref, tolerance, "dweight");
          if (with_bias) expect_close(to_host(ctx, dbias_tensor), dbias_ref, tolerance, "dbias");
        }
      }
    }
  }
}

TEST(OpLayerNormBackwardResidual, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  // (40, 768): GPT-2's width (the one-pass kernel); 257 columns: composed on CUDA.
  const std::vector<Shape> shapes = {{3, 7}, {17, 64}, {40, 768}, {5, 257}, {130, 128}};
  for (const Device device : test_devices(ctx)) {
    for (const Shape& shape : shapes) {
      for (const bool with_low : {true, false}) {
        // dres_sums alongside dres_low (the bf16 training path) and left out without it.
        const bool with_sums = with_low;
        SCOPED_TRACE(case_label(DType::F32, device, shape) + (with_low ? " with dres_low and dres_sums" : " f32 only"));
        const int64_t rows = shape[0];
        const int64_t channels = shape[1];
        HostArray x = random_array(shape, rng, -2.0, 2.0);
        HostArray dout = random_array(shape, rng);
        HostArray weight = random_array({channels}, rng, 0.5, 1.5);
        HostArray dres = random_array(shape, rng, -3.0, 3.0);
        HostArray dweight = random_array({channels}, rng);
        HostArray dbias = random_array({channels}, rng);
        HostArray dres_sums = random_array({channels}, rng);
        HostArray mean{{rows}, std::vector<double>(static_cast<size_t>(rows))};
        HostArray rstd{{rows}, std::vector<double>(static_cast<size_t>(rows))};
        for (int64_t r = 0; r < rows; ++r) {
          double sum = 0.0, squares = 0.0;
          for (int64_t c = 0; c < channels; ++c) sum += x[r * channels + c];
          mean[r] = sum / static_cast<double>(channels);
          for (int64_t c = 0; c < channels; ++c) squares += std::pow(x[r * channels + c] - mean[r], 2);
          rstd[r] = 1.0 / std::sqrt(squares / static_cast<double>(channels) + 1e-5);
        }
        const Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
        const Tensor dout_tensor = make_tensor(ctx, dout, DType::F32, device);
        const Tensor weight_tensor = make_tensor(ctx, weight, DType::F32, device);
        const Tensor mean_tensor = make_tensor(ctx, mean, DType::F32, device);
        const Tensor rstd_tensor = make_tensor(ctx, rstd, DType::F32, device);
        Tensor dres_tensor = make_tensor(ctx, dres, DType::F32, device);
        Tensor dres_low = with_low ? ctx.empty(shape, DType::BF16, device) : Tensor();
        Tensor dweight_tensor = make_tensor(ctx, dweight, DType::F32, device);
        Tensor dbias_tensor = make_tensor(ctx, dbias, DType::F32, device);
        Tensor sums_tensor = with_sums ? make_tensor(ctx, dres_sums, DType::F32, device) : Tensor();
        layer_norm_backward_residual(ctx, dres_tensor, dres_low, dweight_tensor, dbias_tensor, sums_tensor, dout_tensor,
                                     x_tensor, weight_tensor, mean_tensor, rstd_tensor);
        // dx = rstd * (g w - mean(g w) - xhat * mean(g w xhat)), xhat = (x - mean) * rstd.
        for (int64_t r = 0; r < rows; ++r) {
          double mean_gw = 0.0, mean_gw_xhat = 0.0;
          for (int64_t c = 0; c < channels; ++c) {
            const double xhat = (x[r * channels + c] - mean[r]) * rstd[r];
            const double gw = dout[r * channels + c] * weight[c];
            mean_gw += gw / static_cast<double>(channels);
            mean_gw_xhat += gw * xhat / static_cast<double>(channels);
            dweight[c] += dout[r * channels + c] * xhat;
            dbias[c] += dout[r * channels + c];
          }
          for (int64_t c = 0; c < channels; ++c) {
            const double xhat = (x[r * channels + c] - mean[r]) * rstd[r];
            dres[r * channels + c] += rstd[r] * (dout[r * channels + c] * weight[c] - mean_gw - xhat * mean_gw_xhat);
            dres_sums[c] += dres[r * channels + c];
          }
        }
        Tolerance tolerance = tolerance_for(DType::F32);
        tolerance.rtol = 1e-4;  // dx cancels between its three terms
        expect_close(to_host(ctx, dres_tensor), dres, tolerance, "dres");
        if (with_low) expect_close(to_host(ctx, dres_low), dres, tolerance_for(DType::BF16), "dres_low");
        expect_close(to_host(ctx, dweight_tensor), dweight, gemm_tolerance(DType::F32, rows), "dweight");
        expect_close(to_host(ctx, dbias_tensor), dbias, gemm_tolerance(DType::F32, rows), "dbias");
        if (with_sums)
          expect_close(to_host(ctx, sums_tensor), dres_sums, gemm_tolerance(DType::F32, rows), "dres_sums");
      }
    }
  }
}

TEST(OpCrossEntropyFused, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  // CUDA, bf16 / f16: 50304 (GPT-2's padded vocabulary) and 32768 take the one-pass kernel with
  // the row staged in shared memory, 1024 the register-cached one; f32: 1024 and 32768 the
  // register-cached one, 50304 two passes; 70000: two passes for every dtype; 1001, 33, 7: the
  // scalar kernels.
  const std::vector<Shape> shapes = {{3, 7}, {5, 33}, {6, 1001}, {4, 1024}, {5, 32768}, {3, 50304}, {2, 70000}};
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const Shape& shape : shapes) {
        for (const bool aliased : {false, true}) {
          SCOPED_TRACE(case_label(dtype, device, shape) + (aliased ? " dlogits = logits" : " separate"));
          const int64_t rows = shape[0];
          const int64_t vocab = shape[1];
          HostArray logits = random_array(shape, rng, -20.0, 20.0);
          HostArray targets = random_ints({rows}, rng, 0, vocab);
          targets[1] = -1.0;  // ignored
          HostArray dlosses = random_array({rows}, rng, 0.5, 2.0);
          Tensor logits_tensor = make_tensor(ctx, logits, dtype, device);
          const Tensor targets_tensor = make_tensor_exact(ctx, targets, DType::I32, device);
          const Tensor dlosses_tensor = make_tensor(ctx, dlosses, DType::F32, device);
          Tensor losses = ctx.empty({rows}, DType::F32, device);
          Tensor dlogits = aliased ? logits_tensor : ctx.empty(shape, dtype, device);
          cross_entropy_fused(ctx, losses, dlogits, dlosses_tensor, logits_tensor, targets_tensor);
          HostArray losses_ref{{rows}, std::vector<double>(static_cast<size_t>(rows), 0.0)};
          HostArray dlogits_ref{shape, std::vector<double>(logits.values.size(), 0.0)};
          for (int64_t r = 0; r < rows; ++r) {
            if (targets[r] < 0) continue;
            const double* in = logits.values.data() + r * vocab;
            double row_max = in[0];
            for (int64_t v = 1; v < vocab; ++v) row_max = std::max(row_max, in[v]);
            double sum = 0.0;
            for (int64_t v = 0; v < vocab; ++v) sum += std::exp(in[v] - row_max);
            const auto target = static_cast<int64_t>(targets[r]);
            losses_ref[r] = row_max + std::log(sum) - in[target];
            for (int64_t v = 0; v < vocab; ++v) {
              dlogits_ref[r * vocab + v] = (std::exp(in[v] - row_max) / sum - (v == target ? 1.0 : 0.0)) * dlosses[r];
            }
          }
          expect_close(to_host(ctx, losses), losses_ref, tolerance_for(DType::F32), "losses");
          Tolerance tolerance = gradient_tolerance(dtype);
          expect_close(to_host(ctx, dlogits), dlogits_ref, tolerance, "dlogits");
        }
      }
    }
  }
}

TEST(OpFusedTraining, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  const Tensor x = Tensor::zeros({4, 3}, DType::F32);
  const Tensor weight = Tensor::zeros({5, 3}, DType::F32);
  Tensor out = Tensor::zeros({4, 5}, DType::F32);
  Tensor pre = Tensor::zeros({4, 5}, DType::F32);
  Tensor pre_bf16 = Tensor::zeros({4, 5}, DType::BF16);
  EXPECT_THROW(linear_gelu(ctx, out, pre_bf16, x, weight), Error);  // pre's dtype differs from out's
  EXPECT_THROW(linear_gelu(ctx, out, out, x, weight), Error);       // out aliases pre
  EXPECT_THROW(linear_gelu(ctx, out, pre, x, weight, Tensor::zeros({4}, DType::F32)), Error);  // bias length
  Tensor dpre = Tensor::zeros({4, 3}, DType::F32);
  Tensor no_bias;
  EXPECT_THROW(linear_gelu_input_grad(ctx, dpre, no_bias, out, weight, Tensor::zeros({4, 5}, DType::F32)),
               Error);  // pre shape
  Tensor dweight = Tensor::zeros({5, 3}, DType::F32);
  Tensor dbias = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(linear_weight_grad(ctx, dweight, dbias, out, x), Error);  // dbias length
  Tensor dweight_bf16 = Tensor::zeros({5, 3}, DType::BF16);
  Tensor none;
  EXPECT_THROW(linear_weight_grad(ctx, dweight_bf16, none, out, x), Error);  // dweight not f32
  Tensor dres = Tensor::zeros({4, 3}, DType::F32);
  Tensor low_f32 = Tensor::zeros({4, 3}, DType::F32);
  const Tensor stats = Tensor::zeros({4}, DType::F32);
  const Tensor gain = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(layer_norm_backward_residual(ctx, dres, low_f32, none, none, none, x, x, gain, stats, stats), Error);
  Tensor sums_too_long = Tensor::zeros({4}, DType::F32);
  Tensor low = Tensor::zeros({4, 3}, DType::BF16);
  EXPECT_THROW(layer_norm_backward_residual(ctx, dres, low, none, none, sums_too_long, x, x, gain, stats, stats),
               Error);  // dres_sums not (C)
  Tensor logits = Tensor::zeros({4, 8}, DType::F32);
  Tensor losses = Tensor::zeros({4}, DType::F32);
  const Tensor targets = Tensor::zeros({4}, DType::I32);
  Tensor bf16_dlogits = Tensor::zeros({4, 8}, DType::BF16);
  EXPECT_THROW(cross_entropy_fused(ctx, losses, bf16_dlogits, losses, logits, targets), Error);  // f32 logits
  Tensor short_losses = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(cross_entropy_fused(ctx, short_losses, logits, losses, logits, targets), Error);
}

}  // namespace
}  // namespace anvil::testing
