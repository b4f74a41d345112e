// Softmax over the last dim on the CPU: per row in f32, sums in f64, parallel over rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// Rows per task: about 4096 elements, at least one row.
int64_t row_grain(int64_t row_length) { return std::max<int64_t>(1, 4096 / row_length); }

}  // namespace

void CpuBackend::softmax(Tensor& out, const Tensor& x) {
  // y = exp(x - max) / sum(exp(x - max)): the shift keeps exp in range; -inf entries give 0.
  const int64_t channels = x.size(-1);
  const int64_t rows = x.numel() / channels;
  pool_.parallel_for(rows, row_grain(channels), [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    for (int64_t row = begin; row < end; ++row) {
      const float* in = load_row(x, row, channels, in_scratch);
      float row_max = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < channels; ++c) row_max = std::max(row_max, in[c]);
      // The max is known before y is written, so y may alias x.
      float* y = output_row(out, row, channels, out_scratch);
      double sum = 0.0;
      for (int64_t c = 0; c < channels; ++c) {
        y[c] = std::exp(in[c] - row_max);
        sum += y[c];
      }
      const auto inv_sum = static_cast<float>(1.0 / sum);
      for (int64_t c = 0; c < channels; ++c) y[c] *= inv_sum;
      store_row(out, row, channels, y);
    }
  });
}

void CpuBackend::softmax_backward(Tensor& dx, const Tensor& dout, const Tensor& y) {
  // dx = y * (dout - sum(dout * y)).
  const int64_t channels = y.size(-1);
  const int64_t rows = y.numel() / channels;
  pool_.parallel_for(rows, row_grain(channels), [&](int64_t begin, int64_t end) {
    std::vector<float> y_scratch;
    std::vector<float> grad_scratch;
    std::vector<float> dx_scratch;
    for (int64_t row = begin; row < end; ++row) {
      const float* probs = load_row(y, row, channels, y_scratch);
      const float* g = load_row(dout, row, channels, grad_scratch);
      double dot = 0.0;
      for (int64_t c = 0; c < channels; ++c) dot += static_cast<double>(g[c]) * probs[c];
      const auto shift = static_cast<float>(dot);
      float* d = output_row(dx, row, channels, dx_scratch);
      for (int64_t c = 0; c < channels; ++c) d[c] = probs[c] * (g[c] - shift);
      store_row(dx, row, channels, d);
    }
  });
}

}  // namespace anvil::cpu
