// Tiny random transformers: specs, random weights and the float64 reference forward.
#include "model/tiny_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "anvil/core/convert.h"
#include "anvil/core/float_convert.h"

namespace anvil::testing {

using model::Architecture;

TinySpec llama_spec() { return {}; }

TinySpec llama3_spec() {
  TinySpec spec;
  spec.rope_base = 500000.0;
  spec.llama3_factor = 8.0;
  return spec;
}

TinySpec smollm_spec() {
  TinySpec spec;
  spec.tied = true;
  spec.heads = 4;
  spec.kv_heads = 1;
  spec.rope_base = 100000.0;
  return spec;
}

TinySpec mistral_spec() {
  TinySpec spec;
  spec.architecture = Architecture::Mistral;
  spec.sliding_window = 5;
  return spec;
}

TinySpec qwen2_spec() {
  TinySpec spec;
  spec.architecture = Architecture::Qwen2;
  spec.rope_base = 1000000.0;
  spec.norm_eps = 1e-6;
  return spec;
}

TinySpec qwen3_spec() {
  TinySpec spec;
  spec.architecture = Architecture::Qwen3;
  spec.head_dim = 24;  // Hq * D = 96 != C = 64, as in the real Qwen3 models
  spec.tied = true;
  spec.rope_base = 1000000.0;
  spec.norm_eps = 1e-6;
  return spec;
}

TinySpec gpt2_spec() {
  TinySpec spec;
  spec.architecture = Architecture::Gpt2;
  spec.kv_heads = spec.heads;
  spec.intermediate = 4 * spec.hidden;
  spec.tied = true;
  return spec;
}

std::string spec_label(const TinySpec& spec) {
  return std::string(model::architecture_name(spec.architecture)) + (spec.tied ? " (tied)" : "") +
         (spec.llama3_factor > 0.0 ? " (llama3 rope)" : "") +
         (spec.sliding_window > 0 ? " (window " + std::to_string(spec.sliding_window) + ")" : "");
}

namespace {

// A linear weight (rows, cols) with unit-variance outputs for unit-variance inputs.
HostArray linear_weight(int64_t rows, int64_t cols, Rng& rng) {
  const double bound = std::sqrt(3.0 / static_cast<double>(cols));
  return random_array({rows, cols}, rng, -bound, bound);
}

void add_llama_layer(TinyWeights& w, const TinySpec& spec, const std::string& p, Rng& rng) {
  const int64_t c = spec.hidden;
  const int64_t q_dim = spec.heads * spec.head_dim;
  const int64_t kv_dim = spec.kv_heads * spec.head_dim;
  w[p + "input_layernorm.weight"] = random_array({c}, rng, 0.8, 1.2);
  w[p + "self_attn.q_proj.weight"] = linear_weight(q_dim, c, rng);
  w[p + "self_attn.k_proj.weight"] = linear_weight(kv_dim, c, rng);
  w[p + "self_attn.v_proj.weight"] = linear_weight(kv_dim, c, rng);
  w[p + "self_attn.o_proj.weight"] = linear_weight(c, q_dim, rng);
  if (spec.qkv_bias()) {
    w[p + "self_attn.q_proj.bias"] = random_array({q_dim}, rng, -0.3, 0.3);
    w[p + "self_attn.k_proj.bias"] = random_array({kv_dim}, rng, -0.3, 0.3);
    w[p + "self_attn.v_proj.bias"] = random_array({kv_dim}, rng, -0.3, 0.3);
  }
  if (spec.qk_norm()) {
    w[p + "self_attn.q_norm.weight"] = random_array({spec.head_dim}, rng, 0.8, 1.2);
    w[p + "self_attn.k_norm.weight"] = random_array({spec.head_dim}, rng, 0.8, 1.2);
  }
  w[p + "post_attention_layernorm.weight"] = random_array({c}, rng, 0.8, 1.2);
  w[p + "mlp.gate_proj.weight"] = linear_weight(spec.intermediate, c, rng);
  w[p + "mlp.up_proj.weight"] = linear_weight(spec.intermediate, c, rng);
  w[p + "mlp.down_proj.weight"] = linear_weight(c, spec.intermediate, rng);
}

// GPT-2 Conv1D weights are (in, out).
void add_gpt2_layer(TinyWeights& w, const TinySpec& spec, const std::string& p, Rng& rng) {
  const int64_t c = spec.hidden;
  const int64_t f = spec.intermediate;
  auto conv1d = [&](int64_t in, int64_t out) {
    const double bound = std::sqrt(3.0 / static_cast<double>(in));
    return random_array({in, out}, rng, -bound, bound);
  };
  w[p + "ln_1.weight"] = random_array({c}, rng, 0.8, 1.2);
  w[p + "ln_1.bias"] = random_array({c}, rng, -0.2, 0.2);
  w[p + "attn.c_attn.weight"] = conv1d(c, 3 * c);
  w[p + "attn.c_attn.bias"] = random_array({3 * c}, rng, -0.2, 0.2);
  w[p + "attn.c_proj.weight"] = conv1d(c, c);
  w[p + "attn.c_proj.bias"] = random_array({c}, rng, -0.2, 0.2);
  w[p + "ln_2.weight"] = random_array({c}, rng, 0.8, 1.2);
  w[p + "ln_2.bias"] = random_array({c}, rng, -0.2, 0.2);
  w[p + "mlp.c_fc.weight"] = conv1d(c, f);
  w[p + "mlp.c_fc.bias"] = random_array({f}, rng, -0.2, 0.2);
  w[p + "mlp.c_proj.weight"] = conv1d(f, c);
  w[p + "mlp.c_proj.bias"] = random_array({c}, rng, -0.2, 0.2);
}

}  // namespace

TinyWeights random_weights(const TinySpec& spec, Rng& rng) {
  TinyWeights w;
  const int64_t c = spec.hidden;
  if (spec.gpt2()) {
    w["transformer.wte.weight"] = random_array({spec.vocab, c}, rng);
    w["transformer.wpe.weight"] = random_array({spec.max_position, c}, rng, -0.5, 0.5);
    for (int64_t l = 0; l < spec.layers; ++l) add_gpt2_layer(w, spec, "transformer.h." + std::to_string(l) + ".", rng);
    w["transformer.ln_f.weight"] = random_array({c}, rng, 0.8, 1.2);
    w["transformer.ln_f.bias"] = random_array({c}, rng, -0.2, 0.2);
    return w;
  }
  w["model.embed_tokens.weight"] = random_array({spec.vocab, c}, rng);
  for (int64_t l = 0; l < spec.layers; ++l) add_llama_layer(w, spec, "model.layers." + std::to_string(l) + ".", rng);
  w["model.norm.weight"] = random_array({c}, rng, 0.8, 1.2);
  if (!spec.tied) w["lm_head.weight"] = linear_weight(spec.vocab, c, rng);
  return w;
}

double llama3_frequency_divisor(const TinySpec& spec, int64_t pair) {
  if (spec.llama3_factor <= 0.0) return 1.0;
  const double frequency =
      std::pow(spec.rope_base, -2.0 * static_cast<double>(pair) / static_cast<double>(spec.head_dim));
  const double wavelength = 2.0 * std::numbers::pi / frequency;
  const auto original = static_cast<double>(spec.llama3_original_max_position);
  if (wavelength < original / spec.llama3_high_freq_factor) return 1.0;
  if (wavelength > original / spec.llama3_low_freq_factor) return spec.llama3_factor;
  const double smooth = (original / wavelength - spec.llama3_low_freq_factor) /
                        (spec.llama3_high_freq_factor - spec.llama3_low_freq_factor);
  return 1.0 / ((1.0 - smooth) / spec.llama3_factor + smooth);
}

void round_matrices(TinyWeights& weights, DType dtype) {
  for (auto& [name, array] : weights) {
    if (array.shape.size() != 2) continue;
    std::vector<char> stored(static_cast<size_t>(dtype_bytes_for(dtype, array.numel())));
    convert_host(DType::F64, array.values.data(), dtype, stored.data(), array.numel());
    convert_host(dtype, stored.data(), DType::F64, array.values.data(), array.numel());
  }
}

// ---- float64 reference forward --------------------------------------------------------

namespace {

using Vec = std::vector<double>;

// x rounded as quantized_matmul rounds its input for 32-element-block weights: codes
// round(x * 127 / amax), scale amax / 127 rounded to f16 (as ggml's Q8_0 activations).
Vec round_q8_blocks(const Vec& x) {
  constexpr size_t kBlock = 32;
  Vec y(x.size());
  for (size_t start = 0; start < x.size(); start += kBlock) {
    const size_t end = std::min(x.size(), start + kBlock);
    double amax = 0.0;
    for (size_t i = start; i < end; ++i) amax = std::max(amax, std::abs(x[i]));
    const double inverse = amax > 0.0 ? 127.0 / amax : 0.0;
    const double scale = f16_to_f32(f32_to_f16(static_cast<float>(amax / 127.0)));
    for (size_t i = start; i < end; ++i) y[i] = std::nearbyint(x[i] * inverse) * scale;
  }
  return y;
}

// The input a linear layer of `spec` sees.
Vec linear_input(const TinySpec& spec, const Vec& x) {
  return spec.reference_rounds_inputs_q8 ? round_q8_blocks(x) : x;
}

// W (out, in) x.
Vec linear(const TinySpec& spec, const HostArray& w, const Vec& x_in) {
  const Vec x = linear_input(spec, x_in);
  const int64_t rows = w.shape[0];
  const int64_t cols = w.shape[1];
  Vec y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
  }
  return y;
}

// x W for a Conv1D weight W (in, out).
Vec conv1d(const TinySpec& spec, const HostArray& w, const Vec& x_in) {
  const Vec x = linear_input(spec, x_in);
  const int64_t in = w.shape[0];
  const int64_t out = w.shape[1];
  Vec y(static_cast<size_t>(out), 0.0);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t o = 0; o < out; ++o) y[o] += x[i] * w[i * out + o];
  }
  return y;
}

