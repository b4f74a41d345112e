#pragma once
// Test support for the training tests: tiny model configs, the flat parameters of a
// TrainModel seen as Hugging Face weights (names and layouts written here, independently
// of the exporter), and the float64 reference loss of tests/model/tiny_model.h.
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/model/model_config.h"
#include "anvil/train/train_model.h"
#include "model/tiny_model.h"

namespace anvil::testing {

// A tiny trainable config: vocab 11, width 16, 4 heads (2 KV heads for Llama), MLP 24, 2 layers.
model::ModelConfig tiny_train_config(model::Architecture architecture, bool tied);
// The reference spec of a training config.
TinySpec spec_for(const model::ModelConfig& config);

// HF weights of a flat parameter vector, and for every flat element the reference weight
// value it is (so finite differences can perturb one element in place).
struct FlatAsHf {
  TinyWeights weights;
  std::vector<double*> element;  // (P) pointers into weights
  void set(const std::vector<double>& flat);
};
FlatAsHf flat_as_hf(const model::ModelConfig& config, const train::ParamTable& table);

// Mean cross-entropy (targets < 0 ignored) of B sequences of T tokens in float64.
double reference_mean_loss(const TinySpec& spec, const TinyWeights& weights, const std::vector<int32_t>& tokens,
                           const std::vector<int32_t>& targets, int64_t batch, int64_t seq);

// Random parameters of a useful scale (matrices ~ 1/sqrt(fan-in), norm gains near 1,
// biases and embeddings O(0.1..1)), so the test sees large, non-uniform gradients.
void fill_random_params(train::TrainModel& model, Rng& rng);

// The f32 flat parameters as doubles.
std::vector<double> flat_params(train::TrainModel& model);

}  // namespace anvil::testing
