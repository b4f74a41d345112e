#pragma once
// Samples from a model during training, the way it will be served: the exported folder
// is loaded with load_causal_lm and run over a paged KV cache (prefill, then decode).
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/context.h"

namespace anvil::train {

// `count` tokens continuing `prompt` with the model in `model_dir`, drawn from
// softmax(logits / temperature) with Philox(seed) (temperature 0: greedy). Stops early
// at the model's learned-position limit.
std::vector<int32_t> sample_continuation(Ctx& ctx, const std::string& model_dir, const std::vector<int32_t>& prompt,
                                         int64_t count, float temperature, uint64_t seed);

}  // namespace anvil::train