void add_into(Vec& x, const Vec& y) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

void add_bias(Vec& x, const HostArray& bias) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += bias[static_cast<int64_t>(i)];
}

// RMSNorm of each consecutive group of `width` values of x.
Vec rms_norm(const Vec& x, const HostArray& weight, double eps) {
  const auto width = static_cast<size_t>(weight.numel());
  Vec y(x.size());
  for (size_t start = 0; start < x.size(); start += width) {
    double squares = 0.0;
    for (size_t i = 0; i < width; ++i) squares += x[start + i] * x[start + i];
    const double scale = 1.0 / std::sqrt(squares / static_cast<double>(width) + eps);
    for (size_t i = 0; i < width; ++i) y[start + i] = x[start + i] * scale * weight[static_cast<int64_t>(i)];
  }
  return y;
}

Vec layer_norm(const Vec& x, const HostArray& weight, const HostArray& bias, double eps) {
  double mean = 0.0;
  for (const double value : x) mean += value;
  mean /= static_cast<double>(x.size());
  double variance = 0.0;
  for (const double value : x) variance += (value - mean) * (value - mean);
  variance /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    y[i] = (x[i] - mean) / std::sqrt(variance + eps) * weight[static_cast<int64_t>(i)] + bias[static_cast<int64_t>(i)];
  }
  return y;
}

