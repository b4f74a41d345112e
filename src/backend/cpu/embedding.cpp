// Embedding lookup and its backward on the CPU. The backward scatters rows of grad_out into
// grad_table; tasks own column ranges and walk the ids in order, so repeated ids add up in
// a fixed order (deterministic, no atomics) whatever the thread count.
#include <algorithm>
#include <vector>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kRowsPerTask = 16;
constexpr int64_t kColsPerTask = 64;

// Throws unless every id is in [0, vocab).
void check_ids(const char* op, const Tensor& ids, int64_t vocab) {
  const int32_t* values = ids.data<const int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (values[i] < 0 || values[i] >= vocab) {
      throw make_error("op ", op, ": id ", values[i], " at position ", i, " is out of range for a table of V=", vocab,
                       " rows");
    }
  }
}

}  // namespace

void CpuBackend::embedding(Tensor& out, const Tensor& table, const Tensor& ids) {
  const int64_t vocab = table.size(0);
  const int64_t channels = table.size(1);
  check_ids("embedding", ids, vocab);
  const int32_t* id_values = ids.data<const int32_t>();
  pool_.parallel_for(ids.numel(), kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      convert_host(table.dtype(), row_bytes(table, id_values[row], channels), out.dtype(),
                   row_bytes(out, row, channels), channels);
    }
  });
}

void CpuBackend::embedding_backward(Tensor& grad_table, const Tensor& grad_out, const Tensor& ids) {
  const int64_t vocab = grad_table.size(0);
  const int64_t channels = grad_table.size(1);
  check_ids("embedding_backward", ids, vocab);
  const int32_t* id_values = ids.data<const int32_t>();
  float* table = grad_table.data<float>();
  const int64_t chunks = (channels + kColsPerTask - 1) / kColsPerTask;
  pool_.parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(kColsPerTask));
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t col0 = chunk * kColsPerTask;
      const int64_t count = std::min(kColsPerTask, channels - col0);
      for (int64_t row = 0; row < ids.numel(); ++row) {
        const float* grad = scratch.data();
        const char* source = row_bytes(grad_out, row, channels) + dtype_bytes_for(grad_out.dtype(), col0);
        if (grad_out.dtype() == DType::F32) {
          grad = reinterpret_cast<const float*>(source);
        } else {
          convert_host(grad_out.dtype(), source, DType::F32, scratch.data(), count);
        }
        float* dst = table + id_values[row] * channels + col0;
        for (int64_t c = 0; c < count; ++c) dst[c] += grad[c];
      }
    }
  });
}

}  // namespace anvil::cpu
