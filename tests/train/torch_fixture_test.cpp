// The training model against PyTorch autograd (llm.c's test_gpt2 pattern). Inputs
// (tests/fixtures/train/<name>_inputs.safetensors: a tiny model's flat parameters, its
// layout and config, the batches) are committed; tools/gen_train_fixtures.py builds the
// same model in PyTorch from them and writes <name>_torch.safetensors with the logits,
// loss, every gradient, and the losses of 10 AdamW steps. Without that file the test skips.
// ANVIL_WRITE_TRAIN_FIXTURE_INPUTS=1 rewrites the inputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "anvil/io/safetensors.h"
#include "anvil/train/optimizer.h"
#include "anvil/train/train_model.h"
#include "train/train_reference.h"

namespace anvil::testing {
namespace {

namespace fs = std::filesystem;
using model::Architecture;

constexpr int64_t kBatch = 2, kSeq = 7, kSteps = 10;

std::string fixture_path(const std::string& file) {
  return std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/train/" + file;
}

// The optimizer of the 10-step check (constant learning rate; torch's defaults otherwise).
train::OptimizerConfig fixture_optimizer() {
  train::OptimizerConfig config;
  config.lr = 1e-2;
  config.beta1 = 0.9;
  config.beta2 = 0.95;
  config.eps = 1e-8;
  config.weight_decay = 0.1;
  config.grad_clip = 1.0;
  return config;
}

nlohmann::json describe(const model::ModelConfig& c, const train::ParamTable& table) {
  const train::OptimizerConfig o = fixture_optimizer();
  return {{"model",
           {{"family", c.architecture == Architecture::Gpt2 ? "gpt2" : "llama"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"num_layers", c.num_layers},
            {"num_heads", c.num_heads},
            {"num_kv_heads", c.num_kv_heads},
            {"head_dim", c.head_dim},
            {"intermediate_size", c.intermediate_size},
            {"max_position", c.max_position},
            {"norm_eps", c.norm_eps},
            {"rope_theta", c.rope.base},
            {"tied_embeddings", c.tied_embeddings}}},
          {"optimizer",
           {{"lr", o.lr},
            {"beta1", o.beta1},
            {"beta2", o.beta2},
            {"eps", o.eps},
            {"weight_decay", o.weight_decay},
            {"grad_clip", o.grad_clip},
            {"decay_roles", {"matrix", "head"}},
            {"steps", kSteps}}},
          {"param_layout", table.to_json()}};
}

struct FixtureCase {
  std::string name;
  Architecture architecture;
  bool tied;
};

const std::vector<FixtureCase>& fixture_cases() {
  static const std::vector<FixtureCase> kCases = {{"tiny_llama", Architecture::Llama, false},
                                                  {"tiny_gpt2", Architecture::Gpt2, true}};
  return kCases;
}

void write_inputs(const FixtureCase& c) {
  const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
  train::TrainModel model(test_ctx(), config);
  Rng rng(c.architecture == Architecture::Gpt2 ? 2 : 1);
  fill_random_params(model, rng);
  std::vector<int32_t> tokens, targets;
  for (int64_t i = 0; i < (kSteps + 1) * kBatch * kSeq; ++i) {
    tokens.push_back(static_cast<int32_t>(rng() % 11));
    targets.push_back(i == 3 ? -1 : static_cast<int32_t>(rng() % 11));  // one ignored target
  }
  fs::create_directories(fixture_path(""));
  io::write_safetensors(fixture_path(c.name + "_inputs.safetensors"),
                        {{"params", model.params()},
                         {"tokens", Tensor::from_i32({kSteps + 1, kBatch, kSeq}, tokens)},
                         {"targets", Tensor::from_i32({kSteps + 1, kBatch, kSeq}, targets)}},
                        {{"anvil.fixture", describe(config, model.table()).dump()}});
}

Tensor batch_of(const io::SafetensorsFile& file, const char* name, int64_t index) {
  return file.tensor(name).select(0, index).contiguous();
}

TEST(TrainTorchFixtures, WriteInputsWhenAsked) {
  if (std::getenv("ANVIL_WRITE_TRAIN_FIXTURE_INPUTS") == nullptr) GTEST_SKIP() << "inputs are committed";
  for (const FixtureCase& c : fixture_cases()) write_inputs(c);
}

TEST(TrainTorchFixtures, MatchPyTorchAutograd) {
  int compared = 0;
  for (const FixtureCase& c : fixture_cases()) {
    SCOPED_TRACE(c.name);
    const std::string inputs_path = fixture_path(c.name + "_inputs.safetensors");
    const std::string torch_path = fixture_path(c.name + "_torch.safetensors");
    if (!fs::exists(torch_path) || !fs::exists(inputs_path)) continue;
    ++compared;
    const io::SafetensorsFile inputs = io::SafetensorsFile::open(inputs_path);
    const io::SafetensorsFile torch = io::SafetensorsFile::open(torch_path);
    const model::ModelConfig config = tiny_train_config(c.architecture, c.tied);
    train::TrainModel model(test_ctx(), config);
    ASSERT_TRUE(model.table().matches(nlohmann::json::parse(inputs.metadata().at("anvil.fixture"))["param_layout"]));
    std::memcpy(model.params().raw_data(), inputs.tensor("params").raw_data(),
                static_cast<size_t>(model.params().nbytes()));
    // One step: logits, loss, every gradient.
    model.zero_grad();
    const double loss = model.forward_train(batch_of(inputs, "tokens", 0), batch_of(inputs, "targets", 0));
    model.backward();
    const double torch_loss = torch.tensor("loss").to_f64_vector()[0];
    EXPECT_NEAR(loss, torch_loss, 1e-5 * std::abs(torch_loss));
    expect_close(to_host(test_ctx(), model.logits()), to_host(test_ctx(), torch.tensor("logits")),
                 Tolerance{1e-5, 1e-6}, "logits");
    for (const train::ParamEntry& e : model.table().entries()) {
      expect_close(to_host(test_ctx(), model.grad(e.name)), to_host(test_ctx(), torch.tensor("grad." + e.name)),
                   Tolerance{1e-4, 1e-7}, "gradient of " + e.name);
    }
    // Ten AdamW steps (one batch each) from the same weights.
    std::memcpy(model.params().raw_data(), inputs.tensor("params").raw_data(),
                static_cast<size_t>(model.params().nbytes()));
    train::Optimizer optimizer(test_ctx(), model.table(), fixture_optimizer());
    const std::vector<double> torch_losses = torch.tensor("adamw_losses").to_f64_vector();
    ASSERT_EQ(torch_losses.size(), static_cast<size_t>(kSteps));
    for (int64_t step = 0; step < kSteps; ++step) {
      model.zero_grad();
      const double step_loss =
          model.forward_train(batch_of(inputs, "tokens", step + 1), batch_of(inputs, "targets", step + 1));
      model.backward();
      optimizer.step(model.params(), model.grads(), 1.0);
      EXPECT_NEAR(step_loss, torch_losses[static_cast<size_t>(step)], 2e-4 * std::abs(torch_losses[step]))
          << "step " << step + 1;
    }
  }
  if (compared == 0)
    GTEST_SKIP() << "no tests/fixtures/train/*_torch.safetensors (make them with tools/gen_train_fixtures.py)";
}

}  // namespace
}  // namespace anvil::testing
