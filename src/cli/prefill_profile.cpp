// Warm prefill timing and a per-phase breakdown (see prefill_profile.h).
#include "prefill_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <utility>
#include <string>
#include <vector>

namespace anvil::cli {

namespace {

using Clock = std::chrono::steady_clock;

// What ran before the tap `name` (llama_model.cpp's order: the taps of q, k and v come after
// all three projections, those of gate and up after both).
std::string_view phase_of(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> kPhases[] = {
      {"Qcur", "q/k/v projections"}, {"Qcur_rope", "rope"},          {"kqv_out", "cache write + attention"},
      {"attn_out", "o projection"},  {"ffn_inp", "add + norm"},      {"ffn_gate", "gate/up projections"},
      {"ffn_swiglu", "swiglu"},      {"ffn_out", "down projection"}, {"l_out", "add + norm (next)"},
  };
  for (const auto& [tap, phase] : kPhases) {
    if (tap == name) return phase;
  }
  return name;
}

// Seconds of each phase of a forward pass, a phase being named by the intermediate that ends
// it ("Qcur": the q projection, "kqv_out": the cache write and attention, ...). Every tap
// waits for the device (a one-element copy to the host), so a phase holds its kernels only.
class PhaseClock {
 public:
  explicit PhaseClock(Ctx& ctx) : ctx_(ctx), last_(Clock::now()) {}

  void restart() { last_ = Clock::now(); }
  void mark(std::string_view name, int64_t layer, const Tensor& value) {
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
  // The time from the last tap to now, as "head" (the last add, the logits, their copy).
  void finish() { mark("head", -1, Tensor()); }

  void print(double total) const {
    std::fprintf(stderr, "anvil: prefill phases (synced at every tap; the phase is named by the tensor ending it):\n");
    for (const std::string& key : order_) {
      const double s = seconds_.at(key);
      if (s < 1e-4 * total) continue;  // a tap right after another
      std::fprintf(stderr, "anvil:   %-24s %8.2f ms %5.1f%%\n", key.c_str(), 1e3 * s, 100.0 * s / total);
    }
  }

 private:
  Ctx& ctx_;
  Clock::time_point last_;
  std::vector<std::string> order_;
  std::map<std::string, double> seconds_;
};

double prefill_seconds(infer::Generator& generator, std::span<const int32_t> prompt) {
  generator.reset();
  infer::GenerationParams params;
  params.max_tokens = 0;
  return generator.generate(prompt, params, {}).stats.prefill_seconds;
}

}  // namespace

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
  PhaseClock clock(ctx);
  model.set_tap(
      [&clock](std::string_view name, int64_t layer, const Tensor& value) { clock.mark(name, layer, value); });
  generator.reset();
  clock.restart();
  const double total = prefill_seconds(generator, prompt);
  clock.finish();
  model.set_tap({});
  generator.reset();
  clock.print(total);
}

}  // namespace anvil::cli
