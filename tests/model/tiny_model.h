#pragma once
// Tiny random transformers for the model tests: a spec, random weights in Hugging Face
// layout and names (float64), checkpoint writers (safetensors + config.json, and GGUF laid
// out the way llama.cpp's converter writes it), and a dense float64 reference forward
// written independently of src/model (plain loops over one sequence).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "anvil/model/model_config.h"
#include "support/op_harness.h"

namespace anvil::testing {

struct TinySpec {
  model::Architecture architecture = model::Architecture::Llama;
  int64_t vocab = 97;
  int64_t hidden = 64;        // C
  int64_t intermediate = 96;  // F
  int64_t layers = 2;
  int64_t heads = 4;      // Hq
  int64_t kv_heads = 2;   // Hkv
  int64_t head_dim = 16;  // D
  int64_t max_position = 64;
  int64_t sliding_window = 0;
  bool tied = false;
  double rope_base = 10000.0;
  double norm_eps = 1e-5;
  // Llama 3 RoPE frequency scaling when llama3_factor > 0.
  double llama3_factor = 0.0;
  double llama3_low_freq_factor = 1.0;
  double llama3_high_freq_factor = 4.0;
  int64_t llama3_original_max_position = 16;
  // Reference only: round every linear layer's input to 8 bits per block of 32 as
  // quantized_matmul documents for Q8_0..Q5_1 weights (d = amax / 127, round half even).
  bool reference_rounds_inputs_q8 = false;

  [[nodiscard]] bool gpt2() const { return architecture == model::Architecture::Gpt2; }
  [[nodiscard]] bool qkv_bias() const { return architecture == model::Architecture::Qwen2; }
  [[nodiscard]] bool qk_norm() const { return architecture == model::Architecture::Qwen3; }
};

// The specs the tests cover: Llama (GQA), SmolLM2-like (tied), Mistral (sliding window),
// Qwen2 (QKV bias), Qwen3 (q/k norm, head_dim != C / Hq), GPT-2.
TinySpec llama_spec();
TinySpec llama3_spec();
TinySpec smollm_spec();
TinySpec mistral_spec();
TinySpec qwen2_spec();
TinySpec qwen3_spec();
TinySpec gpt2_spec();
std::string spec_label(const TinySpec& spec);

// Weights by Hugging Face name, in HF layout (Linear (out, in); GPT-2 Conv1D (in, out)).
using TinyWeights = std::map<std::string, HostArray>;
TinyWeights random_weights(const TinySpec& spec, Rng& rng);
// The Llama 3 divisor of RoPE pair i's frequency (1 without scaling), as HF computes it.
double llama3_frequency_divisor(const TinySpec& spec, int64_t pair);
// Every 2-D weight rounded through `dtype` along its rows (what a quantized GGUF stores).
void round_matrices(TinyWeights& weights, DType dtype);

// Logits (T, V) of tokens at positions 0..T-1 of one sequence, in float64.
HostArray reference_logits(const TinySpec& spec, const TinyWeights& weights, const std::vector<int32_t>& tokens);

// config.json text for the spec.
std::string hf_config_json(const TinySpec& spec);
// Writes folder/config.json and folder/model.safetensors (f32).
void write_hf_checkpoint(const std::string& folder, const TinySpec& spec, const TinyWeights& weights);
// Writes a GGUF file as llama.cpp's converter would: GGUF names, llama-arch Q/K rows
// permuted for interleaved RoPE, GPT-2 Conv1D weights transposed; 2-D weights stored as
// `matrix_dtype`, vectors as f32; Llama 3 scaling as a rope_freqs.weight tensor.
void write_gguf_checkpoint(const std::string& path, const TinySpec& spec, const TinyWeights& weights,
                           DType matrix_dtype = DType::F32);

// A temporary folder removed with everything in it when this goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] std::string path(const std::string& name = "") const;

 private:
  std::string root_;
};

}  // namespace anvil::testing
