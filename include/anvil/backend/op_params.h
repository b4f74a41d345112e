#pragma once
// Parameter structs of the ops, shared by the free functions and every backend.
#include <cstdint>

namespace anvil {

enum class RopeLayout : uint8_t {
  RotateHalf,   // pairs (i, i + rot_dim/2): GPT-NeoX, HF Llama
  Interleaved,  // pairs (2i, 2i + 1): GPT-J, Meta's original Llama, GGUF "norm" rope
};

enum class RopeScaling : uint8_t { None, Linear, Llama3 };

struct RopeParams {
  RopeLayout layout = RopeLayout::RotateHalf;
  float base = 10000.0F;  // theta
  int64_t rot_dim = 0;    // rotated leading dims of each head; 0 = the whole head
  RopeScaling scaling = RopeScaling::None;
  float factor = 1.0F;                   // Linear: positions / factor; Llama3: long-wavelength divisor
  float low_freq_factor = 1.0F;          // Llama3
  float high_freq_factor = 4.0F;         // Llama3
  int64_t original_max_position = 8192;  // Llama3
  // Unscaled angles as llama.cpp (ggml-cpu) computes them: in f32, theta_0 = position,
  // theta_{k+1} = theta_k * powf(base, -2 / rot_dim), then cosf / sinf. Less exact than
  // position * inv_frequency (the f32 recurrence drifts with k and with the position) but
  // what GGUF models are run with: the CPU backend follows it, to the bit, so that anvil's
  // logits are llama.cpp's (docs/reference.md); the CUDA backend keeps its exact angles.
  bool ggml_angles = false;
};

enum class AttentionImpl : uint8_t {
  Reference,  // materialises the (T, T) score matrix per head
  Blocked,    // tiles over keys with an online softmax; memory O(T) per head
};

struct AttentionParams {
  bool causal = true;
  float scale = 0.0F;  // 0 means 1/sqrt(head_dim)
  AttentionImpl impl = AttentionImpl::Blocked;
};

struct PagedAttentionParams {
  float scale = 0.0F;          // 0 means 1/sqrt(D)
  int64_t sliding_window = 0;  // > 0: a token at position p sees positions > p - window only
  // > 0: the caller has already checked every sequence, position and block id (the model
  // layer does, on the host, when it builds a step) and no token sees more than this many
  // keys. A backend may then skip its own index check, which on a GPU costs a wait for the
  // device per call. 0: the backend checks.
  int64_t checked_max_visible = 0;
};

struct AdamWParams {
  float learning_rate = 1e-3F;
  float beta1 = 0.9F;
  float beta2 = 0.999F;
  float eps = 1e-8F;
  float weight_decay = 0.0F;
  int64_t step = 1;         // 1-based step, for bias correction
  float grad_scale = 1.0F;  // gradients are multiplied by this first (unscaling, clipping)
};

// Elements [begin, end) of flat AdamW buffers, updated with the call's weight_decay when
// `decay`, else with none (one weight-decay group's stretch of parameters).
struct AdamWRun {
  int64_t begin = 0, end = 0;
  bool decay = false;
};

}  // namespace anvil
