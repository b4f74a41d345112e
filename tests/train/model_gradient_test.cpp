// The training model against the float64 reference transformer: loss and logits, and every
// parameter's gradient against central finite differences of the reference loss.
#include <gtest/gtest.h>

#include <cstring>

#include "anvil/train/train_model.h"
#include "train/train_reference.h"

namespace anvil::testing {
namespace {

using model::Architecture;

struct Case {
  Architecture architecture;
  bool tied;
  int64_t batch, seq;
};

std::string case_name(const Case& c) {
  return std::string(model::architecture_name(c.architecture)) + (c.tied ? " tied" : " untied") +
         " B=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {Architecture::Llama, false, 2, 7},
      {Architecture::Llama, true, 1, 9},
      {Architecture::Gpt2, true, 2, 5},
      {Architecture::Gpt2, false, 3, 9},
  };
  return kCases;
}

struct Inputs {
  std::vector<int32_t> tokens, targets;
  Tensor token_tensor, target_tensor;
};

// Random tokens and targets; one target is ignored (-1).
Inputs random_inputs(const Case& c, int64_t vocab, Rng& rng) {
  Inputs in;
  const int64_t n = c.batch * c.seq;
  for (int64_t i = 0; i < n; ++i) {
    in.tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
    in.targets.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
  }
  in.targets[static_cast<size_t>(rng() % static_cast<uint64_t>(n))] = -1;
  in.token_tensor = Tensor::from_i32({c.batch, c.seq}, in.tokens);
  in.target_tensor = Tensor::from_i32({c.batch, c.seq}, in.targets);
  return in;
}

HostArray as_host(const std::vector<double>& values) {
  return HostArray{{static_cast<int64_t>(values.size())}, values};
}

TEST(TrainModelGradients, LossAndLogitsMatchFloat64Reference) {
  Rng rng(test_seed());
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
    train::TrainModel model(test_ctx(), config);
    fill_random_params(model, rng);
    const Inputs in = random_inputs(c, config.vocab_size, rng);
    const double loss = model.forward_train(in.token_tensor, in.target_tensor);
    FlatAsHf hf = flat_as_hf(config, model.table());
    hf.set(flat_params(model));
    const TinySpec spec = spec_for(config);
    const double reference = reference_mean_loss(spec, hf.weights, in.tokens, in.targets, c.batch, c.seq);
    EXPECT_NEAR(loss, reference, 1e-5 * std::abs(reference));
    for (int64_t b = 0; b < c.batch; ++b) {
      const std::vector<int32_t> row(in.tokens.begin() + b * c.seq, in.tokens.begin() + (b + 1) * c.seq);
      const HostArray ref = reference_logits(spec, hf.weights, row);
      // Logits that barely vary would make any loss near log(vocab) pass (they spread by ~1
      // with these parameters; the loss itself can land near log(vocab) by chance).
      double sum = 0.0;
      double squares = 0.0;
      for (const double value : ref.values) sum += value, squares += value * value;
      const auto count = static_cast<double>(ref.values.size());
      EXPECT_GT(std::sqrt(squares / count - (sum / count) * (sum / count)), 0.1)
          << "logits are nearly uniform: the test would be weak";
      const Tensor got = model.logits().slice(0, b * c.seq, (b + 1) * c.seq);
      expect_close(to_host(test_ctx(), got), ref, Tolerance{1e-5, 1e-6}, "logits of sequence " + std::to_string(b));
    }
  }
}

TEST(TrainModelGradients, EveryGradientMatchesFiniteDifferences) {
  Rng rng(test_seed());
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
    train::TrainModel model(test_ctx(), config);
    fill_random_params(model, rng);
    const Inputs in = random_inputs(c, config.vocab_size, rng);
    model.zero_grad();
    model.forward_train(in.token_tensor, in.target_tensor);
    model.backward();
    const HostArray got = as_host(model.grads().to_f64_vector());

    FlatAsHf hf = flat_as_hf(config, model.table());
    const std::vector<double> flat = flat_params(model);
    hf.set(flat);
    const TinySpec spec = spec_for(config);
    const double step = 1e-5;
    HostArray expected{{static_cast<int64_t>(flat.size())}, std::vector<double>(flat.size())};
    for (size_t i = 0; i < flat.size(); ++i) {
      double* element = hf.element[i];
      *element = flat[i] + step;
      const double plus = reference_mean_loss(spec, hf.weights, in.tokens, in.targets, c.batch, c.seq);
      *element = flat[i] - step;
      const double minus = reference_mean_loss(spec, hf.weights, in.tokens, in.targets, c.batch, c.seq);
      *element = flat[i];
      expected.values[i] = (plus - minus) / (2.0 * step);
    }
    // Per tensor, so a failure names the parameter.
    for (const train::ParamEntry& e : model.table().entries()) {
      const auto begin = static_cast<size_t>(e.offset), end = static_cast<size_t>(e.offset + e.numel());
      const HostArray got_e = as_host({got.values.begin() + begin, got.values.begin() + end});
      const HostArray ref_e = as_host({expected.values.begin() + begin, expected.values.begin() + end});
      expect_close(got_e, ref_e, Tolerance{2e-3, 1e-7, 1.0}, "gradient of " + e.name);
    }
  }
}

