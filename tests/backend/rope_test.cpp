// Rotary position embedding: forward against float64 (both layouts, partial rotary, Linear and
// Llama 3 scaling, positions up to 131k), backward against finite differences, in place, and
// rope_inv_frequency against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <string>

#include "anvil/ops/rope.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// The rotary frequency of pair k, transcribed from HF transformers: inv_freq = 1 /
// base^(2k / rot_dim), then `_compute_llama3_parameters` for Llama 3. Linear scaling is not
// applied here: the reference divides positions instead.
double reference_inv_frequency(const RopeParams& params, int64_t rot_dim, int64_t k) {
  const double inv_freq = 1.0 / std::pow(static_cast<double>(params.base), static_cast<double>(2 * k) / rot_dim);
  if (params.scaling != RopeScaling::Llama3) return inv_freq;
  const auto old_context_len = static_cast<double>(params.original_max_position);
  const double low_freq_wavelen = old_context_len / params.low_freq_factor;
  const double high_freq_wavelen = old_context_len / params.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  const double inv_freq_llama = wavelen > low_freq_wavelen ? inv_freq / params.factor : inv_freq;
  const double smooth_factor =
      (old_context_len / wavelen - params.low_freq_factor) / (params.high_freq_factor - params.low_freq_factor);
  const double smoothed = (1.0 - smooth_factor) * inv_freq_llama / params.factor + smooth_factor * inv_freq_llama;
  const bool is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
  return is_medium ? smoothed : inv_freq_llama;
}

// x (N, H, D) rotated at positions (N) by direction * angle, in float64.
// RotateHalf as HF writes it: x * cos + rotate_half(x) * sin, with cos/sin repeated over both
// halves and rotate_half(x) = cat(-x2, x1). Interleaved as Meta writes it: consecutive pairs are
// complex numbers multiplied by e^(i angle). Dims past rot_dim pass through.
HostArray rope_reference(const HostArray& x, const HostArray& positions, const RopeParams& params,
                         double direction = 1.0) {
  const int64_t heads = x.shape[1];
  const int64_t head_dim = x.shape[2];
  const int64_t rot_dim = params.rot_dim == 0 ? head_dim : params.rot_dim;
  const int64_t half = rot_dim / 2;
  HostArray y = x;
  for (int64_t n = 0; n < x.shape[0]; ++n) {
    double position = positions[n];
    if (params.scaling == RopeScaling::Linear) position /= params.factor;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t base = (n * heads + h) * head_dim;
      for (int64_t d = 0; d < rot_dim; ++d) {
        const double angle = direction * position * reference_inv_frequency(params, rot_dim, d % half);
        if (params.layout == RopeLayout::RotateHalf) {
          const double rotated_half = d < half ? -x[base + d + half] : x[base + d - half];
          y[base + d] = x[base + d] * std::cos(angle) + rotated_half * std::sin(angle);
        } else if (d % 2 == 0) {
          const std::complex<double> value(x[base + d], x[base + d + 1]);
          const double pair_angle = direction * position * reference_inv_frequency(params, rot_dim, d / 2);
          const std::complex<double> turned = value * std::polar(1.0, pair_angle);
          y[base + d] = turned.real();
          y[base + d + 1] = turned.imag();
        }
      }
    }
  }
  return y;
}

struct RopeCase {
  std::string name;
  Shape shape;  // (N, H, D)
  RopeParams params;
  int64_t max_position;
};

RopeParams make_params(RopeLayout layout, int64_t rot_dim, float base = 10000.0F) {
  RopeParams params;
  params.layout = layout;
  params.rot_dim = rot_dim;
  params.base = base;
  return params;
}

RopeParams llama3_params() {
  RopeParams params = make_params(RopeLayout::RotateHalf, 0, 500000.0F);
  params.scaling = RopeScaling::Llama3;
  params.factor = 8.0F;
  params.low_freq_factor = 1.0F;
  params.high_freq_factor = 4.0F;
  params.original_max_position = 8192;
  return params;
}

