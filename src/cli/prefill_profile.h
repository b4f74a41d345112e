#pragma once
// `anvil generate --prefill-repeat N`: times the prompt's prefill again N times in the warm
// process (median), then once more with a device sync at every named intermediate of the
// forward pass, to print where a prefill's time goes, phase by phase.
#include <span>

#include "anvil/context.h"
#include "anvil/infer/generator.h"
#include "anvil/model/causal_lm.h"

namespace anvil::cli {

// Prints one line per warm prefill, their median, and the per-phase breakdown to stderr.
// Leaves the generator's cache reset and the model's tap unset.
void profile_prefill(Ctx& ctx, infer::Generator& generator, model::CausalLM& model, std::span<const int32_t> prompt,
                     int repeats);

}  // namespace anvil::cli
