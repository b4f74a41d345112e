// LayerNorm forward and backward on the CPU, computed in f32 per row (sums in f64).
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// grad (C) += sum over blocks of partials (blocks, C), blocks added in order.
void add_block_partials(Tensor& grad, const std::vector<double>& partials, int64_t num_blocks, int64_t channels) {
  if (!grad.defined()) return;
  float* accumulated = grad.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t block = 0; block < num_blocks; ++block) sum += partials[static_cast<size_t>(block * channels + c)];
    accumulated[c] += static_cast<float>(sum);
  }
}

}  // namespace

void CpuBackend::layer_norm(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                            const Tensor& bias, float eps) {
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  std::vector<float> weight_scratch;
  std::vector<float> bias_scratch;
  const float* w = load_row(weight, 0, channels, weight_scratch);                         // (C)
  const float* b = bias.defined() ? load_row(bias, 0, channels, bias_scratch) : nullptr;  // (C) or none
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    for (int64_t row = begin; row < end; ++row) {
      const float* in = load_row(x, row, channels, in_scratch);
      double sum = 0.0;
      for (int64_t c = 0; c < channels; ++c) sum += in[c];
      const double row_mean = sum / static_cast<double>(channels);
      // Two-pass variance: no cancellation when |mean| >> std.
      double sum_squares = 0.0;
      for (int64_t c = 0; c < channels; ++c) {
        const double centered = in[c] - row_mean;
        sum_squares += centered * centered;
      }
      const auto mu = static_cast<float>(row_mean);
      const auto inv_std = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(channels) + eps));
      float* y = output_row(out, row, channels, out_scratch);
      for (int64_t c = 0; c < channels; ++c) {
        const float normed = (in[c] - mu) * inv_std;
        y[c] = normed * w[c] + (b != nullptr ? b[c] : 0.0F);
      }
      store_row(out, row, channels, y);
      if (mean.defined()) mean.data<float>()[row] = mu;
      if (rstd.defined()) rstd.data<float>()[row] = inv_std;
    }
  });
}

void CpuBackend::layer_norm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                     const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  // n = (x - mean) * r; y = n * w + b; g = dout * w.
  // dx = r * (g - mean_c(g) - n * mean_c(g * n));  dweight += sum_rows(dout * n);  dbias += sum_rows(dout).
  // Parameter-gradient partials are kept per fixed block of rows and added in block order,
  // so the result does not depend on the thread count.
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  constexpr int64_t kRowsPerBlock = 32;
  const int64_t num_blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<float> weight_scratch;
  const float* w = load_row(weight, 0, channels, weight_scratch);
  const auto partial_size = static_cast<size_t>(num_blocks * channels);
  std::vector<double> weight_partials(dweight.defined() ? partial_size : 0, 0.0);  // (blocks, C)
  std::vector<double> bias_partials(dbias.defined() ? partial_size : 0, 0.0);      // (blocks, C)
  const float* means = mean.data<const float>();
  const float* rstds = rstd.data<const float>();
  pool_.parallel_for(num_blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    std::vector<float> in_scratch;
    std::vector<float> grad_scratch;
    std::vector<float> dx_scratch;
    for (int64_t block = block_begin; block < block_end; ++block) {
      double* weight_partial = weight_partials.empty() ? nullptr : weight_partials.data() + block * channels;
      double* bias_partial = bias_partials.empty() ? nullptr : bias_partials.data() + block * channels;
      for (int64_t row = block * kRowsPerBlock; row < std::min(rows, (block + 1) * kRowsPerBlock); ++row) {
        const float* in = load_row(x, row, channels, in_scratch);
        const float* g = load_row(dout, row, channels, grad_scratch);
        const float mu = means[row];
        const float r = rstds[row];
        double sum_g = 0.0;
        double sum_g_normed = 0.0;
        // Everything that reads dout happens before dx is written (dx may alias dout).
        for (int64_t c = 0; c < channels; ++c) {
          const float normed = (in[c] - mu) * r;
          const double scaled = static_cast<double>(g[c]) * w[c];
          sum_g += scaled;
          sum_g_normed += scaled * normed;
          if (weight_partial != nullptr) weight_partial[c] += static_cast<double>(g[c]) * normed;
          if (bias_partial != nullptr) bias_partial[c] += g[c];
        }
        const auto mean_g = static_cast<float>(sum_g / static_cast<double>(channels));
        const auto mean_g_normed = static_cast<float>(sum_g_normed / static_cast<double>(channels));
        float* d = output_row(dx, row, channels, dx_scratch);
        for (int64_t c = 0; c < channels; ++c) {
          const float normed = (in[c] - mu) * r;
          d[c] = r * (g[c] * w[c] - mean_g - normed * mean_g_normed);
        }
        store_row(dx, row, channels, d);
      }
    }
  });
  add_block_partials(dweight, weight_partials, num_blocks, channels);
  add_block_partials(dbias, bias_partials, num_blocks, channels);
}

}  // namespace anvil::cpu