std::vector<RopeCase> forward_cases() {
  RopeParams linear = make_params(RopeLayout::RotateHalf, 0);
  linear.scaling = RopeScaling::Linear;
  linear.factor = 4.0F;
  RopeParams llama3_partial = llama3_params();
  llama3_partial.layout = RopeLayout::Interleaved;
  llama3_partial.rot_dim = 64;
  return {
      {"half, one pair", {1, 1, 2}, make_params(RopeLayout::RotateHalf, 0), 64},
      {"interleaved", {3, 2, 8}, make_params(RopeLayout::Interleaved, 0), 4096},
      {"half, D 64", {5, 3, 64}, make_params(RopeLayout::RotateHalf, 0), 4096},
      {"half, odd pair count", {3, 1, 34}, make_params(RopeLayout::RotateHalf, 0), 4096},
      {"half, partial 6 of 10", {7, 2, 10}, make_params(RopeLayout::RotateHalf, 6), 4096},
      {"interleaved, partial 4 of 12", {4, 3, 12}, make_params(RopeLayout::Interleaved, 4), 4096},
      {"half, long positions", {9, 2, 32}, make_params(RopeLayout::RotateHalf, 0), 131072},
      {"linear x4", {6, 2, 16}, linear, 16384},
      {"llama3", {5, 4, 128}, llama3_params(), 131072},
      {"llama3 interleaved, partial 64 of 96", {3, 2, 96}, llama3_partial, 131072},
  };
}

TEST(OpRope, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const RopeCase& test_case : forward_cases()) {
        SCOPED_TRACE(test_case.name + ", " + case_label(dtype, device, test_case.shape));
        const int64_t rows = test_case.shape[0];
        HostArray x = random_array(test_case.shape, rng, -2.0, 2.0);
        HostArray positions = random_ints({rows}, rng, 0, test_case.max_position);
        if (rows > 1) positions[rows - 1] = static_cast<double>(test_case.max_position - 1);  // the far end
        Tensor x_tensor = make_tensor(ctx, x, dtype, device);
        Tensor positions_tensor = make_tensor(ctx, positions, DType::I32, device);
        Tensor out = ctx.empty(test_case.shape, dtype, device);
        rope(ctx, out, x_tensor, positions_tensor, test_case.params);
        const HostArray out_ref = rope_reference(x, positions, test_case.params);
        expect_close(to_host(ctx, out), out_ref, tolerance_for(dtype), "out");
        // In place: out aliases x.
        rope(ctx, x_tensor, x_tensor, positions_tensor, test_case.params);
        expect_close(to_host(ctx, x_tensor), out_ref, tolerance_for(dtype), "out in place");
      }
    }
  }
}

// RopeParams::ggml_angles on the CPU: the angles of llama.cpp's f32 recurrence (transcribed
// from ggml-cpu's ggml_rope_cache_init), the rotation in float64; and near the exact angles
// for short positions. (The CUDA backend keeps its exact angles: not tested here.)
TEST(OpRope, CpuGgmlAnglesFollowLlamaCppsRecurrence) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::RotateHalf}) {
    const Shape shape = {6, 3, 64};
    SCOPED_TRACE(std::string(layout == RopeLayout::Interleaved ? "interleaved" : "half") + ", " +
                 case_label(DType::F32, Device::cpu(), shape));
    RopeParams params = make_params(layout, 0, 100000.0F);
    params.ggml_angles = true;
    HostArray x = random_array(shape, rng, -2.0, 2.0);
    HostArray positions = random_ints({shape[0]}, rng, 0, 4096);
    positions[0] = 0.0;
    positions[1] = 7.0;
    Tensor out = ctx.empty(shape, DType::F32, Device::cpu());
    rope(ctx, out, make_tensor(ctx, x, DType::F32, Device::cpu()),
         make_tensor(ctx, positions, DType::I32, Device::cpu()), params);
    const HostArray got = to_host(ctx, out);
    const int64_t half = shape[2] / 2;
    HostArray expected = x;
    const float theta_scale = std::pow(params.base, -2.0F / static_cast<float>(shape[2]));
    for (int64_t n = 0; n < shape[0]; ++n) {
      auto theta = static_cast<float>(positions[n]);
      for (int64_t k = 0; k < half; ++k, theta *= theta_scale) {
        for (int64_t h = 0; h < shape[1]; ++h) {
          const int64_t base = (n * shape[1] + h) * shape[2];
          const int64_t i = base + (layout == RopeLayout::Interleaved ? 2 * k : k);
          const int64_t j = base + (layout == RopeLayout::Interleaved ? 2 * k + 1 : k + half);
          expected[i] = x[i] * std::cos(static_cast<double>(theta)) - x[j] * std::sin(static_cast<double>(theta));
          expected[j] = x[i] * std::sin(static_cast<double>(theta)) + x[j] * std::cos(static_cast<double>(theta));
        }
      }
    }
    expect_close(got, expected, {1e-5, 1e-5}, "out");
    // Positions 0 and 7: the recurrence is within a few f32 roundings of the exact angles.
    params.ggml_angles = false;
    const HostArray exact = rope_reference(x, positions, params);
    for (int64_t e = 0; e < 2 * shape[1] * shape[2]; ++e) EXPECT_NEAR(got[e], exact[e], 1e-5) << "element " << e;
  }
}

