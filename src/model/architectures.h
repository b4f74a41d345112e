#pragma once
// Constructors of the CausalLM implementations (one file each), used by the loader. The
// weights must already be on `device` (weights_to_device).
#include <memory>

#include "anvil/model/causal_lm.h"
#include "weights.h"

namespace anvil::model {

// Llama, Mistral, Qwen2 (QKV bias) and Qwen3 (q/k RMSNorm): pre-norm RMSNorm blocks,
// RoPE, grouped-query attention, SwiGLU MLP.
std::unique_ptr<CausalLM> make_llama_model(ModelConfig config, ModelWeights weights, Device device);
// GPT-2: learned positions, pre-norm LayerNorm blocks, GELU MLP, biases everywhere.
std::unique_ptr<CausalLM> make_gpt2_model(ModelConfig config, ModelWeights weights, Device device);

}  // namespace anvil::model
