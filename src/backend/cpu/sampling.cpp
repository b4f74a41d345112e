// Sampling primitives on the CPU, one row of logits (N, V) f32 at a time. The behaviour at
// the edges (NaN, -inf, +inf, ties) is specified in ops/sampling.cpp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "anvil/core/rng.h"
#include "cpu/cpu_backend.h"

namespace anvil::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Rows per parallel chunk so that a chunk holds at least ~16k logits.
int64_t row_grain(int64_t vocab) { return std::max<int64_t>(1, (int64_t{1} << 14) / vocab); }

// Strict "a ranks above b": larger values first, NaN below everything.
bool ranks_above(float a, float b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

// Unnormalised softmax weights of one row (V), exp((x - max) / temperature) in float64.
// NaN weighs 0; when the max is +inf the +inf entries weigh 1 and the rest 0; a row with
// no number above -inf weighs 0 everywhere. Returns the sum, taken in index order.
double row_weights(const float* x, int64_t vocab, double temperature, std::vector<double>& weights) {
  weights.resize(static_cast<size_t>(vocab));
  double max_value = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < vocab; ++i) {
    if (!std::isnan(x[i])) max_value = std::max(max_value, static_cast<double>(x[i]));
  }
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    double weight = 0.0;
    if (std::isnan(x[i]) || std::isinf(max_value)) {
      weight = (max_value > 0.0 && x[i] == INFINITY) ? 1.0 : 0.0;
    } else {
      weight = std::exp((static_cast<double>(x[i]) - max_value) / temperature);
    }
    weights[static_cast<size_t>(i)] = weight;
    total += weight;
  }
  return total;
}

int32_t argmax_row(const float* x, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (ranks_above(x[i], x[best])) best = i;
  }
  return static_cast<int32_t>(best);
}

// Keeps the k largest (ties at the k-th value kept); `scratch` holds a copy of the row.
void top_k_row(float* x, int64_t vocab, int64_t k, std::vector<float>& scratch) {
  scratch.assign(x, x + vocab);
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(), ranks_above);
  const float threshold = scratch[static_cast<size_t>(k - 1)];
  for (int64_t i = 0; i < vocab; ++i) {
    const bool keep = !std::isnan(x[i]) && (std::isnan(threshold) || x[i] >= threshold);
    if (!keep) x[i] = kNegInf;
  }
}

// Keeps the shortest prefix, in rank order, whose probability reaches top_p (at least one).
// Ranks are sorted lazily: the top 64, then 4x more at a time, since the kept set is
// usually a small part of a large vocabulary.
void top_p_row(float* x, int64_t vocab, double top_p, std::vector<double>& weights, std::vector<int32_t>& order) {
  const double total = row_weights(x, vocab, 1.0, weights);
  order.resize(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  // A total order: rank, then the lower index first.
  const auto before = [x](int32_t a, int32_t b) {
    return ranks_above(x[a], x[b]) || (!ranks_above(x[b], x[a]) && a < b);
  };
  const double target = top_p * total;
  double cumulative = 0.0;
  size_t kept = 0;
  size_t sorted = 0;
  bool reached = false;
  while (!reached && kept < order.size()) {
    const size_t next_sorted = std::min(order.size(), std::max<size_t>(64, 4 * sorted));
    std::partial_sort(order.begin() + static_cast<std::ptrdiff_t>(sorted),
                      order.begin() + static_cast<std::ptrdiff_t>(next_sorted), order.end(), before);
    sorted = next_sorted;
    while (!reached && kept < sorted) {
      cumulative += weights[static_cast<size_t>(order[kept])];
      ++kept;
      reached = cumulative >= target;
    }
  }
  for (size_t j = kept; j < order.size(); ++j) x[order[j]] = kNegInf;
}

// Keeps tokens with p >= min_p * p_max, i.e. weight >= min_p (the max weighs 1).
void min_p_row(float* x, int64_t vocab, double min_p, std::vector<double>& weights) {
  const double total = row_weights(x, vocab, 1.0, weights);
  if (total == 0.0) return;  // every logit is -inf or NaN: nothing to rank against
  for (int64_t i = 0; i < vocab; ++i) {
    if (!(weights[static_cast<size_t>(i)] >= min_p)) x[i] = kNegInf;
  }
}

// Inverse CDF in index order at u * total; -1 when the row has no candidate.
int32_t sample_row(const float* x, int64_t vocab, double temperature, float u, std::vector<double>& weights) {
  const double total = row_weights(x, vocab, temperature, weights);
  if (!(total > 0.0)) return -1;
  const double target = static_cast<double>(u) * total;  // < total, as u < 1
  double cumulative = 0.0;
  int64_t last_candidate = -1;
  for (int64_t i = 0; i < vocab; ++i) {
    const double weight = weights[static_cast<size_t>(i)];
    if (weight == 0.0) continue;  // -inf, NaN or underflowed: never drawn
    cumulative += weight;
    last_candidate = i;
    if (cumulative > target) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last_candidate);  // only reached through rounding
}

}  // namespace

void CpuBackend::argmax(Tensor& ids, const Tensor& logits) {
  const int64_t vocab = logits.size(1);
  const float* x = logits.data<const float>();
  int32_t* out = ids.data<int32_t>();
  pool_.parallel_for(logits.size(0), row_grain(vocab), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) out[row] = argmax_row(x + row * vocab, vocab);
  });
}

void CpuBackend::top_k_filter(Tensor& logits, int64_t k) {
  const int64_t vocab = logits.size(1);
  if (k <= 0 || k >= vocab) return;
  float* x = logits.data<float>();
  pool_.parallel_for(logits.size(0), row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t row = begin; row < end; ++row) top_k_row(x + row * vocab, vocab, k, scratch);
  });
}

void CpuBackend::top_p_filter(Tensor& logits, float top_p) {
  const int64_t vocab = logits.size(1);
  if (top_p >= 1.0F) return;
  float* x = logits.data<float>();
  pool_.parallel_for(logits.size(0), row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<double> weights;
    std::vector<int32_t> order;
    for (int64_t row = begin; row < end; ++row) top_p_row(x + row * vocab, vocab, top_p, weights, order);
  });
}

void CpuBackend::min_p_filter(Tensor& logits, float min_p) {
  const int64_t vocab = logits.size(1);
  if (min_p <= 0.0F) return;
  float* x = logits.data<float>();
  pool_.parallel_for(logits.size(0), row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<double> weights;
    for (int64_t row = begin; row < end; ++row) min_p_row(x + row * vocab, vocab, min_p, weights);
  });
}

void CpuBackend::sample_multinomial(Tensor& ids, const Tensor& logits, float temperature, uint64_t seed,
                                    uint64_t offset) {
  const int64_t vocab = logits.size(1);
  const float* x = logits.data<const float>();
  int32_t* out = ids.data<int32_t>();
  pool_.parallel_for(logits.size(0), row_grain(vocab), [&](int64_t begin, int64_t end) {
    std::vector<double> weights;
    for (int64_t row = begin; row < end; ++row) {
      const float u = Philox(seed, static_cast<uint64_t>(row)).uniform(offset);
      out[row] = sample_row(x + row * vocab, vocab, temperature, u, weights);
    }
  });
}

}  // namespace anvil::cpu