TEST(OpRope, ForwardAtPositionZeroIsIdentity) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    const Shape shape = {2, 3, 16};
    SCOPED_TRACE(case_label(DType::F32, device, shape));
    HostArray x = random_array(shape, rng, -2.0, 2.0);
    HostArray positions{{2}, {0.0, 0.0}};
    Tensor x_tensor = make_tensor(ctx, x, DType::F32, device);
    Tensor positions_tensor = make_tensor(ctx, positions, DType::I32, device);
    Tensor out = ctx.empty(shape, DType::F32, device);
    rope(ctx, out, x_tensor, positions_tensor, llama3_params());
    expect_close(to_host(ctx, out), x, {0.0, 0.0}, "out");
  }
}

TEST(OpRope, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  const std::vector<RopeCase> cases = {
      {"half", {3, 2, 8}, make_params(RopeLayout::RotateHalf, 0), 4096},
      {"interleaved, partial 6 of 10", {2, 3, 10}, make_params(RopeLayout::Interleaved, 6), 4096},
      {"half, partial 4 of 6", {5, 1, 6}, make_params(RopeLayout::RotateHalf, 4), 4096},
      {"llama3", {2, 2, 32}, llama3_params(), 131072},
  };
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const RopeCase& test_case : cases) {
        SCOPED_TRACE(test_case.name + ", " + case_label(dtype, device, test_case.shape));
        HostArray x = random_array(test_case.shape, rng, -2.0, 2.0);
        HostArray positions = random_ints({test_case.shape[0]}, rng, 0, test_case.max_position);
        HostArray dout = random_array(test_case.shape, rng);
        Tensor positions_tensor = make_tensor(ctx, positions, DType::I32, device);
        Tensor dout_tensor = make_tensor(ctx, dout, dtype, device);
        Tensor dx = ctx.empty(test_case.shape, dtype, device);
        rope_backward(ctx, dx, dout_tensor, positions_tensor, test_case.params);
        const HostArray dx_ref = finite_difference(
            [&](const HostArray& probe) { return rope_reference(probe, positions, test_case.params); }, x, dout);
        Tolerance tolerance = gradient_tolerance(dtype);
        expect_close(to_host(ctx, dx), dx_ref, tolerance, "dx");
        // In place: dx aliases dout.
        rope_backward(ctx, dout_tensor, dout_tensor, positions_tensor, test_case.params);
        expect_close(to_host(ctx, dout_tensor), dx_ref, tolerance, "dx in place");
      }
    }
  }
}

