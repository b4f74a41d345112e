// Sampling primitives: argmax, the logit filters, temperature and multinomial sampling,
// against float64 references written here, every backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "anvil/core/rng.h"
#include "anvil/ops/sampling.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Values must match exactly (filters copy or drop logits); NaN matches NaN.
void expect_same_values(const HostArray& got, const HostArray& ref, const std::string& what) {
  ASSERT_EQ(got.shape, ref.shape) << what;
  int64_t mismatches = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const bool same = got[i] == ref[i] || (std::isnan(got[i]) && std::isnan(ref[i]));
    if (!same && mismatches++ == 0) first = i;
  }
  EXPECT_EQ(mismatches, 0) << what << ": " << mismatches << " of " << ref.numel() << " differ; first at " << first
                           << ": got " << (first >= 0 ? got[first] : 0.0) << ", expected "
                           << (first >= 0 ? ref[first] : 0.0);
}

// Logits (N, V): continuous values, or small integers so that ties are common; a few
// entries set to -inf (never the whole row).
HostArray random_logits(const Shape& shape, Rng& rng, bool with_ties) {
  HostArray logits = with_ties ? random_ints(shape, rng, -3, 3) : random_array(shape, rng, -4.0, 4.0);
  std::uniform_int_distribution<int64_t> pick(0, logits.numel() - 1);
  for (int64_t i = 0; i < logits.numel() / 9; ++i) logits[pick(rng)] = -kInf;
  return logits;
}

// Probabilities of one row in float64, softmax(x / temperature).
std::vector<double> row_probabilities(const HostArray& logits, int64_t row, double temperature = 1.0) {
  const int64_t vocab = logits.shape[1];
  double max_value = -kInf;
  for (int64_t i = 0; i < vocab; ++i) max_value = std::max(max_value, logits[row * vocab + i] / temperature);
  std::vector<double> probabilities(static_cast<size_t>(vocab));
  double total = 0.0;
  for (int64_t i = 0; i < vocab; ++i) {
    probabilities[static_cast<size_t>(i)] = std::exp(logits[row * vocab + i] / temperature - max_value);
    total += probabilities[static_cast<size_t>(i)];
  }
  for (double& p : probabilities) p /= total;
  return probabilities;
}

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {5, 64}, {2, 1000}, {4, 257}};

TEST(OpArgmax, MatchesFloat64WithTiesAndInfinities) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const bool with_ties : {false, true}) {
      for (const Shape& shape : kShapes) {
        SCOPED_TRACE(case_label(DType::F32, device, shape) + (with_ties ? ", ties" : ""));
        HostArray logits = random_logits(shape, rng, with_ties);
        const int64_t vocab = shape[1];
        for (int64_t c = 0; c < vocab; ++c) logits[c] = -kInf;  // row 0 is all -inf: id 0
        HostArray expected{{shape[0]}, std::vector<double>(static_cast<size_t>(shape[0]))};
        for (int64_t row = 0; row < shape[0]; ++row) {
          int64_t best = 0;
          for (int64_t c = 1; c < vocab; ++c) {
            if (logits[row * vocab + c] > logits[row * vocab + best]) best = c;  // first of equals wins
          }
          expected[row] = static_cast<double>(best);
        }
        const Tensor logits_tensor = make_tensor(ctx, logits, DType::F32, device);
        Tensor ids = ctx.empty({shape[0]}, DType::I32, device);
        argmax(ctx, ids, logits_tensor);
        expect_same_values(to_host(ctx, ids), expected, "ids");
      }
    }
  }
}

TEST(OpArgmax, NaNRanksBelowEverything) {
  Ctx& ctx = test_ctx();
  for (const Device device : test_devices(ctx)) {
    HostArray logits{{3, 4}, {NAN, 1.0, NAN, 3.0, NAN, NAN, NAN, NAN, NAN, -kInf, NAN, -kInf}};
    const Tensor logits_tensor = make_tensor(ctx, logits, DType::F32, device);
    Tensor ids = ctx.empty({3}, DType::I32, device);
    argmax(ctx, ids, logits_tensor);
    expect_same_values(to_host(ctx, ids), HostArray{{3}, {3.0, 0.0, 1.0}}, "ids");
  }
}