TEST(TrainModelGradients, RecomputationGivesBitIdenticalGradients) {
  Rng rng(test_seed());
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
    train::TrainModel saved(test_ctx(), config);
    train::TrainModel recomputed(test_ctx(), config, train::TrainModelOptions{.recompute = true});
    fill_random_params(saved, rng);
    std::memcpy(recomputed.params().raw_data(), saved.params().raw_data(),
                static_cast<size_t>(saved.params().nbytes()));
    const Inputs in = random_inputs(c, config.vocab_size, rng);
    for (train::TrainModel* model : {&saved, &recomputed}) {
      model->zero_grad();
      model->forward_train(in.token_tensor, in.target_tensor);
      model->backward();
    }
    EXPECT_EQ(0, std::memcmp(saved.grads().raw_data(), recomputed.grads().raw_data(),
                             static_cast<size_t>(saved.grads().nbytes())));
    EXPECT_LT(recomputed.activation_memory().saved_bytes, saved.activation_memory().saved_bytes);
  }
}

TEST(TrainModelGradients, BackwardAccumulatesScaledGradients) {
  Rng rng(test_seed());
  const Case c{Architecture::Llama, false, 2, 6};
  const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
  train::TrainModel model(test_ctx(), config);
  fill_random_params(model, rng);
  const Inputs first = random_inputs(c, config.vocab_size, rng);
  const Inputs second = random_inputs(c, config.vocab_size, rng);
  // g(first) + g(second) one at a time...
  std::vector<HostArray> single;
  for (const Inputs* in : {&first, &second}) {
    model.zero_grad();
    model.forward_train(in->token_tensor, in->target_tensor);
    model.backward();
    single.push_back(as_host(model.grads().to_f64_vector()));
  }
  // ... equals the accumulation of both with loss scale 0.5, times 2.
  model.zero_grad();
  for (const Inputs* in : {&first, &second}) {
    model.forward_train(in->token_tensor, in->target_tensor);
    model.backward(0.5F);
  }
  HostArray accumulated = as_host(model.grads().to_f64_vector());
  HostArray expected = single[0];
  for (int64_t i = 0; i < expected.numel(); ++i) {
    expected[i] = 0.5 * (single[0][i] + single[1][i]);
  }
  expect_close(accumulated, expected, Tolerance{1e-5, 1e-9}, "accumulated gradients");
}

TEST(TrainModel, InitialisationIsStandardAndReproducible) {
  model::ModelConfig config = tiny_train_config(Architecture::Gpt2, true);
  config.hidden_size = 64;
  config.head_dim = 16;
  config.intermediate_size = 256;
  config.num_layers = 8;
  train::TrainModel a(test_ctx(), config), b(test_ctx(), config);
  a.init_weights(7);
  b.init_weights(7);
  EXPECT_EQ(0, std::memcmp(a.params().raw_data(), b.params().raw_data(), static_cast<size_t>(a.params().nbytes())));
  auto stddev = [](const Tensor& t) {
    double sum = 0.0, squares = 0.0;
    for (const double v : t.to_f64_vector()) {
      sum += v;
      squares += v * v;
    }
    const auto n = static_cast<double>(t.numel());
    return std::sqrt(squares / n - (sum / n) * (sum / n));
  };
  EXPECT_NEAR(stddev(a.param("h.0.mlp.c_fc.weight")), 0.02, 0.001);
  EXPECT_NEAR(stddev(a.param("h.3.mlp.c_proj.weight")), 0.02 / std::sqrt(16.0), 0.0003);
  EXPECT_NEAR(stddev(a.param("h.3.attn.c_proj.weight")), 0.02 / std::sqrt(16.0), 0.0005);
  for (const double v : a.param("h.1.ln_2.weight").to_f64_vector()) EXPECT_EQ(v, 1.0);
  for (const double v : a.param("h.1.ln_2.bias").to_f64_vector()) EXPECT_EQ(v, 0.0);
  train::TrainModel c(test_ctx(), config);
  c.init_weights(8);
  EXPECT_NE(0, std::memcmp(a.params().raw_data(), c.params().raw_data(), static_cast<size_t>(a.params().nbytes())));
}

TEST(TrainModel, BadInputsAreErrors) {
  const model::ModelConfig config = tiny_train_config(Architecture::Gpt2, true);
  train::TrainModel model(test_ctx(), config);
  model.init_weights(1);
  const std::vector<int32_t> ok(20, 1), out_of_vocab(20, 11);
  EXPECT_THROW(model.backward(), Error);  // before any forward
  EXPECT_THROW(model.forward_train(Tensor::from_i32({2, 10}, ok), Tensor::from_i32({2, 10}, ok)), Error);  // T > 9
  EXPECT_THROW(model.forward_train(Tensor::from_i32({4, 5}, out_of_vocab), Tensor::from_i32({4, 5}, ok)), Error);
  EXPECT_THROW(model.forward_train(Tensor::from_i32({4, 5}, ok), Tensor::from_i32({4, 5}, out_of_vocab)), Error);
  EXPECT_THROW(model.forward_train(Tensor::from_i32({4, 5}, ok), Tensor::from_i32({5, 4}, ok)), Error);
  model::ModelConfig qwen = config;
  qwen.architecture = Architecture::Qwen2;
  EXPECT_THROW(train::TrainModel(test_ctx(), qwen), Error);
}

}  // namespace
}  // namespace anvil::testing
