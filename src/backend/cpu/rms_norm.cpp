// RMSNorm forward and backward on the CPU, computed in f32 per row (sums in double).
#include <cmath>
#include <algorithm>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

void CpuBackend::rms_norm(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  std::vector<float> weight_scratch;
  const float* w = load_row(weight, 0, channels, weight_scratch);  // (C)
  pool_.parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    for (int64_t row = begin; row < end; ++row) {
      const float* in = load_row(x, row, channels, in_scratch);
      float* y = output_row(out, row, channels, out_scratch);
      // ggml-cpu's order (llama.cpp's logits to the bit): f32 squares summed in double, the
      // mean rounded to f32, 1 / sqrtf(mean + eps) in f32, then (x * scale) * w.
      double sum_squares = 0.0;
      for (int64_t c = 0; c < channels; ++c) sum_squares += static_cast<double>(in[c] * in[c]);
      const auto mean = static_cast<float>(sum_squares / static_cast<double>(channels));
      const float inv_rms = 1.0F / std::sqrt(mean + eps);
      for (int64_t c = 0; c < channels; ++c) y[c] = in[c] * inv_rms * w[c];
      store_row(out, row, channels, y);
      if (rstd.defined()) rstd.data<float>()[row] = inv_rms;
    }
  });
}

void CpuBackend::add_rms_norm(Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps) {
  // Exactly the two ops the model ran before the fusion: the CPU's numbers do not change.
  add(x, x, delta);
  Tensor no_rstd;
  rms_norm(out, no_rstd, x, weight, eps);
}

void CpuBackend::rms_norm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x,
                                   const Tensor& weight, const Tensor& rstd) {
  // y = x * r * w, r = (mean(x^2) + eps)^-1/2.
  // dx = r * (dout * w) - x * r^3 / C * sum(dout * w * x);  dweight += sum_rows(dout * x * r).
  // dweight partials are kept per fixed block of rows and added in block order, so the
  // result does not depend on the thread count.
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  constexpr int64_t kRowsPerBlock = 32;
  const int64_t num_blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<float> weight_scratch;
  const float* w = load_row(weight, 0, channels, weight_scratch);
  std::vector<double> partials(dweight.defined() ? static_cast<size_t>(num_blocks * channels) : 0, 0.0);
  pool_.parallel_for(num_blocks, 1, [&](int64_t block_begin, int64_t block_end) {
    std::vector<float> in_scratch;
    std::vector<float> grad_scratch;
    std::vector<float> dx_scratch;
    for (int64_t block = block_begin; block < block_end; ++block) {
      double* partial = partials.empty() ? nullptr : partials.data() + block * channels;
      for (int64_t row = block * kRowsPerBlock; row < std::min(rows, (block + 1) * kRowsPerBlock); ++row) {
        const float* in = load_row(x, row, channels, in_scratch);
        const float* g = load_row(dout, row, channels, grad_scratch);
        const float r = rstd.data<const float>()[row];
        double dot = 0.0;
        for (int64_t c = 0; c < channels; ++c) dot += static_cast<double>(g[c]) * w[c] * in[c];
        const auto correction = static_cast<float>(dot * r * r * r / static_cast<double>(channels));
        float* d = output_row(dx, row, channels, dx_scratch);
        for (int64_t c = 0; c < channels; ++c) d[c] = r * g[c] * w[c] - in[c] * correction;
        store_row(dx, row, channels, d);
        if (partial != nullptr) {
          for (int64_t c = 0; c < channels; ++c) partial[c] += static_cast<double>(g[c]) * in[c] * r;
        }
      }
    }
  });
  if (!dweight.defined()) return;
  float* dw = dweight.data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t block = 0; block < num_blocks; ++block) sum += partials[static_cast<size_t>(block * channels + c)];
    dw[c] += static_cast<float>(sum);
  }
}

}  // namespace anvil::cpu
