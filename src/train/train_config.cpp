// TrainConfig: defaults, merging a JSON file and key=value overrides, typed parsing.
#include "anvil/train/train_config.h"

#include <fstream>
#include <sstream>

#include "anvil/core/error.h"

namespace anvil::train {

namespace {

using Json = nlohmann::json;

// Typed reads from one section of the merged config; errors name "section.key".
class Section {
 public:
  Section(const Json& root, std::string name) : object_(root.at(name)), name_(std::move(name)) {}

  [[nodiscard]] const Json& at(const char* key) const { return object_.at(key); }
  [[nodiscard]] std::string where(const char* key) const { return "config: " + name_ + "." + key; }
  [[nodiscard]] int64_t integer(const char* key) const {
    ANVIL_CHECK(at(key).is_number_integer(), where(key), " must be an integer, got ", at(key).dump());
    return at(key).get<int64_t>();
  }
  [[nodiscard]] int64_t positive(const char* key) const {
    const int64_t value = integer(key);
    ANVIL_CHECK(value > 0, where(key), " must be > 0, got ", value);
    return value;
  }
  [[nodiscard]] int64_t non_negative(const char* key) const {
    const int64_t value = integer(key);
    ANVIL_CHECK(value >= 0, where(key), " must be >= 0, got ", value);
    return value;
  }
  [[nodiscard]] double real(const char* key) const {
    ANVIL_CHECK(at(key).is_number(), where(key), " must be a number, got ", at(key).dump());
    return at(key).get<double>();
  }
  [[nodiscard]] double real_in(const char* key, double low, double high) const {
    const double value = real(key);
    ANVIL_CHECK(value >= low && value <= high, where(key), " must be in [", low, ", ", high, "], got ", value);
    return value;
  }
  [[nodiscard]] bool boolean(const char* key) const {
    ANVIL_CHECK(at(key).is_boolean(), where(key), " must be true or false, got ", at(key).dump());
    return at(key).get<bool>();
  }
  [[nodiscard]] std::string string(const char* key) const {
    ANVIL_CHECK(at(key).is_string(), where(key), " must be a string, got ", at(key).dump());
    return at(key).get<std::string>();
  }

