#pragma once
// The configuration of a training run: a JSON file (every key optional; defaults below)
// plus command-line overrides "section.key=value". Unknown keys are errors, so a typo
// never silently trains the wrong model. The merged JSON is what checkpoints store.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "anvil/model/model_config.h"

namespace anvil::train {

struct OptimizerConfig {
  std::string name = "adamw";  // adamw | muon (Muon on 2-D hidden matrices, AdamW for the rest)
  double lr = 3e-4;            // peak learning rate of AdamW
  double min_lr_ratio = 0.1;   // the schedule ends at lr * min_lr_ratio
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;               // clip by global norm; 0 = off
  bool decay_norms_and_biases = false;  // weight-decay groups: matrices always decay
  bool decay_embeddings = false;
  double muon_lr = 0.02;  // peak learning rate of the Muon group
  double muon_momentum = 0.95;
  int64_t muon_ns_steps = 5;  // Newton-Schulz iterations
};

enum class ScheduleKind : uint8_t { Constant, Cosine, Wsd };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Cosine;
  int64_t warmup_steps = 0;
  double decay_fraction = 0.2;  // WSD: the last fraction of steps decays linearly to min_lr
};

struct DataConfig {
  std::string path;            // folder written by `anvil data prepare`
  double val_fraction = 0.05;  // tail of each shard held out for validation
  uint64_t seed = 1;           // shuffling seed of the training order
};

struct RunConfig {
  int64_t batch_size = 8;  // sequences per micro-batch (per rank)
  int64_t seq_len = 128;
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t steps = 100;
  int64_t eval_every = 50;  // 0 = only at the end
  int64_t eval_batches = 4;
  int64_t checkpoint_every = 0;  // 0 = only at the end
  int64_t keep_checkpoints = 2;
  int64_t log_every = 1;
  int64_t sample_every = 0;  // print a generated sample every N steps (0 = never)
  std::string out_dir = "runs/default";
  uint64_t seed = 1234;           // parameter initialisation
  bool recompute = false;         // recompute each layer's activations in backward
  std::string device = "cpu";     // cpu, or cuda (the first GPU)
  std::string precision = "f32";  // f32, or bf16 (mixed precision: f32 master weights, see TrainModelOptions)
  bool tune_gemms = true;         // cuda: time cuBLASLt's candidate algos per GEMM shape (CtxOptions::tune_gemms)
  int64_t threads = 0;            // 0 = all cores
  double max_minutes = 0.0;       // stop (with a checkpoint) after this wall time; 0 = no limit
  double peak_gflops = 0.0;       // for MFU; 0 = the GPU's dense peak for the precision, or estimated from the CPU
  int64_t rank = 0;               // data sharding (parallel runs come later)
  int64_t world_size = 1;
};

struct TrainConfig {
  model::ModelConfig model;  // Gpt2 or Llama; vocab_size 0 until resolved from the data
  double init_std = 0.02;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  DataConfig data;
  RunConfig run;
  nlohmann::json json;  // the merged configuration these fields came from
};

// Every key with its default value (null = "derived", see the docs of each key).
nlohmann::json default_train_config_json();
// Copies `overlay` onto `base` key by key; keys absent from `base` are errors naming `where`.
void merge_config_json(nlohmann::json& base, const nlohmann::json& overlay, const std::string& where);
// Applies "a.b.c=value": the value is parsed as JSON when it is valid JSON, else taken as a string.
void apply_config_override(nlohmann::json& config, const std::string& assignment);
// The typed configuration of a merged JSON (checked: sizes, names, ranges).
TrainConfig parse_train_config(const nlohmann::json& config);
// Defaults, then the file (when `path` is not empty), then the overrides.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
// Fills the model fields that default to the data (vocab_size) and the run (max_position),
// then validates the model config.
void resolve_model_config(TrainConfig& config, int64_t data_vocab_size);

}  // namespace anvil::train
