#pragma once
// CUDA graphs of the decode step. A step of a few rows (a decode batch: every row's logits
// wanted) is captured once per shape (rows, sequences, block-table width and attention
// bound, the last two bucketed by visible_bucket) and replayed afterwards. What changes
// between steps lives in one fixed device buffer per shape: positions, KV slots, token
// sequences, block tables and the embedded rows (N, C), written into pinned host memory and
// uploaded by one async copy before the replay; the logits land in a fixed (N, V) buffer.
// The attention reads the actual positions from that buffer, so a graph captured for one
// context serves every context of its bucket. The graphs' activations come from a private
// pool of the caching allocator, filled by one uncaptured run of each shape (whose result
// is that step's answer) before it is captured. Graphs hold the KV cache's addresses: a
// step on another cache drops them and captures anew.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "anvil/model/causal_lm.h"
#include "layers.h"

namespace anvil::model {

class DecodeGraphs {
 public:
  // The step from the embedded rows x (N, C) (updated in place) to the logits (N, V) of
  // every row, on the device, issuing device work only.
  using StepBody = std::function<Tensor(Ctx& ctx, const StepInputs& step, Tensor& x, PagedKvCache& cache)>;

  static constexpr int64_t kMaxRows = 32;   // larger steps (prefill) run eagerly
  static constexpr size_t kMaxGraphs = 64;  // shapes captured at most; then eager
  // Whether ANVIL_CUDA_GRAPHS leaves graphs on (unset or anything but "0").
  static bool enabled_by_environment();

  // Graphs for the model of `config` on `device` (whose backend must support graphs).
  DecodeGraphs(Ctx& ctx, Device device, const ModelConfig& config, StepBody body);
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Whether `batch` takes the graph path: 1..kMaxRows rows, logits of every row in order,
  // and room for its shape.
  [[nodiscard]] bool accepts(const Batch& batch) const;
  // The step's logits (N, V) on the host; `embedding` is the host token table (V, C).
  Tensor forward(Ctx& ctx, const Batch& batch, PagedKvCache& cache, const Tensor& embedding);
  [[nodiscard]] const DeviceGraphStats& stats() const { return stats_; }

 private:
  struct GraphShape {
    int64_t rows, sequences, table_width, visible;
    bool operator<(const GraphShape& other) const {
      return std::tie(rows, sequences, table_width, visible) <
             std::tie(other.rows, other.sequences, other.table_width, other.visible);
    }
  };
  struct Graph {
    Tensor staging;                   // pinned host i32 (inputs_elems): the inputs below, written each step
    Tensor inputs;                    // device copy of staging
    StepInputs step;                  // views of `inputs`
    Tensor x;                         // (N, C) f32 view of `inputs`
    Tensor logits;                    // (N, V) device, written by the replay
    std::vector<Tensor> host_logits;  // (N, V) pinned host buffers the downloads take turns in
    std::unique_ptr<DeviceGraph> graph;
  };

  Graph& graph_for(Ctx& ctx, const GraphShape& shape);
  void stage(Graph& graph, const GraphShape& shape, const StepIndices& indices, const Batch& batch,
             const Tensor& embedding);
  // The first step of a shape: run eagerly in the pool, then capture. Returns host logits.
  Tensor run_and_capture(Ctx& ctx, Graph& graph, PagedKvCache& cache);
  Tensor download_logits(Graph& graph);
  // Drops the graphs when `cache` is not the one they were captured with.
  void bind_cache(PagedKvCache& cache);

  Backend& backend_;
  ModelConfig config_;
  StepBody body_;
  int64_t pool_ = 0;
  std::map<GraphShape, Graph> graphs_;
  std::vector<uintptr_t> cache_addresses_;  // cache shape, then K and V of every layer, as captured
  DeviceGraphStats stats_;
};

}  // namespace anvil::model
