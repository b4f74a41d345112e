// Trainer: the optimizer step, evaluation, and checkpoint save/restore of a run.
#include "anvil/train/trainer.h"

#include <chrono>

#include "anvil/core/error.h"
#include "anvil/train/checkpoint.h"
#include "anvil/train/lr_schedule.h"

namespace anvil::train {

LoaderOptions loader_options(const TrainConfig& config) {
  LoaderOptions options;
  options.seq_len = config.run.seq_len;
  options.val_fraction = config.data.val_fraction;
  options.seed = config.data.seed;
  options.rank = config.run.rank;
  options.world_size = config.run.world_size;
  return options;
}

namespace {

constexpr int kStateVersion = 1;

// The parts of a config that must agree for a checkpoint to continue a run exactly.
nlohmann::json run_identity(const nlohmann::json& config) {
  nlohmann::json identity = config;
  for (const char* free_key : {"steps", "eval_every", "eval_batches", "checkpoint_every", "keep_checkpoints",
                               "log_every", "sample_every", "out_dir", "threads", "max_minutes", "peak_gflops"}) {
    identity["run"].erase(free_key);
  }
  identity["data"].erase("path");  // the same data may have moved
  // Checkpoints from before run.precision existed trained in f32.
  if (identity.contains("run") && !identity["run"].contains("precision")) identity["run"]["precision"] = "f32";
  return identity;
}

}  // namespace

Trainer::Trainer(Ctx& ctx, TrainConfig config) : ctx_(ctx), config_(std::move(config)) {
  ANVIL_CHECK(!config_.data.path.empty(), "config: data.path is empty (a folder from `anvil data prepare`)");
  loader_ = std::make_unique<DataLoader>(config_.data.path, loader_options(config_));
  resolve_model_config(config_, loader_->meta().vocab_size);
  config_.model.eos_token_id = static_cast<int32_t>(loader_->meta().eos_id);
  TrainModelOptions options;
  options.recompute = config_.run.recompute;
  options.init_std = config_.init_std;
  ANVIL_CHECK(config_.run.device == "cpu" || ctx_.has_cuda(), "config: run.device is \"", config_.run.device,
              "\" but no CUDA device is available (this build has no CUDA, or the machine has no usable GPU)");
  options.device = config_.run.device == "cuda" ? Device::cuda(0) : Device::cpu();
  options.precision = config_.run.precision == "bf16" ? DType::BF16 : DType::F32;
  model_ = std::make_unique<TrainModel>(ctx_, config_.model, options);
  model_->init_weights(config_.run.seed);
  model_->reserve(config_.run.batch_size, config_.run.seq_len);
  optimizer_ = std::make_unique<Optimizer>(ctx_, model_->table(), config_.optimizer, options.device);
}

StepStats Trainer::train_step() {
  const auto start = std::chrono::steady_clock::now();
  StepStats stats;
  model_->zero_grad();
  const int64_t micro_steps = config_.run.grad_accum;
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < micro_steps; ++micro) {
    const TokenBatch batch = loader_->next_batch(config_.run.batch_size);
    if (batch_observer_) batch_observer_(batch);
    const Tensor tokens = Tensor::from_i32({batch.batch, batch.seq}, batch.tokens);
    const Tensor targets = Tensor::from_i32({batch.batch, batch.seq}, batch.targets);
    loss_sum += model_->forward_train(tokens, targets);
    model_->backward(1.0F / static_cast<float>(micro_steps));
    stats.tokens += batch.batch * batch.seq;
  }
  const double factor =
      lr_factor(config_.schedule, config_.optimizer.min_lr_ratio, step_, std::max<int64_t>(1, config_.run.steps));
  // The update writes the bf16 compute copy too (mixed precision): no cast pass before the
  // next forward.
  Tensor& params = model_->params();
  Tensor& params_low = model_->low_params();
  const OptimizerStepInfo info = optimizer_->step(params, model_->grads(), factor, params_low);
  if (params_low.defined()) model_->low_params_refreshed();
  ++step_;
  tokens_seen_ += stats.tokens * config_.run.world_size;
  stats.step = step_;
  stats.loss = loss_sum / static_cast<double>(micro_steps);
  stats.lr = info.lr;
  stats.grad_norm = info.grad_norm;
  stats.clip_scale = info.clip_scale;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats.tokens_per_second = stats.seconds > 0.0 ? static_cast<double>(stats.tokens) / stats.seconds : 0.0;
  return stats;
}

