// Fused softmax + cross-entropy: losses against float64, dlogits against finite differences
// (and a float64 analytic reference for vocabularies too large to difference), every backend.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "anvil/ops/cross_entropy.h"
#include "support/op_harness.h"

namespace anvil::testing {
namespace {

// loss[r] = log(sum_v exp(logits[r, v])) - logits[r, target[r]], in float64; 0 for ignored
// (negative) targets.
HostArray cross_entropy_reference(const HostArray& logits, const HostArray& targets) {
  const int64_t vocab = logits.shape[1];
  HostArray losses{{logits.shape[0]}, std::vector<double>(static_cast<size_t>(logits.shape[0]), 0.0)};
  for (int64_t row = 0; row < logits.shape[0]; ++row) {
    if (targets[row] < 0) continue;
    const double* in = logits.values.data() + row * vocab;
    double row_max = in[0];
    for (int64_t v = 1; v < vocab; ++v) row_max = std::max(row_max, in[v]);
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(in[v] - row_max);
    losses[row] = row_max + std::log(sum) - in[static_cast<int64_t>(targets[row])];
  }
  return losses;
}

// d sum(dlosses * losses) / d logits written out: (softmax - onehot) * dlosses[row], in float64.
HostArray cross_entropy_gradient_reference(const HostArray& logits, const HostArray& targets,
                                           const HostArray& dlosses) {
  const int64_t vocab = logits.shape[1];
  HostArray gradient{logits.shape, std::vector<double>(logits.values.size(), 0.0)};
  for (int64_t row = 0; row < logits.shape[0]; ++row) {
    if (targets[row] < 0) continue;
    const double* in = logits.values.data() + row * vocab;
    double row_max = in[0];
    for (int64_t v = 1; v < vocab; ++v) row_max = std::max(row_max, in[v]);
    double sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(in[v] - row_max);
    for (int64_t v = 0; v < vocab; ++v) {
      const double onehot = v == static_cast<int64_t>(targets[row]) ? 1.0 : 0.0;
      gradient[row * vocab + v] = (std::exp(in[v] - row_max) / sum - onehot) * dlosses[row];
    }
  }
  return gradient;
}

struct CrossEntropyCase {
  int64_t rows;
  int64_t vocab;
  bool finite_differences;  // (N V)^2 reference evaluations: only for small cases
};

const std::vector<CrossEntropyCase> kCases = {
    {1, 1, true}, {3, 7, true}, {5, 33, true}, {2, 1000, true}, {4, 1000, false}, {2, 50257, false},
};

// Targets in [0, V), with row 1 ignored (-1) and row 3 ignored the PyTorch way (-100).
HostArray random_targets(int64_t rows, int64_t vocab, Rng& rng) {
  HostArray targets = random_ints({rows}, rng, 0, vocab);
  if (rows > 1) targets[1] = -1.0;
  if (rows > 3) targets[3] = -100.0;
  return targets;
}

TEST(OpCrossEntropy, ForwardMatchesFloat64) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const CrossEntropyCase& test_case : kCases) {
        const Shape shape = {test_case.rows, test_case.vocab};
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray logits = random_array(shape, rng, -30.0, 30.0);
        const HostArray targets = random_targets(test_case.rows, test_case.vocab, rng);
        Tensor logits_tensor = make_tensor(ctx, logits, dtype, device);
        Tensor targets_tensor = make_tensor_exact(ctx, targets, DType::I32, device);
        Tensor losses = ctx.empty({test_case.rows}, DType::F32, device);
        cross_entropy(ctx, losses, logits_tensor, targets_tensor);
        // The loss is computed in f32 from the exact (rounded) logits whatever their dtype.
        expect_close(to_host(ctx, losses), cross_entropy_reference(logits, targets), tolerance_for(DType::F32),
                     "losses");
      }
    }
  }
}