TEST(OpRope, InvFrequencyMatchesHandComputedValues) {
  // base 10000, head 8: 10000^(-2k/8) = 1, 0.1, 0.01, 0.001.
  RopeParams plain = make_params(RopeLayout::RotateHalf, 0);
  const double expected_plain[] = {1.0, 0.1, 0.01, 0.001};
  for (int64_t k = 0; k < 4; ++k) EXPECT_NEAR(rope_inv_frequency(plain, 8, k), expected_plain[k], 1e-15) << k;
  // Partial rotary: the exponent uses rot_dim (4), not the head size: 1, 0.01.
  RopeParams partial = make_params(RopeLayout::Interleaved, 4);
  EXPECT_NEAR(rope_inv_frequency(partial, 8, 0), 1.0, 1e-15);
  EXPECT_NEAR(rope_inv_frequency(partial, 8, 1), 0.01, 1e-15);
  // Linear x4 divides every frequency by 4.
  RopeParams linear = plain;
  linear.scaling = RopeScaling::Linear;
  linear.factor = 4.0F;
  EXPECT_NEAR(rope_inv_frequency(linear, 8, 1), 0.025, 1e-15);
  // Llama 3 (factor 8, low 1, high 4, original 8192, base 500000, head 128). Wavelength bands:
  // < 2048 unchanged, > 8192 divided by 8, between smoothly interpolated.
  const RopeParams llama3 = llama3_params();
  const auto expect_relative = [&](int64_t pair, double expected) {
    EXPECT_NEAR(rope_inv_frequency(llama3, 128, pair) / expected, 1.0, 1e-12) << "pair " << pair;
  };
  expect_relative(0, 1.0);                    // wavelength 2 pi: unchanged
  expect_relative(28, 0.003211445994752591);  // wavelength 1956.5 < 2048: unchanged
  // pair 32: inv 1/sqrt(500000) = 1.41421356e-3, wavelength 4442.88,
  // smooth (8192/4442.88 - 1)/3 = 0.281283: inv ((1 - smooth)/8 + smooth).
  expect_relative(32, 5.248461609929547e-4);
  expect_relative(29, 0.002166570763503359);   // wavelength 2401.7, smooth 0.803621
  expect_relative(35, 9.556212353964683e-05);  // wavelength 8218.7 > 8192: 7.644970e-4 / 8
  expect_relative(63, 3.068925988914511e-07);  // 500000^(-63/64) / 8
  EXPECT_THROW((void)rope_inv_frequency(llama3, 128, 64), Error);
  EXPECT_THROW((void)rope_inv_frequency(llama3, 128, -1), Error);
}

TEST(OpRope, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor x = Tensor::zeros({4, 2, 8}, DType::F32);
  Tensor out = Tensor::zeros({4, 2, 8}, DType::F32);
  Tensor positions = Tensor::zeros({4}, DType::I32);
  const RopeParams params;
  Tensor flat = Tensor::zeros({4, 16}, DType::F32);
  EXPECT_THROW(rope(ctx, flat, flat, positions, params), Error);
  Tensor short_positions = Tensor::zeros({3}, DType::I32);
  EXPECT_THROW(rope(ctx, out, x, short_positions, params), Error);
  Tensor float_positions = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(rope(ctx, out, x, float_positions, params), Error);
  Tensor wrong_out = Tensor::zeros({4, 2, 6}, DType::F32);
  EXPECT_THROW(rope(ctx, wrong_out, x, positions, params), Error);
  Tensor odd_head = Tensor::zeros({4, 2, 7}, DType::F32);
  EXPECT_THROW(rope(ctx, odd_head, odd_head, positions, params), Error);
  RopeParams odd_rot = params;
  odd_rot.rot_dim = 3;
  EXPECT_THROW(rope(ctx, out, x, positions, odd_rot), Error);
  RopeParams long_rot = params;
  long_rot.rot_dim = 10;
  EXPECT_THROW(rope(ctx, out, x, positions, long_rot), Error);
  RopeParams bad_base = params;
  bad_base.base = 0.0F;
  EXPECT_THROW(rope(ctx, out, x, positions, bad_base), Error);
  RopeParams bad_factor = params;
  bad_factor.scaling = RopeScaling::Linear;
  bad_factor.factor = 0.0F;
  EXPECT_THROW(rope_backward(ctx, out, x, positions, bad_factor), Error);
  RopeParams bad_llama3 = llama3_params();
  bad_llama3.high_freq_factor = bad_llama3.low_freq_factor;
  EXPECT_THROW(rope(ctx, out, x, positions, bad_llama3), Error);
  // out overlapping x by part of a row would read already-rotated values.
  Tensor buffer = Tensor::zeros({5, 2, 8}, DType::F32);
  Tensor head = buffer.slice(0, 0, 4);
  Tensor shifted = buffer.slice(0, 1, 5);
  EXPECT_THROW(rope(ctx, shifted, head, positions, params), Error);
}

}  // namespace
}  // namespace anvil::testing