 private:
  const Json& object_;
  std::string name_;
};

model::ModelConfig parse_model(const Section& s, double& init_std) {
  model::ModelConfig config;
  const std::string family = s.string("family");
  ANVIL_CHECK(family == "llama" || family == "gpt2", s.where("family"), " must be \"llama\" or \"gpt2\", got \"",
              family, "\"");
  const bool gpt2 = family == "gpt2";
  config.architecture = gpt2 ? model::Architecture::Gpt2 : model::Architecture::Llama;
  config.norm = gpt2 ? model::NormKind::LayerNorm : model::NormKind::RmsNorm;
  config.mlp = gpt2 ? model::MlpKind::GeluTanh : model::MlpKind::SwiGlu;
  config.learned_positions = gpt2;
  config.vocab_size = s.non_negative("vocab_size");
  config.hidden_size = s.positive("hidden_size");
  config.num_layers = s.positive("num_layers");
  config.num_heads = s.positive("num_heads");
  ANVIL_CHECK(config.hidden_size % config.num_heads == 0, s.where("hidden_size"), " ", config.hidden_size,
              " must be a multiple of num_heads ", config.num_heads);
  config.head_dim = config.hidden_size / config.num_heads;
  const int64_t kv_heads = s.non_negative("num_kv_heads");
  config.num_kv_heads = kv_heads == 0 ? config.num_heads : kv_heads;
  ANVIL_CHECK(!gpt2 || config.num_kv_heads == config.num_heads, s.where("num_kv_heads"),
              ": GPT-2 has no grouped-query attention");
  const int64_t hidden = s.non_negative("intermediate_size");
  // Llama's SwiGLU width: 8/3 C (the same parameters as a 4C GELU MLP), rounded up to 64.
  const int64_t swiglu_width = (8 * config.hidden_size / 3 + 63) / 64 * 64;
  config.intermediate_size = hidden > 0 ? hidden : (gpt2 ? 4 * config.hidden_size : swiglu_width);
  config.max_position = s.non_negative("max_position");
  config.norm_eps = static_cast<float>(s.real("norm_eps"));
  config.rope.base = static_cast<float>(s.real("rope_theta"));
  config.rope.layout = RopeLayout::RotateHalf;
  config.tied_embeddings = s.at("tied_embeddings").is_null() ? gpt2 : s.boolean("tied_embeddings");
  init_std = s.real_in("init_std", 0.0, 10.0);
  return config;
}

OptimizerConfig parse_optimizer(const Section& s) {
  OptimizerConfig o;
  o.name = s.string("name");
  ANVIL_CHECK(o.name == "adamw" || o.name == "muon", s.where("name"), " must be \"adamw\" or \"muon\", got \"", o.name,
              "\"");
  o.lr = s.real_in("lr", 0.0, 10.0);
  o.min_lr_ratio = s.real_in("min_lr_ratio", 0.0, 1.0);
  o.beta1 = s.real_in("beta1", 0.0, 0.999999);
  o.beta2 = s.real_in("beta2", 0.0, 0.999999999);
  o.eps = s.real_in("eps", 0.0, 1.0);
  o.weight_decay = s.real_in("weight_decay", 0.0, 10.0);
  o.grad_clip = s.real_in("grad_clip", 0.0, 1e9);
  o.decay_norms_and_biases = s.boolean("decay_norms_and_biases");
  o.decay_embeddings = s.boolean("decay_embeddings");
  o.muon_lr = s.real_in("muon_lr", 0.0, 10.0);
  o.muon_momentum = s.real_in("muon_momentum", 0.0, 0.999999);
  o.muon_ns_steps = s.positive("muon_ns_steps");
  return o;
}

ScheduleConfig parse_schedule(const Section& s) {
  ScheduleConfig c;
  const std::string kind = s.string("kind");
  if (kind == "constant") {
    c.kind = ScheduleKind::Constant;
  } else if (kind == "cosine") {
    c.kind = ScheduleKind::Cosine;
  } else if (kind == "wsd") {
    c.kind = ScheduleKind::Wsd;
  } else {
    throw make_error(s.where("kind"), " must be \"constant\", \"cosine\" or \"wsd\", got \"", kind, "\"");
  }
  c.warmup_steps = s.non_negative("warmup_steps");
  c.decay_fraction = s.real_in("decay_fraction", 0.0, 1.0);
  return c;
}

DataConfig parse_data(const Section& s) {
  DataConfig d;
  d.path = s.string("path");
  d.val_fraction = s.real_in("val_fraction", 0.0, 0.5);
  d.seed = static_cast<uint64_t>(s.non_negative("seed"));
  return d;
}

RunConfig parse_run(const Section& s) {
  RunConfig r;
  r.batch_size = s.positive("batch_size");
  r.seq_len = s.positive("seq_len");
  r.grad_accum = s.positive("grad_accum");
  r.steps = s.non_negative("steps");
  r.eval_every = s.non_negative("eval_every");
  r.eval_batches = s.non_negative("eval_batches");
  r.checkpoint_every = s.non_negative("checkpoint_every");
  r.keep_checkpoints = s.positive("keep_checkpoints");
  r.log_every = s.positive("log_every");
  r.sample_every = s.non_negative("sample_every");
  r.out_dir = s.string("out_dir");
  r.seed = static_cast<uint64_t>(s.non_negative("seed"));
  r.recompute = s.boolean("recompute");
  r.tune_gemms = s.boolean("tune_gemms");
  r.device = s.string("device");
  ANVIL_CHECK(r.device == "cpu" || r.device == "cuda", s.where("device"), " must be \"cpu\" or \"cuda\", got \"",
              r.device, "\"");
  r.precision = s.string("precision");
  ANVIL_CHECK(r.precision == "f32" || r.precision == "bf16", s.where("precision"),
              " must be \"f32\" or \"bf16\", got \"", r.precision, "\"");
  r.threads = s.non_negative("threads");
  r.max_minutes = s.real_in("max_minutes", 0.0, 1e9);
  r.peak_gflops = s.real_in("peak_gflops", 0.0, 1e12);
  r.world_size = s.positive("world_size");
  r.rank = s.non_negative("rank");
  ANVIL_CHECK(r.rank < r.world_size, s.where("rank"), " ", r.rank, " must be below world_size ", r.world_size);
  return r;
}

std::string read_text_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  ANVIL_CHECK(stream.good(), "cannot read config file '", path, "'");
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

}  // namespace

Json default_train_config_json() {
  return Json{
      {"model",
       {{"family", "llama"},
        {"vocab_size", 0},
        {"hidden_size", 256},
        {"num_layers", 4},
        {"num_heads", 4},
        {"num_kv_heads", 0},
        {"intermediate_size", 0},
        {"max_position", 0},
        {"norm_eps", 1e-5},
        {"rope_theta", 10000.0},
        {"tied_embeddings", nullptr},
        {"init_std", 0.02}}},
      {"optimizer",
       {{"name", "adamw"},
        {"lr", 3e-4},
        {"min_lr_ratio", 0.1},
        {"beta1", 0.9},
        {"beta2", 0.95},
        {"eps", 1e-8},
        {"weight_decay", 0.1},
        {"grad_clip", 1.0},
        {"decay_norms_and_biases", false},
        {"decay_embeddings", false},
        {"muon_lr", 0.02},
        {"muon_momentum", 0.95},
        {"muon_ns_steps", 5}}},
      {"schedule", {{"kind", "cosine"}, {"warmup_steps", 0}, {"decay_fraction", 0.2}}},
      {"data", {{"path", ""}, {"val_fraction", 0.05}, {"seed", 1}}},
      {"run", {{"batch_size", 8},    {"seq_len", 128},     {"grad_accum", 1},           {"steps", 100},
               {"eval_every", 50},   {"eval_batches", 4},  {"checkpoint_every", 0},     {"keep_checkpoints", 2},
               {"log_every", 1},     {"sample_every", 0},  {"out_dir", "runs/default"}, {"seed", 1234},
               {"recompute", false}, {"device", "cpu"},    {"precision", "f32"},        {"tune_gemms", true},
               {"threads", 0},       {"max_minutes", 0.0}, {"peak_gflops", 0.0},        {"rank", 0},
               {"world_size", 1}}},
  };
}

void merge_config_json(Json& base, const Json& overlay, const std::string& where) {
  ANVIL_CHECK(overlay.is_object(), where, ": expected a JSON object, got ", overlay.dump());
  for (const auto& [key, value] : overlay.items()) {
    ANVIL_CHECK(base.contains(key), where, ": unknown key '", key, "'");
    Json& target = base[key];
    if (target.is_object()) {
      std::string nested = where;
      nested += ".";
      nested += key;
      merge_config_json(target, value, nested);
    } else {
      ANVIL_CHECK(!value.is_object() && !value.is_array(), where, ".", key, " must be a plain value, got ",
                  value.dump());
      target = value;
    }
  }
}

void apply_config_override(Json& config, const std::string& assignment) {
  const size_t equals = assignment.find('=');
  ANVIL_CHECK(equals != std::string::npos && equals > 0, "config override '", assignment,
              "' must look like section.key=value");
  const std::string path = assignment.substr(0, equals);
  const std::string text = assignment.substr(equals + 1);
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;  // a bare string: family=gpt2
  // Build {"a": {"b": value}} and merge it, so the usual checks name the bad key.
  Json overlay = value;
  size_t end = path.size();
  while (true) {
    const size_t dot = path.rfind('.', end - 1);
    const std::string key = path.substr(dot == std::string::npos ? 0 : dot + 1, end - (dot + 1));
    ANVIL_CHECK(!key.empty(), "config override '", assignment, "' has an empty key");
    overlay = Json{{key, overlay}};
    if (dot == std::string::npos || dot == 0) break;
    end = dot;
  }
  merge_config_json(config, overlay, "config override '" + assignment + "'");
}

TrainConfig parse_train_config(const Json& config) {
  TrainConfig result;
  result.json = config;
  result.model = parse_model(Section(config, "model"), result.init_std);
  result.optimizer = parse_optimizer(Section(config, "optimizer"));
  result.schedule = parse_schedule(Section(config, "schedule"));
  result.data = parse_data(Section(config, "data"));
  result.run = parse_run(Section(config, "run"));
  return result;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  Json config = default_train_config_json();
  if (!path.empty()) {
    Json file = Json::parse(read_text_file(path), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    ANVIL_CHECK(!file.is_discarded(), "config file '", path, "' is not valid JSON");
    merge_config_json(config, file, path);
  }
  for (const std::string& assignment : overrides) apply_config_override(config, assignment);
  return parse_train_config(config);
}

void resolve_model_config(TrainConfig& config, int64_t data_vocab_size) {
  model::ModelConfig& m = config.model;
  if (m.vocab_size == 0) {
    ANVIL_CHECK(data_vocab_size > 0, "config: model.vocab_size is 0 and the data names no vocabulary size");
    m.vocab_size = (data_vocab_size + 63) / 64 * 64;  // padded: the head matmul likes multiples of 64
  }
  ANVIL_CHECK(m.vocab_size >= data_vocab_size, "config: model.vocab_size ", m.vocab_size,
              " is smaller than the data's vocabulary of ", data_vocab_size);
  if (m.max_position == 0) m.max_position = config.run.seq_len;
  ANVIL_CHECK(config.run.seq_len <= m.max_position, "config: run.seq_len ", config.run.seq_len,
              " is longer than model.max_position ", m.max_position);
  m.validate();
}

}  // namespace anvil::train