// Keeps values >= the k-th largest of the row.
HostArray top_k_reference(const HostArray& logits, int64_t k) {
  HostArray out = logits;
  const int64_t vocab = logits.shape[1];
  if (k <= 0 || k >= vocab) return out;
  for (int64_t row = 0; row < logits.shape[0]; ++row) {
    std::vector<double> sorted(logits.values.begin() + row * vocab, logits.values.begin() + (row + 1) * vocab);
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (int64_t c = 0; c < vocab; ++c) {
      if (out[row * vocab + c] < sorted[static_cast<size_t>(k - 1)]) out[row * vocab + c] = -kInf;
    }
  }
  return out;
}

// Ranks tokens by logit (equal logits: lower index first) and keeps the shortest prefix
// whose probability reaches top_p, at least one token.
HostArray top_p_reference(const HostArray& logits, double top_p) {
  HostArray out = logits;
  const int64_t vocab = logits.shape[1];
  if (top_p >= 1.0) return out;
  for (int64_t row = 0; row < logits.shape[0]; ++row) {
    const std::vector<double> probabilities = row_probabilities(logits, row);
    std::vector<int64_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return logits[row * vocab + a] > logits[row * vocab + b]; });
    double cumulative = 0.0;
    size_t kept = 0;
    while (kept == 0 || (kept < order.size() && cumulative < top_p)) {
      cumulative += probabilities[static_cast<size_t>(order[kept])];
      ++kept;
    }
    for (size_t j = kept; j < order.size(); ++j) out[row * vocab + order[j]] = -kInf;
  }
  return out;
}

// Keeps tokens with p >= min_p * max p.
HostArray min_p_reference(const HostArray& logits, double min_p) {
  HostArray out = logits;
  const int64_t vocab = logits.shape[1];
  for (int64_t row = 0; row < logits.shape[0]; ++row) {
    const std::vector<double> probabilities = row_probabilities(logits, row);
    const double max_p = *std::max_element(probabilities.begin(), probabilities.end());
    for (int64_t c = 0; c < vocab; ++c) {
      if (probabilities[static_cast<size_t>(c)] < min_p * max_p) out[row * vocab + c] = -kInf;
    }
  }
  return out;
}

// Runs `filter` on a device copy of `logits` and compares with `reference`.
template <typename Filter>
void check_filter(Ctx& ctx, const HostArray& logits, Device device, Filter filter, const HostArray& reference) {
  Tensor tensor = make_tensor_exact(ctx, logits, DType::F32, device);
  filter(tensor);
  expect_same_values(to_host(ctx, tensor), reference, "filtered logits");
}

// Every device, logits with and without ties, every shape: check(device, logits, label) on
// fresh logits (rounded to f32).
template <typename Check>
void for_each_logits(Ctx& ctx, Rng& rng, Check check) {
  for (const Device device : test_devices(ctx)) {
    for (const bool with_ties : {false, true}) {
      for (const Shape& shape : kShapes) {
        HostArray logits = random_logits(shape, rng, with_ties);
        round_to(logits, DType::F32);
        check(device, logits, case_label(DType::F32, device, shape) + (with_ties ? ", ties" : ""));
      }
    }
  }
}

TEST(OpTopKFilter, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for_each_logits(ctx, rng, [&](Device device, const HostArray& logits, const std::string& label) {
    const int64_t vocab = logits.shape[1];
    for (const int64_t k : {int64_t{1}, int64_t{3}, vocab / 2, vocab - 1, vocab, vocab + 5, int64_t{0}, int64_t{-2}}) {
      SCOPED_TRACE(label + ", k " + std::to_string(k));
      check_filter(
          ctx, logits, device, [&](Tensor& t) { top_k_filter(ctx, t, k); }, top_k_reference(logits, k));
    }
  });
}

TEST(OpTopPFilter, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for_each_logits(ctx, rng, [&](Device device, const HostArray& logits, const std::string& label) {
    for (const float top_p : {0.0F, 0.05F, 0.3F, 0.75F, 0.9F, 0.999F, 1.0F}) {
      SCOPED_TRACE(label + ", top_p " + std::to_string(top_p));
      check_filter(
          ctx, logits, device, [&](Tensor& t) { top_p_filter(ctx, t, top_p); }, top_p_reference(logits, top_p));
    }
  });
}

