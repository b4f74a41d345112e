#pragma once
// `anvil generate --prefill-repeat N`: times the prompt's prefill again N times in the warm
// process (median), then once more with a device sync at every named intermediate of the
// forward pass, to print where a prefill's time goes, phase by phase.
#include <chrono>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anvil/context.h"
#include "anvil/infer/generator.h"
#include "anvil/model/causal_lm.h"

namespace anvil::cli {

// While it lives, times each phase of the model's forward passes, a phase being named by the
// intermediate that ends it (the model's taps): every tap waits for the device (a one-element
// copy to the host), so a phase holds its own kernels plus the launch gaps ("tap syncs" sums
// the taps that follow another at once: the cost of one sync each).
class PhaseClock {
 public:
  PhaseClock(Ctx& ctx, model::CausalLM& model);
  ~PhaseClock();
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;

  void mark(std::string_view name, int64_t layer, const Tensor& value);
  // The phases' sums, with their shares of `total` seconds (the prefill's; what no phase
  // holds is the head: the last add, the logits and their copy to the host).
  void print(double total) const;

 private:
  using Clock = std::chrono::steady_clock;
  Ctx& ctx_;
  model::CausalLM& model_;
  Clock::time_point last_;
  std::vector<std::string> order_;
  std::map<std::string, double> seconds_;
};

// Prints one line per warm prefill, their median, and the per-phase breakdown to stderr.
// Leaves the generator's cache reset and the model's tap unset.
void profile_prefill(Ctx& ctx, infer::Generator& generator, model::CausalLM& model, std::span<const int32_t> prompt,
                     int repeats);

}  // namespace anvil::cli