// Rotate-half RoPE (HF layout) on every head of x: pairs (i, i + D/2), angle
// pos * base^(-2i/D) / (Llama 3 divisor).
void rope(Vec& x, int64_t position, const TinySpec& spec) {
  const int64_t head_dim = spec.head_dim;
  const int64_t half = head_dim / 2;
  for (size_t head = 0; head < x.size(); head += static_cast<size_t>(head_dim)) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position) *
                           std::pow(spec.rope_base, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim)) /
                           llama3_frequency_divisor(spec, i);
      const double a = x[head + i];
      const double b = x[head + i + half];
      x[head + i] = a * std::cos(angle) - b * std::sin(angle);
      x[head + i + half] = b * std::cos(angle) + a * std::sin(angle);
    }
  }
}

// Causal (optionally windowed) attention of every position over the sequence's q/k/v rows.
std::vector<Vec> attention(const TinySpec& spec, const std::vector<Vec>& q, const std::vector<Vec>& k,
                           const std::vector<Vec>& v) {
  const int64_t d = spec.head_dim;
  const int64_t group = spec.heads / spec.kv_heads;
  std::vector<Vec> out(q.size(), Vec(static_cast<size_t>(spec.heads * d), 0.0));
  for (size_t t = 0; t < q.size(); ++t) {
    const size_t first = spec.sliding_window > 0 && t + 1 > static_cast<size_t>(spec.sliding_window)
                             ? t + 1 - static_cast<size_t>(spec.sliding_window)
                             : 0;
    for (int64_t h = 0; h < spec.heads; ++h) {
      const int64_t kv = h / group;
      Vec scores;
      for (size_t j = first; j <= t; ++j) {
        double dot = 0.0;
        for (int64_t c = 0; c < d; ++c) dot += q[t][h * d + c] * k[j][kv * d + c];
        scores.push_back(dot / std::sqrt(static_cast<double>(d)));
      }
      double top = scores[0];
      for (const double s : scores) top = std::max(top, s);
      double total = 0.0;
      for (double& s : scores) total += (s = std::exp(s - top));
      for (size_t j = first; j <= t; ++j) {
        for (int64_t c = 0; c < d; ++c) out[t][h * d + c] += scores[j - first] / total * v[j][kv * d + c];
      }
    }
  }
  return out;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

void llama_layer(const TinySpec& spec, const TinyWeights& w, const std::string& p, std::vector<Vec>& x) {
  std::vector<Vec> q, k, v;
  for (size_t t = 0; t < x.size(); ++t) {
    const Vec h = rms_norm(x[t], w.at(p + "input_layernorm.weight"), spec.norm_eps);
    Vec qt = linear(spec, w.at(p + "self_attn.q_proj.weight"), h);
    Vec kt = linear(spec, w.at(p + "self_attn.k_proj.weight"), h);
    Vec vt = linear(spec, w.at(p + "self_attn.v_proj.weight"), h);
    if (spec.qkv_bias()) {
      add_bias(qt, w.at(p + "self_attn.q_proj.bias"));
      add_bias(kt, w.at(p + "self_attn.k_proj.bias"));
      add_bias(vt, w.at(p + "self_attn.v_proj.bias"));
    }
    if (spec.qk_norm()) {
      qt = rms_norm(qt, w.at(p + "self_attn.q_norm.weight"), spec.norm_eps);
      kt = rms_norm(kt, w.at(p + "self_attn.k_norm.weight"), spec.norm_eps);
    }
    rope(qt, static_cast<int64_t>(t), spec);
    rope(kt, static_cast<int64_t>(t), spec);
    q.push_back(qt);
    k.push_back(kt);
    v.push_back(vt);
  }
  const std::vector<Vec> attended = attention(spec, q, k, v);
  for (size_t t = 0; t < x.size(); ++t) {
    add_into(x[t], linear(spec, w.at(p + "self_attn.o_proj.weight"), attended[t]));
    const Vec h = rms_norm(x[t], w.at(p + "post_attention_layernorm.weight"), spec.norm_eps);
    Vec gate = linear(spec, w.at(p + "mlp.gate_proj.weight"), h);
    const Vec up = linear(spec, w.at(p + "mlp.up_proj.weight"), h);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = silu(gate[i]) * up[i];
    add_into(x[t], linear(spec, w.at(p + "mlp.down_proj.weight"), gate));
  }
}

void gpt2_layer(const TinySpec& spec, const TinyWeights& w, const std::string& p, std::vector<Vec>& x) {
  const auto c = static_cast<size_t>(spec.hidden);
  std::vector<Vec> q, k, v;
  for (const Vec& row : x) {
    const Vec h = layer_norm(row, w.at(p + "ln_1.weight"), w.at(p + "ln_1.bias"), spec.norm_eps);
    Vec qkv = conv1d(spec, w.at(p + "attn.c_attn.weight"), h);
    add_bias(qkv, w.at(p + "attn.c_attn.bias"));
    q.emplace_back(qkv.begin(), qkv.begin() + static_cast<std::ptrdiff_t>(c));
    k.emplace_back(qkv.begin() + static_cast<std::ptrdiff_t>(c), qkv.begin() + static_cast<std::ptrdiff_t>(2 * c));
    v.emplace_back(qkv.begin() + static_cast<std::ptrdiff_t>(2 * c), qkv.end());
  }
  const std::vector<Vec> attended = attention(spec, q, k, v);
  for (size_t t = 0; t < x.size(); ++t) {
    Vec out = conv1d(spec, w.at(p + "attn.c_proj.weight"), attended[t]);
    add_bias(out, w.at(p + "attn.c_proj.bias"));
    add_into(x[t], out);
    const Vec h = layer_norm(x[t], w.at(p + "ln_2.weight"), w.at(p + "ln_2.bias"), spec.norm_eps);
    Vec hidden = conv1d(spec, w.at(p + "mlp.c_fc.weight"), h);
    add_bias(hidden, w.at(p + "mlp.c_fc.bias"));
    for (double& value : hidden) value = gelu_tanh(value);
    Vec down = conv1d(spec, w.at(p + "mlp.c_proj.weight"), hidden);
    add_bias(down, w.at(p + "mlp.c_proj.bias"));
    add_into(x[t], down);
  }
}

Vec table_row(const HostArray& table, int64_t row) {
  const int64_t c = table.shape[1];
  return {table.values.begin() + row * c, table.values.begin() + (row + 1) * c};
}

}  // namespace