TEST(OpMinPFilter, MatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for_each_logits(ctx, rng, [&](Device device, const HostArray& logits, const std::string& label) {
    for (const float min_p : {0.0F, 0.01F, 0.1F, 0.3F, 0.7F, 1.0F}) {
      SCOPED_TRACE(label + ", min_p " + std::to_string(min_p));
      check_filter(
          ctx, logits, device, [&](Tensor& t) { min_p_filter(ctx, t, min_p); }, min_p_reference(logits, min_p));
    }
  });
}

TEST(OpSamplingFilters, DropNaNAndKeepRowsOfInfinities) {
  Ctx& ctx = test_ctx();
  for (const Device device : test_devices(ctx)) {
    // Row 0 has NaNs among numbers; row 1 is all -inf; row 2 has two +inf.
    const HostArray logits{{3, 4}, {NAN, 2.0, 1.0, NAN, -kInf, -kInf, -kInf, -kInf, kInf, 0.0, kInf, 5.0}};
    const auto filtered = [&](auto filter) {
      Tensor tensor = make_tensor_exact(ctx, logits, DType::F32, device);
      filter(tensor);
      return to_host(ctx, tensor);
    };
    const HostArray top_k2 = filtered([&](Tensor& t) { top_k_filter(ctx, t, 2); });
    expect_same_values(top_k2, {{3, 4}, {-kInf, 2, 1, -kInf, -kInf, -kInf, -kInf, -kInf, kInf, -kInf, kInf, -kInf}},
                       "top_k 2");
    const HostArray top_k3 = filtered([&](Tensor& t) { top_k_filter(ctx, t, 3); });
    expect_same_values(top_k3, {{3, 4}, {-kInf, 2, 1, -kInf, -kInf, -kInf, -kInf, -kInf, kInf, -kInf, kInf, 5}},
                       "top_k 3");
    // +inf entries share all the probability: top_p 0.5 keeps one of them, the first.
    const HostArray top_p = filtered([&](Tensor& t) { top_p_filter(ctx, t, 0.5F); });
    expect_same_values(top_p, {{3, 4}, {-kInf, 2, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf, kInf, -kInf, -kInf, -kInf}},
                       "top_p 0.5");
    const HostArray min_p = filtered([&](Tensor& t) { min_p_filter(ctx, t, 0.2F); });
    expect_same_values(min_p, {{3, 4}, {-kInf, 2, 1, -kInf, -kInf, -kInf, -kInf, -kInf, kInf, -kInf, kInf, -kInf}},
                       "min_p 0.2");
  }
}

TEST(OpApplyTemperature, DividesByTemperature) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    if (!device.is_cpu() && !ctx.backend(device).supports(OpKind::Scale, DType::F32)) continue;
    for (const Shape& shape : kShapes) {
      for (const float temperature : {0.3F, 0.7F, 1.0F, 2.5F}) {
        SCOPED_TRACE(case_label(DType::F32, device, shape) + ", T " + std::to_string(temperature));
        HostArray logits = random_array(shape, rng, -8.0, 8.0);
        Tensor tensor = make_tensor(ctx, logits, DType::F32, device);
        apply_temperature(ctx, tensor, temperature);
        HostArray expected = logits;
        for (double& value : expected.values) value /= static_cast<double>(temperature);
        expect_close(to_host(ctx, tensor), expected, tolerance_for(DType::F32), "logits");
      }
    }
  }
}

// Draws with the op: ids (N) for logits at (seed, offset).
HostArray draw(Ctx& ctx, const Tensor& logits, float temperature, uint64_t seed, uint64_t offset) {
  Tensor ids = ctx.empty({logits.size(0)}, DType::I32, logits.device());
  sample_multinomial(ctx, ids, logits, temperature, seed, offset);
  return to_host(ctx, ids);
}

