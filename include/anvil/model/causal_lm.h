#pragma once
// A decoder-only language model for inference: forward(batch) -> logits of the requested
// rows, reading and writing K/V through the batch's block tables (ARCHITECTURE.md).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "anvil/model/batch.h"
#include "anvil/model/kv_cache.h"
#include "anvil/model/model_config.h"

namespace anvil::model {

// How decode steps ran on a device with graphs (CUDA graphs of the step, replayed).
struct DeviceGraphStats {
  int64_t captured = 0;  // shapes captured
  int64_t replays = 0;   // steps served by replaying a graph
  int64_t failures = 0;  // captures that failed (graphs are then off for the model)
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  [[nodiscard]] virtual const ModelConfig& config() const = 0;
  // Where the weights live and the forward pass runs; its KV cache must be there too.
  [[nodiscard]] virtual Device device() const = 0;
  // Logits (batch.logit_rows.size(), vocab) f32 on the host.
  [[nodiscard]] virtual Tensor forward(Ctx& ctx, const Batch& batch, PagedKvCache& cache) = 0;
  // Decode steps on a GPU replay captured graphs unless turned off here (or by
  // ANVIL_CUDA_GRAPHS=0 at load); the logits are the same bits either way. No effect on
  // the CPU or for architectures without graphs.
  virtual void set_device_graphs(bool /*enabled*/) {}
  [[nodiscard]] virtual DeviceGraphStats device_graph_stats() const { return {}; }

  // Observer of named intermediates of forward (llama.cpp's names: "attn_norm", "Qcur", ...;
  // layer -1 for those after the last block), to compare them with another engine op by op
  // (tests/e2e/llamacpp_intermediates_test.cpp). Models that have none ignore it; unset, it
  // costs a branch per tensor.
  using Tap = std::function<void(std::string_view name, int64_t layer, const Tensor& value)>;
  void set_tap(Tap tap) { tap_ = std::move(tap); }

 protected:
  void tap(std::string_view name, int64_t layer, const Tensor& value) const {
    if (tap_) tap_(name, layer, value);
  }
  [[nodiscard]] bool tapping() const { return static_cast<bool>(tap_); }

 private:
  Tap tap_;
};

// Loads a GGUF file, a safetensors file with config.json beside it, or a Hugging Face
// folder; weights stay memory-mapped (quantized ones are used as stored). With a CUDA
// `device` the weights are copied there as stored (the token embedding table stays
// mapped on the host too: rows are gathered there) and forward runs on that device.
std::unique_ptr<CausalLM> load_causal_lm(Ctx& ctx, const std::string& path, Device device = Device::cpu());

}  // namespace anvil::model