HostArray reference_logits(const TinySpec& spec, const TinyWeights& w, const std::vector<int32_t>& tokens) {
  const std::string root = spec.gpt2() ? "transformer." : "model.";
  const HostArray& embedding = w.at(spec.gpt2() ? "transformer.wte.weight" : "model.embed_tokens.weight");
  std::vector<Vec> x;
  for (size_t t = 0; t < tokens.size(); ++t) {
    x.push_back(table_row(embedding, tokens[t]));
    if (spec.gpt2()) add_into(x.back(), table_row(w.at("transformer.wpe.weight"), static_cast<int64_t>(t)));
  }
  for (int64_t l = 0; l < spec.layers; ++l) {
    if (spec.gpt2()) {
      gpt2_layer(spec, w, "transformer.h." + std::to_string(l) + ".", x);
    } else {
      llama_layer(spec, w, "model.layers." + std::to_string(l) + ".", x);
    }
  }
  const HostArray& head = spec.tied ? embedding : w.at("lm_head.weight");
  HostArray logits{{static_cast<int64_t>(tokens.size()), spec.vocab}, {}};
  for (const Vec& row : x) {
    const Vec normed =
        spec.gpt2() ? layer_norm(row, w.at("transformer.ln_f.weight"), w.at("transformer.ln_f.bias"), spec.norm_eps)
                    : rms_norm(row, w.at("model.norm.weight"), spec.norm_eps);
    const Vec out = linear(spec, head, normed);
    logits.values.insert(logits.values.end(), out.begin(), out.end());
  }
  return logits;
}

}  // namespace anvil::testing