TEST(OpSampleMultinomial, MatchesInverseCdfOfPhilox) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const Shape& shape : {Shape{1, 1}, Shape{64, 37}, Shape{16, 1000}}) {
      for (const float temperature : {0.6F, 1.0F, 1.7F}) {
        SCOPED_TRACE(case_label(DType::F32, device, shape) + ", T " + std::to_string(temperature));
        HostArray logits = random_logits(shape, rng, false);
        for (int64_t row = 0; row < shape[0]; ++row) logits[row * shape[1]] = 0.5;  // no row all -inf
        const Tensor tensor = make_tensor(ctx, logits, DType::F32, device);
        const uint64_t seed = rng();
        const uint64_t offset = rng() % 100000;
        HostArray expected{{shape[0]}, std::vector<double>(static_cast<size_t>(shape[0]))};
        for (int64_t row = 0; row < shape[0]; ++row) {
          const double u = Philox(seed, static_cast<uint64_t>(row)).uniform(offset);
          const std::vector<double> probabilities = row_probabilities(logits, row, temperature);
          double cdf = 0.0;
          int64_t chosen = 0;
          while (chosen < shape[1] - 1 && (cdf += probabilities[static_cast<size_t>(chosen)]) <= u) ++chosen;
          expected[row] = static_cast<double>(chosen);
        }
        expect_same_values(draw(ctx, tensor, temperature, seed, offset), expected, "ids");
      }
    }
  }
}

TEST(OpSampleMultinomial, IsReproducibleAndMovesWithOffsetAndSeed) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    SCOPED_TRACE(device_string(device));
    HostArray logits = random_array({8, 50}, rng, -1.0, 1.0);  // close to uniform: draws vary
    const Tensor tensor = make_tensor(ctx, logits, DType::F32, device);
    const uint64_t seed = rng();
    const HostArray first = draw(ctx, tensor, 1.0F, seed, 11);
    expect_same_values(draw(ctx, tensor, 1.0F, seed, 11), first, "same seed and offset");
    std::set<std::vector<double>> by_offset;
    std::set<std::vector<double>> by_seed;
    for (uint64_t i = 0; i < 16; ++i) {
      by_offset.insert(draw(ctx, tensor, 1.0F, seed, 11 + i).values);
      by_seed.insert(draw(ctx, tensor, 1.0F, seed + i, 11).values);
    }
    // 8 rows of 50 near-uniform choices: two equal draws of all rows are all but impossible.
    EXPECT_EQ(by_offset.size(), 16U);
    EXPECT_EQ(by_seed.size(), 16U);
  }
}

// Chi-squared statistic of `counts` against `probabilities` (all > 0) over `total` draws.
double chi_squared(const std::vector<int64_t>& counts, const std::vector<double>& probabilities, int64_t total) {
  double statistic = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = probabilities[i] * static_cast<double>(total);
    statistic += (static_cast<double>(counts[i]) - expected) * (static_cast<double>(counts[i]) - expected) / expected;
  }
  return statistic;
}

TEST(OpSampleMultinomial, FollowsTheDistribution) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  // Ten categories (9 degrees of freedom); the chi-squared value with P(X > x) = 1e-6.
  const std::vector<double> base = {0.3, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05, 0.03, 0.015, 0.005};
  constexpr double kCritical = 44.81;
  constexpr int64_t kRows = 8;
  constexpr int64_t kOffsets = 2500;  // 20000 draws: 8 streams x 2500 counters
  for (const Device device : test_devices(ctx)) {
    for (const float temperature : {1.0F, 0.6F}) {
      SCOPED_TRACE(device_string(device) + ", T " + std::to_string(temperature));
      HostArray logits{{kRows, 10}, {}};
      for (int64_t row = 0; row < kRows; ++row) {
        for (const double p : base) logits.values.push_back(std::log(p) + 3.0 * static_cast<double>(row));
      }
      const Tensor tensor = make_tensor(ctx, logits, DType::F32, device);
      const std::vector<double> probabilities = row_probabilities(logits, 0, temperature);
      const uint64_t seed = rng();
      std::vector<int64_t> counts(base.size(), 0);
      for (uint64_t offset = 0; offset < kOffsets; ++offset) {
        const HostArray ids = draw(ctx, tensor, temperature, seed, offset);
        for (const double id : ids.values) ++counts.at(static_cast<size_t>(id));
      }
      EXPECT_LT(chi_squared(counts, probabilities, kRows * kOffsets), kCritical) << "seed " << seed;
    }
  }
}