TEST(OpCrossEntropy, BackwardMatchesFiniteDifferences) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    for (const DType dtype : float_dtypes()) {
      for (const CrossEntropyCase& test_case : kCases) {
        const Shape shape = {test_case.rows, test_case.vocab};
        SCOPED_TRACE(case_label(dtype, device, shape));
        HostArray logits = random_array(shape, rng, -30.0, 30.0);
        const HostArray targets = random_targets(test_case.rows, test_case.vocab, rng);
        HostArray dlosses = random_array({test_case.rows}, rng, 0.5, 2.0);
        Tensor logits_tensor = make_tensor(ctx, logits, dtype, device);
        Tensor targets_tensor = make_tensor_exact(ctx, targets, DType::I32, device);
        Tensor dlosses_tensor = make_tensor(ctx, dlosses, DType::F32, device);
        Tensor dlogits = ctx.empty(shape, dtype, device);
        cross_entropy_backward(ctx, dlogits, dlosses_tensor, logits_tensor, targets_tensor);

        const HostArray analytic = cross_entropy_gradient_reference(logits, targets, dlosses);
        Tolerance tolerance = gradient_tolerance(dtype);
        const HostArray got = to_host(ctx, dlogits);
        expect_close(got, analytic, tolerance, "dlogits (analytic)");
        if (test_case.finite_differences) {
          const HostArray dlogits_ref = finite_difference(
              [&](const HostArray& probe) { return cross_entropy_reference(probe, targets); }, logits, dlosses);
          expect_close(got, dlogits_ref, tolerance, "dlogits");
        }
        for (int64_t row = 0; row < test_case.rows; ++row) {
          if (targets[row] >= 0) continue;
          for (int64_t v = 0; v < test_case.vocab; ++v) ASSERT_EQ(got[row * test_case.vocab + v], 0.0) << row;
        }
      }
    }
  }
}

// Runs `call` and expects an anvil::Error whose message contains every one of `parts`.
template <typename Call>
void expect_error_naming(Call call, const std::vector<std::string>& parts) {
  try {
    call();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& error) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

TEST(OpCrossEntropy, RejectsTargetsPastTheVocabulary) {
  Ctx& ctx = test_ctx();
  Rng rng(test_seed());
  for (const Device device : test_devices(ctx)) {
    HostArray logits = random_array({4, 9}, rng);
    const HostArray targets{{4}, {0.0, 8.0, 9.0, -1.0}};  // row 2's target 9 is past V = 9
    Tensor logits_tensor = make_tensor(ctx, logits, DType::F32, device);
    Tensor targets_tensor = make_tensor_exact(ctx, targets, DType::I32, device);
    Tensor losses = ctx.empty({4}, DType::F32, device);
    expect_error_naming([&] { cross_entropy(ctx, losses, logits_tensor, targets_tensor); }, {"row 2", "target 9"});
    HostArray dlosses = random_array({4}, rng);
    Tensor dlosses_tensor = make_tensor(ctx, dlosses, DType::F32, device);
    Tensor dlogits = ctx.empty({4, 9}, DType::F32, device);
    expect_error_naming([&] { cross_entropy_backward(ctx, dlogits, dlosses_tensor, logits_tensor, targets_tensor); },
                        {"row 2", "target 9"});
  }
}

TEST(OpCrossEntropy, RejectsBadArguments) {
  Ctx& ctx = test_ctx();
  Tensor logits = Tensor::zeros({4, 8}, DType::F32);
  Tensor targets = Tensor::zeros({4}, DType::I32);
  Tensor losses = Tensor::zeros({4}, DType::F32);
  Tensor flat_logits = Tensor::zeros({32}, DType::F32);
  EXPECT_THROW(cross_entropy(ctx, losses, flat_logits, targets), Error);
  Tensor int_logits = Tensor::zeros({4, 8}, DType::I32);
  EXPECT_THROW(cross_entropy(ctx, losses, int_logits, targets), Error);
  Tensor float_targets = Tensor::zeros({4}, DType::F32);
  EXPECT_THROW(cross_entropy(ctx, losses, logits, float_targets), Error);
  Tensor short_targets = Tensor::zeros({3}, DType::I32);
  EXPECT_THROW(cross_entropy(ctx, losses, logits, short_targets), Error);
  Tensor bf16_losses = Tensor::zeros({4}, DType::BF16);
  EXPECT_THROW(cross_entropy(ctx, bf16_losses, logits, targets), Error);
  Tensor empty_vocab = Tensor::zeros({4, 0}, DType::F32);
  EXPECT_THROW(cross_entropy(ctx, losses, empty_vocab, targets), Error);
  Tensor dlogits = Tensor::zeros({4, 8}, DType::F32);
  Tensor wrong_dlogits = Tensor::zeros({4, 7}, DType::F32);
  EXPECT_THROW(cross_entropy_backward(ctx, wrong_dlogits, losses, logits, targets), Error);
  Tensor short_dlosses = Tensor::zeros({3}, DType::F32);
  EXPECT_THROW(cross_entropy_backward(ctx, dlogits, short_dlosses, logits, targets), Error);
  EXPECT_THROW(cross_entropy_backward(ctx, dlogits, bf16_losses, logits, targets), Error);
}

}  // namespace
}  // namespace anvil::testing