double Trainer::evaluate() {
  const int64_t batches = std::max<int64_t>(1, config_.run.eval_batches);
  double total = 0.0;
  for (int64_t i = 0; i < batches; ++i) {
    const TokenBatch batch = loader_->val_batch(i, config_.run.batch_size);
    total += model_->forward_train(Tensor::from_i32({batch.batch, batch.seq}, batch.tokens),
                                   Tensor::from_i32({batch.batch, batch.seq}, batch.targets), false);
  }
  return total / static_cast<double>(batches);
}

double Trainer::flops_per_step() const {
  const double tokens = static_cast<double>(config_.run.batch_size * config_.run.seq_len * config_.run.grad_accum);
  return tokens * model_->flops_per_token(config_.run.seq_len);
}

void Trainer::save_checkpoint(const std::string& path) {
  const LoaderPosition position = loader_->position();
  const nlohmann::json state = {
      {"version", kStateVersion},
      {"step", step_},
      {"tokens_seen", tokens_seen_},
      {"optimizer_steps", optimizer_->step_count()},
      {"data_position", {{"epoch", position.epoch}, {"consumed", position.consumed}}},
      {"rng", {{"init_seed", config_.run.seed}, {"data_seed", config_.data.seed}}},
      {"config", config_.json},
      {"vocab_size", config_.model.vocab_size},
      {"param_layout", model_->table().to_json()},
  };
  std::vector<std::pair<std::string, Tensor>> tensors = {{"params", model_->params()}};
  for (const auto& entry : optimizer_->state()) tensors.push_back(entry);
  for (auto& entry : tensors) {  // checkpoints are written from the host
    if (!entry.second.device().is_cpu()) entry.second = ctx_.to_device(entry.second, Device::cpu());
  }
  write_checkpoint(path, state, tensors);
}

void Trainer::load_checkpoint(const std::string& path) {
  const Checkpoint checkpoint = Checkpoint::open(path);
  const nlohmann::json& state = checkpoint.state();
  try {
    ANVIL_CHECK(state.at("version").get<int>() == kStateVersion, "state version ", state.at("version").dump());
    ANVIL_CHECK(model_->table().matches(state.at("param_layout")),
                "its parameter layout differs from this run's model (different model config?)");
    ANVIL_CHECK(run_identity(state.at("config")) == run_identity(config_.json),
                "its config differs from this run's in a setting that changes the loss curve: ",
                run_identity(state.at("config")).dump(), " vs ", run_identity(config_.json).dump());
    const auto restore = [&](const std::string& name, Tensor& tensor) {
      if (tensor.device().is_cpu()) return checkpoint.copy_to(name, tensor);
      Tensor host = Tensor::empty(tensor.shape(), tensor.dtype());
      checkpoint.copy_to(name, host);
      ctx_.backend(tensor.device()).copy(tensor, host);
    };
    restore("params", model_->params());
    for (auto& [name, tensor] : optimizer_->state()) restore(name, tensor);
    step_ = state.at("step").get<int64_t>();
    tokens_seen_ = state.at("tokens_seen").get<int64_t>();
    optimizer_->set_step_count(state.at("optimizer_steps").get<int64_t>());
    const nlohmann::json& position = state.at("data_position");
    loader_->set_position({position.at("epoch").get<uint64_t>(), position.at("consumed").get<uint64_t>()});
  } catch (const nlohmann::json::exception& error) {
    throw make_error("checkpoint '", path, "': state field missing or of the wrong type: ", error.what());
  } catch (const Error& error) {
    throw make_error("checkpoint '", path, "' cannot resume this run: ", error.what());
  }
}

}  // namespace anvil::train