TEST(OpSampleMultinomial, NeverDrawsNegativeInfinity) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    SCOPED_TRACE(device_string(device));
    // Even columns are -inf (first and last included); odd ones finite, some far below the max.
    HostArray logits = random_array({32, 21}, rng, -30.0, 3.0);
    for (int64_t row = 0; row < 32; ++row) {
      for (int64_t c = 0; c < 21; c += 2) logits[row * 21 + c] = -kInf;
    }
    const Tensor tensor = make_tensor(ctx, logits, DType::F32, device);
    const uint64_t seed = rng();
    for (uint64_t offset = 0; offset < 200; ++offset) {
      const HostArray ids = draw(ctx, tensor, 1.3F, seed, offset);
      for (int64_t row = 0; row < 32; ++row) {
        ASSERT_EQ(static_cast<int64_t>(ids[row]) % 2, 1) << "row " << row << " offset " << offset;
      }
    }
    // One finite logit: always drawn. No finite logit: -1. Two +inf: only those.
    const HostArray edges{{3, 4}, {-kInf, -kInf, 7.0, -kInf, -kInf, -kInf, -kInf, NAN, kInf, 1.0, kInf, NAN}};
    const Tensor edge_tensor = make_tensor_exact(ctx, edges, DType::F32, device);
    std::set<double> infinite_picks;
    for (uint64_t offset = 0; offset < 64; ++offset) {
      const HostArray ids = draw(ctx, edge_tensor, 0.8F, seed, offset);
      EXPECT_EQ(ids[0], 2.0);
      EXPECT_EQ(ids[1], -1.0);
      infinite_picks.insert(ids[2]);
    }
    EXPECT_EQ(infinite_picks, (std::set<double>{0.0, 2.0}));
  }
}

TEST(OpSampling, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor logits = Tensor::zeros({4, 8}, DType::F32);
  Tensor ids = Tensor::zeros({4}, DType::I32);
  EXPECT_THROW(sample_multinomial(ctx, ids, logits, 0.0F, 1, 0), Error);
  EXPECT_THROW(sample_multinomial(ctx, ids, logits, -1.0F, 1, 0), Error);
  EXPECT_THROW(sample_multinomial(ctx, ids, logits, NAN, 1, 0), Error);
  Tensor wrong_ids = Tensor::zeros({5}, DType::I32);
  EXPECT_THROW(sample_multinomial(ctx, wrong_ids, logits, 1.0F, 1, 0), Error);
  EXPECT_THROW(argmax(ctx, wrong_ids, logits), Error);
  Tensor float_ids = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(argmax(ctx, float_ids, logits), Error);
  Tensor bf16_logits = Tensor::zeros({4, 8}, DType::BF16);
  EXPECT_THROW(argmax(ctx, ids, bf16_logits), Error);
  EXPECT_THROW(top_k_filter(ctx, bf16_logits, 2), Error);
  Tensor flat_logits = Tensor::zeros({8}, DType::F32);
  EXPECT_THROW(top_k_filter(ctx, flat_logits, 2), Error);
  Tensor empty_vocab = Tensor::zeros({4, 0}, DType::F32);
  EXPECT_THROW(argmax(ctx, ids, empty_vocab), Error);
  EXPECT_THROW(top_p_filter(ctx, logits, -0.1F), Error);
  EXPECT_THROW(top_p_filter(ctx, logits, NAN), Error);
  EXPECT_THROW(min_p_filter(ctx, logits, 1.5F), Error);
  EXPECT_THROW(min_p_filter(ctx, logits, -0.1F), Error);
  EXPECT_THROW(apply_temperature(ctx, logits, 0.0F), Error);
  EXPECT_THROW(apply_temperature(ctx, logits, INFINITY), Error);
  EXPECT_THROW(apply_temperature(ctx, bf16_logits, 1.0F), Error);
}

}  // namespace
}  // namespace anvil::testing
