// Elementwise add / mul / scale and their backward on the CPU, computed in f32 whatever the
// storage dtypes. Work is split into fixed blocks of elements; b repeats with period
// b.numel() over a (b's shape is a suffix of a's). Reductions over the broadcast rows use
// fixed row blocks summed in block order, so results do not depend on the thread count.
#include <algorithm>
#include <vector>

#include "anvil/core/convert.h"
#include "cpu/cpu_backend.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kBlockElems = 4096;              // elements per parallel task
constexpr int64_t kWholeBroadcastElems = 1 << 16;  // a non-f32 b up to this size is widened once
constexpr int64_t kMinRowsPerBlock = 32;           // reduction: rows summed per partial ...
constexpr int64_t kMaxRowBlocks = 64;              // ... and at most this many partials per column

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

char* element_bytes(const Tensor& tensor, int64_t first) {
  return static_cast<char*>(tensor.raw_data()) + dtype_bytes_for(tensor.dtype(), first);
}

// Elements [first, first + count) as f32: in place for f32, else converted into `scratch`.
const float* load_span(const Tensor& tensor, int64_t first, int64_t count, std::vector<float>& scratch) {
  if (tensor.dtype() == DType::F32) return tensor.data<const float>() + first;
  scratch.resize(static_cast<size_t>(count));
  convert_host(tensor.dtype(), element_bytes(tensor, first), DType::F32, scratch.data(), count);
  return scratch.data();
}

// Where to write elements [first, first + count) as f32; store_span finishes the write.
float* output_span(Tensor& tensor, int64_t first, int64_t count, std::vector<float>& scratch) {
  if (tensor.dtype() == DType::F32) return tensor.data<float>() + first;
  scratch.resize(static_cast<size_t>(count));
  return scratch.data();
}

void store_span(Tensor& tensor, int64_t first, int64_t count, const float* values) {
  if (tensor.dtype() == DType::F32) return;
  convert_host(DType::F32, values, tensor.dtype(), element_bytes(tensor, first), count);
}

// out[i] = fn(a[i]).
template <typename Fn>
void unary_map(ThreadPool& pool, Tensor& out, const Tensor& a, Fn fn) {
  const int64_t total = a.numel();
  pool.parallel_for(ceil_div(total, kBlockElems), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kBlockElems;
      const int64_t count = std::min(kBlockElems, total - first);
      const float* x = load_span(a, first, count, in_scratch);
      float* y = output_span(out, first, count, out_scratch);
      for (int64_t i = 0; i < count; ++i) y[i] = fn(x[i]);
      store_span(out, first, count, y);
    }
  });
}

// out[i] = fn(a[i], b[i mod b.numel()]). out may alias a.
template <typename Fn>
void broadcast_binary(ThreadPool& pool, Tensor& out, const Tensor& a, const Tensor& b, Fn fn) {
  const int64_t total = a.numel();
  const int64_t period = b.numel();
  if (total == 0) return;
  std::vector<float> b_widened;
  const float* b_whole = nullptr;  // all of b as f32, when cheap to have
  if (b.dtype() == DType::F32) {
    b_whole = b.data<const float>();
  } else if (period <= kWholeBroadcastElems) {
    b_whole = load_span(b, 0, period, b_widened);
  }
  pool.parallel_for(ceil_div(total, kBlockElems), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> a_scratch;
    std::vector<float> b_scratch;
    std::vector<float> out_scratch;
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kBlockElems;
      const int64_t count = std::min(kBlockElems, total - first);
      const float* x = load_span(a, first, count, a_scratch);
      float* y = output_span(out, first, count, out_scratch);
      for (int64_t done = 0; done < count;) {
        const int64_t offset = (first + done) % period;
        const int64_t length = std::min(count - done, period - offset);
        const float* z = b_whole != nullptr ? b_whole + offset : load_span(b, offset, length, b_scratch);
        for (int64_t i = 0; i < length; ++i) y[done + i] = fn(x[done + i], z[i]);
        done += length;
      }
      store_span(out, first, count, y);
    }
  });
}

// sums (P) = sum over rows r of grad (R, P) [* factor (R, P)], written to `sums` (P elements).
// Rows are summed in fixed blocks (partials in f64), then the partials in block order.
void sum_rows(ThreadPool& pool, Tensor& sums, const Tensor& grad, const Tensor* factor) {
  const int64_t period = sums.numel();
  if (period == 0) return;
  const int64_t rows = grad.numel() / period;
  const int64_t rows_per_block = std::max(kMinRowsPerBlock, ceil_div(rows, kMaxRowBlocks));
  const int64_t row_blocks = ceil_div(rows, rows_per_block);
  const int64_t col_chunks = ceil_div(period, kBlockElems);
  std::vector<double> partials(static_cast<size_t>(row_blocks * period), 0.0);
  pool.parallel_for(row_blocks * col_chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> grad_scratch;
    std::vector<float> factor_scratch;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t block = task / col_chunks;
      const int64_t col0 = (task % col_chunks) * kBlockElems;
      const int64_t count = std::min(kBlockElems, period - col0);
      double* partial = partials.data() + block * period + col0;
      for (int64_t row = block * rows_per_block; row < std::min(rows, (block + 1) * rows_per_block); ++row) {
        const float* g = load_span(grad, row * period + col0, count, grad_scratch);
        if (factor == nullptr) {
          for (int64_t i = 0; i < count; ++i) partial[i] += g[i];
        } else {
          const float* f = load_span(*factor, row * period + col0, count, factor_scratch);
          for (int64_t i = 0; i < count; ++i) partial[i] += static_cast<double>(g[i]) * f[i];
        }
      }
    }
  });
  pool.parallel_for(col_chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> out_scratch;
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t col0 = chunk * kBlockElems;
      const int64_t count = std::min(kBlockElems, period - col0);
      float* out = output_span(sums, col0, count, out_scratch);
      for (int64_t i = 0; i < count; ++i) {
        double total = 0.0;
        for (int64_t block = 0; block < row_blocks; ++block)
          total += partials[static_cast<size_t>(block * period + col0 + i)];
        out[i] = static_cast<float>(total);
      }
      store_span(sums, col0, count, out);
    }
  });
}

}  // namespace

void CpuBackend::add(Tensor& out, const Tensor& a, const Tensor& b) {
  broadcast_binary(pool_, out, a, b, [](float x, float y) { return x + y; });
}

void CpuBackend::mul(Tensor& out, const Tensor& a, const Tensor& b) {
  broadcast_binary(pool_, out, a, b, [](float x, float y) { return x * y; });
}

void CpuBackend::scale(Tensor& out, const Tensor& a, float factor) {
  unary_map(pool_, out, a, [factor](float x) { return x * factor; });
}

void CpuBackend::add_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out) {
  if (grad_a.defined()) unary_map(pool_, grad_a, grad_out, [](float x) { return x; });
  if (grad_b.defined()) sum_rows(pool_, grad_b, grad_out, nullptr);
}

void CpuBackend::mul_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a,
                              const Tensor& b) {
  // grad_b first: grad_a may alias grad_out (in-place backward), and grad_b reads grad_out.
  if (grad_b.defined()) sum_rows(pool_, grad_b, grad_out, &a);
  if (grad_a.defined()) broadcast_binary(pool_, grad_a, grad_out, b, [](float g, float y) { return g * y; });
}

}  // namespace anvil::cpu
