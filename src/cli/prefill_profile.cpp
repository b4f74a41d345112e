// Warm prefill timing and a per-phase breakdown (see prefill_profile.h).
#include "prefill_profile.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace anvil::cli {

namespace {

// What ran before the tap `name` (llama_model.cpp's order: the taps of q, k and v come after
// all three projections, those of gate and up after both; a tap right after another times
// only the sync of the one before).
std::string_view phase_of(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kPhases[] = {
      {"Qcur", "q/k/v projections"}, {"Qcur_rope", "rope"},          {"kqv_out", "cache write + attention"},
      {"attn_out", "o projection"},  {"ffn_inp", "add + norm"},      {"ffn_gate", "gate/up projections"},
      {"ffn_swiglu", "swiglu"},      {"ffn_out", "down projection"}, {"l_out", "add + norm (next)"},
      {"Kcur", "tap syncs"},         {"Vcur", "tap syncs"},          {"Kcur_rope", "tap syncs"},
      {"ffn_norm", "tap syncs"},     {"ffn_up", "tap syncs"},        {"attn_norm", "tap syncs"},
  };
  for (const auto& [tap, phase] : kPhases) {
    if (tap == name) return phase;
  }
  return name;
}

double prefill_seconds(infer::Generator& generator, std::span<const int32_t> prompt) {
  generator.reset();
  infer::GenerationParams params;
  params.max_tokens = 0;
  return generator.generate(prompt, params, {}).stats.prefill_seconds;
}

}  // namespace

PhaseClock::PhaseClock(Ctx& ctx, model::CausalLM& model) : ctx_(ctx), model_(model), last_(Clock::now()) {
  model_.set_tap([this](std::string_view name, int64_t layer, const Tensor& value) { mark(name, layer, value); });
}

PhaseClock::~PhaseClock() { model_.set_tap({}); }

void PhaseClock::mark(std::string_view name, int64_t layer, const Tensor& value) {
  if (value.defined() && !value.device().is_cpu()) {
    const Tensor first(value.storage(), {1}, value.dtype(), value.offset_bytes());
    (void)ctx_.to_device(first, Device::cpu());
  }
  const Clock::time_point now = Clock::now();
  const std::string key(layer == 0 && name == "attn_norm" ? "embedding + first norm" : phase_of(name));
  if (!seconds_.contains(key)) order_.push_back(key);
  seconds_[key] += std::chrono::duration<double>(now - last_).count();
  last_ = now;
}

void PhaseClock::print(double total) const {
  std::fprintf(stderr, "anvil: prefill phases (a device sync at every tap):\n");
  double rest = total;
  for (const std::string& key : order_) {
    const double s = seconds_.at(key);
    rest -= s;
    std::fprintf(stderr, "anvil:   %-24s %8.2f ms %5.1f%%\n", key.c_str(), 1e3 * s, 100.0 * s / total);
  }
  std::fprintf(stderr, "anvil:   %-24s %8.2f ms %5.1f%%\n", "head (the rest)", 1e3 * rest, 100.0 * rest / total);
}

void profile_prefill(Ctx& ctx, infer::Generator& generator, model::CausalLM& model, std::span<const int32_t> prompt,
                     int repeats) {
  const double tokens = static_cast<double>(prompt.size());
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    seconds.push_back(prefill_seconds(generator, prompt));
    std::fprintf(stderr, "anvil: warm prefill %d: %.0f tokens in %.4f s (%.1f tokens/s)\n", i + 1, tokens,
                 seconds.back(), tokens / seconds.back());
  }
  if (!seconds.empty()) {
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::fprintf(stderr, "anvil: warm prefill median of %d: %.4f s (%.1f tokens/s)\n", repeats, median,
                 tokens / median);
  }
  generator.reset();
  PhaseClock clock(ctx, model);
  const double total = prefill_seconds(generator, prompt);
  clock.print(total);
  generator.reset();
}

}  // namespace anvil::cli
