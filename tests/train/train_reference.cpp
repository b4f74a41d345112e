// Test support: tiny training configs and the flat parameters seen by the float64 reference.
#include "train/train_reference.h"

#include <cmath>

#include "anvil/core/error.h"

namespace anvil::testing {

using model::Architecture;

model::ModelConfig tiny_train_config(Architecture architecture, bool tied) {
  model::ModelConfig c;
  c.architecture = architecture;
  const bool gpt2 = architecture == Architecture::Gpt2;
  c.norm = gpt2 ? model::NormKind::LayerNorm : model::NormKind::RmsNorm;
  c.mlp = gpt2 ? model::MlpKind::GeluTanh : model::MlpKind::SwiGlu;
  c.learned_positions = gpt2;
  c.vocab_size = 11;
  c.hidden_size = 16;
  c.num_heads = 4;
  c.num_kv_heads = gpt2 ? 4 : 2;
  c.head_dim = 4;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.max_position = 9;
  c.norm_eps = 1e-5F;
  c.tied_embeddings = tied;
  c.rope.layout = RopeLayout::RotateHalf;
  c.rope.base = 10000.0F;
  return c;
}

TinySpec spec_for(const model::ModelConfig& c) {
  TinySpec spec;
  spec.architecture = c.architecture;
  spec.vocab = c.vocab_size;
  spec.hidden = c.hidden_size;
  spec.intermediate = c.intermediate_size;
  spec.layers = c.num_layers;
  spec.heads = c.num_heads;
  spec.kv_heads = c.num_kv_heads;
  spec.head_dim = c.head_dim;
  spec.max_position = c.max_position;
  spec.tied = c.tied_embeddings;
  spec.rope_base = c.rope.base;
  spec.norm_eps = c.norm_eps;
  return spec;
}

namespace {

// Where element (row, col) of a training weight (out, in) lives in the HF tensor.
struct Target {
  std::string name;
  bool transpose = false;   // GPT-2 Conv1D: (in, out)
  int64_t column_base = 0;  // q/k/v inside c_attn
};

Target gpt2_target(const std::string& name, int64_t width) {
  const std::string root = "transformer.";
  for (int part = 0; part < 3; ++part) {
    const std::string proj = std::string(".attn.") + "qkv"[part] + "_proj.";
    const size_t at = name.find(proj);
    if (at == std::string::npos) continue;
    const std::string suffix = name.substr(at + proj.size());  // weight | bias
    return {root + name.substr(0, at) + ".attn.c_attn." + suffix, suffix == "weight", part * width};
  }
  const bool conv1d =
      name.ends_with(".weight") && (name.find("c_proj") != std::string::npos || name.find("c_fc") != std::string::npos);
  if (name == "lm_head.weight") return {name, false, 0};
  return {root + name, conv1d, 0};
}

}  // namespace

void FlatAsHf::set(const std::vector<double>& flat) {
  ANVIL_CHECK(flat.size() == element.size(), "flat_as_hf: ", flat.size(), " values for ", element.size(), " params");
  for (size_t i = 0; i < flat.size(); ++i) *element[i] = flat[i];
}

FlatAsHf flat_as_hf(const model::ModelConfig& config, const train::ParamTable& table) {
  const bool gpt2 = config.architecture == Architecture::Gpt2;
  const int64_t c = config.hidden_size;
  FlatAsHf out;
  // Shapes first (so no array moves once pointers are taken).
  for (const train::ParamEntry& e : table.entries()) {
    const Target t = gpt2 ? gpt2_target(e.name, c) : Target{e.name};
    Shape shape = e.shape;
    if (t.transpose) shape = {e.shape[1], e.shape[0]};
    if (t.name.find("c_attn") != std::string::npos) shape = t.transpose ? Shape{c, 3 * c} : Shape{3 * c};
    HostArray& array = out.weights[t.name];
    array.shape = shape;
    array.values.assign(static_cast<size_t>(shape_numel(shape)), 0.0);
  }
  out.element.resize(static_cast<size_t>(table.total()));
  for (const train::ParamEntry& e : table.entries()) {
    const Target t = gpt2 ? gpt2_target(e.name, c) : Target{e.name};
    HostArray& array = out.weights.at(t.name);
    const int64_t rows = e.shape[0];
    const int64_t cols = e.shape.size() == 2 ? e.shape[1] : 1;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) {
        int64_t index = r * cols + k;
        if (t.transpose) index = k * array.shape[1] + t.column_base + r;   // (in, out) with column offset
        if (!t.transpose && t.column_base > 0) index = t.column_base + r;  // a c_attn bias
        out.element[static_cast<size_t>(e.offset + r * cols + k)] = &array.values[static_cast<size_t>(index)];
      }
    }
  }
  return out;
}

double reference_mean_loss(const TinySpec& spec, const TinyWeights& weights, const std::vector<int32_t>& tokens,
                           const std::vector<int32_t>& targets, int64_t batch, int64_t seq) {
  double total = 0.0;
  int64_t count = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t> row(tokens.begin() + b * seq, tokens.begin() + (b + 1) * seq);
    const HostArray logits = reference_logits(spec, weights, row);
    for (int64_t t = 0; t < seq; ++t) {
      const int32_t target = targets[static_cast<size_t>(b * seq + t)];
      if (target < 0) continue;
      double top = -INFINITY;
      for (int64_t v = 0; v < spec.vocab; ++v) top = std::max(top, logits[t * spec.vocab + v]);
      double sum = 0.0;
      for (int64_t v = 0; v < spec.vocab; ++v) sum += std::exp(logits[t * spec.vocab + v] - top);
      total += top + std::log(sum) - logits[t * spec.vocab + target];
      ++count;
    }
  }
  return total / static_cast<double>(count);
}

void fill_random_params(train::TrainModel& model, Rng& rng) {
  float* data = model.params().data<float>();
  for (const train::ParamEntry& e : model.table().entries()) {
    double low = -0.2, high = 0.2;
    if (e.role == train::ParamRole::Norm) {
      low = 0.8;
      high = 1.2;
    } else if (e.role == train::ParamRole::Embedding) {
      low = -1.0;
      high = 1.0;
    } else if (e.role == train::ParamRole::Matrix || e.role == train::ParamRole::Head) {
      high = std::sqrt(3.0 / static_cast<double>(e.shape[1]));
      low = -high;
    }
    const HostArray values = random_array(e.shape, rng, low, high);
    for (int64_t i = 0; i < e.numel(); ++i) data[e.offset + i] = static_cast<float>(values[i]);
  }
}

std::vector<double> flat_params(train::TrainModel& model) {
  const Tensor& params = model.params();
  return params.to_f64_vector();
}

}  // namespace anvil::testing
