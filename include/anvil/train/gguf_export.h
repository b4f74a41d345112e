#pragma once
// Export of a training model as a GGUF file laid out the way llama.cpp's converter writes
// one (architecture "llama" or "gpt2", f32 tensors; llama Q/K rows permuted for
// interleaved RoPE, GPT-2 q/k/v fused into attn_qkv), so llama.cpp and load_causal_lm run it.
#include <string>

#include "anvil/train/train_model.h"

namespace anvil::train {

// Writes `path` atomically. With tokenizer "bytes" the byte-level vocabulary (byte b is
// token b, <|endoftext|> 256, padding ids unused) goes into tokenizer.ggml.*; otherwise
// the file carries no tokenizer.
void export_gguf(const TrainModel& model, const std::string& path, const std::string& tokenizer = "");

}  // namespace anvil::train
