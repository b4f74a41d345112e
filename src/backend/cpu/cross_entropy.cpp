// Fused softmax + cross-entropy on the CPU: per row in f32, sums in f64, parallel over rows.
// The backward recomputes the softmax from the logits instead of saving it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// Throws for the first row whose target is past the vocabulary (negative = ignored is fine).
void check_targets(const char* op, const Tensor& targets, int64_t vocab) {
  const int32_t* target = targets.data<const int32_t>();
  for (int64_t row = 0; row < targets.numel(); ++row) {
    ANVIL_CHECK(target[row] < vocab, "op ", op, ": row ", row, " has target ", target[row], ", but the vocabulary has ",
                vocab, " entries");
  }
}

// max and sum(exp(logit - max)) of one row: softmax = exp(logit - max) / sum.
struct RowSoftmax {
  float max;
  double sum;
};

RowSoftmax row_softmax(const float* logits, int64_t vocab) {
  float row_max = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < vocab; ++v) row_max = std::max(row_max, logits[v]);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(logits[v] - row_max);
  return {row_max, sum};
}

int64_t row_grain(int64_t vocab) { return std::max<int64_t>(1, 4096 / vocab); }

}  // namespace

void CpuBackend::cross_entropy(Tensor& losses, const Tensor& logits, const Tensor& targets) {
  // loss = logsumexp(logits) - logits[target] = (max - logits[target]) + log(sum(exp(logits - max))).
  const int64_t rows = logits.size(0);
  const int64_t vocab = logits.size(1);
  check_targets("cross_entropy", targets, vocab);
  const int32_t* target = targets.data<const int32_t>();
  float* loss = losses.data<float>();
  pool_.parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t row = begin; row < end; ++row) {
      if (target[row] < 0) {
        loss[row] = 0.0F;
        continue;
      }
      const float* in = load_row(logits, row, vocab, scratch);
      const RowSoftmax softmax = row_softmax(in, vocab);
      const double shifted_target = static_cast<double>(softmax.max) - in[target[row]];
      loss[row] = static_cast<float>(shifted_target + std::log(softmax.sum));
    }
  });
}

void CpuBackend::cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                        const Tensor& targets) {
  // dlogits = (softmax - onehot(target)) * dloss; ignored rows get 0.
  const int64_t rows = logits.size(0);
  const int64_t vocab = logits.size(1);
  check_targets("cross_entropy_backward", targets, vocab);
  const int32_t* target = targets.data<const int32_t>();
  const float* dloss = dlosses.data<const float>();
  pool_.parallel_for(rows, row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    for (int64_t row = begin; row < end; ++row) {
      float* d = output_row(dlogits, row, vocab, out_scratch);
      if (target[row] < 0) {
        std::fill(d, d + vocab, 0.0F);
      } else {
        // The row's softmax is known before d is written, so dlogits may alias logits.
        const float* in = load_row(logits, row, vocab, in_scratch);
        const RowSoftmax softmax = row_softmax(in, vocab);
        const auto scale = static_cast<float>(dloss[row] / softmax.sum);
        for (int64_t v = 0; v < vocab; ++v) d[v] = std::exp(in[v] - softmax.max) * scale;
        d[target[row]] -= dloss[row];
      }
      store_row(dlogits, row, vocab, d);
    }
  });
}

}  // namespace anvil::cpu
