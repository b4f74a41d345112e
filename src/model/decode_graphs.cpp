// CUDA graphs of the decode step (see decode_graphs.h).
#include "decode_graphs.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>

#include "anvil/core/error.h"

namespace anvil::model {

namespace {

// Makes a private pool serve the backend's allocations for a scope.
class ActivePool {
 public:
  ActivePool(Backend& backend, int64_t pool) : backend_(backend) { backend_.use_memory_pool(pool); }
  ~ActivePool() {
    try {
      backend_.use_memory_pool(0);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "anvil: restoring the shared memory pool: %s\n", error.what());
    }
  }
  ActivePool(const ActivePool&) = delete;
  ActivePool& operator=(const ActivePool&) = delete;

 private:
  Backend& backend_;
};

int64_t max_position(const Batch& batch) {
  int64_t longest = 0;
  for (const int32_t position : batch.positions) longest = std::max<int64_t>(longest, position);
  return longest;
}

// Where each staged input starts, in 4-byte elements: positions, slots, token sequences
// (N each), block tables (S, W), then the embedded rows (N, C) f32. Sections start at
// 256-byte boundaries, as fresh allocations do: the kernels pick their vectorised paths by
// alignment, and a graph step must compute exactly what an eager one does.
struct StagedLayout {
  int64_t positions, slots, token_sequences, block_tables, x, total;
};

StagedLayout staged_layout(int64_t rows, int64_t sequences, int64_t table_width, int64_t channels) {
  constexpr int64_t kAlignElems = 64;
  const auto next = [](int64_t begin, int64_t elems) {
    return (begin + elems + kAlignElems - 1) / kAlignElems * kAlignElems;
  };
  StagedLayout layout{};
  layout.slots = next(layout.positions, rows);
  layout.token_sequences = next(layout.slots, rows);
  layout.block_tables = next(layout.token_sequences, rows);
  layout.x = next(layout.block_tables, sequences * table_width);
  layout.total = next(layout.x, rows * channels);
  return layout;
}

}  // namespace

bool DecodeGraphs::enabled_by_environment() {
  const char* value = std::getenv("ANVIL_CUDA_GRAPHS");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

DecodeGraphs::DecodeGraphs(Ctx& ctx, Device device, const ModelConfig& config, StepBody body)
    : backend_(ctx.backend(device)), config_(config), body_(std::move(body)) {
  ANVIL_CHECK(backend_.supports_graphs(), "decode graphs: ", device_string(device), " has no device graphs");
  pool_ = backend_.create_memory_pool();
}

DecodeGraphs::~DecodeGraphs() {
  graphs_.clear();  // graphs and their buffers first: then the pool's blocks may be reused
  try {
    backend_.release_memory_pool(pool_);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "anvil: releasing the decode graphs' memory pool: %s\n", error.what());
  }
}

bool DecodeGraphs::accepts(const Batch& batch) const {
  const int64_t rows = batch.num_tokens();
  if (stats_.failures > 0 || rows < 1 || rows > kMaxRows) return false;
  if (static_cast<int64_t>(batch.logit_rows.size()) != rows) return false;
  for (int64_t row = 0; row < rows; ++row) {
    if (batch.logit_rows[static_cast<size_t>(row)] != row) return false;
  }
  return graphs_.size() < kMaxGraphs;  // (a known shape past the cap runs eagerly too)
}

Tensor DecodeGraphs::forward(Ctx& ctx, const Batch& batch, PagedKvCache& cache, const Tensor& embedding) {
  const StepIndices indices = step_indices(batch, cache, config_);
  bind_cache(cache);
  const int64_t block_size = cache.shape().block_size;
  const int64_t context_bucket = visible_bucket(max_position(batch) + 1);
  const GraphShape shape{batch.num_tokens(), indices.sequences, (context_bucket + block_size - 1) / block_size,
                         visible_bucket(indices.max_visible)};
  Graph& graph = graph_for(ctx, shape);
  stage(graph, shape, indices, batch, embedding);
  backend_.upload_async(graph.inputs, graph.staging);
  if (!graph.graph) return run_and_capture(ctx, graph, cache);
  graph.graph->replay();
  ++stats_.replays;
  return download_logits(graph);
}

Tensor DecodeGraphs::download_logits(Graph& graph) {
  // Into pinned memory (a pageable download is several times slower), handed to the caller.
  // A buffer is reused once the caller has let go of it (a generator holds the previous
  // step's logits while it runs the next step: two buffers then take turns). The download
  // waits for the stream, so the staging buffer is free for the next step after it.
  Tensor* free_buffer = nullptr;
  for (Tensor& buffer : graph.host_logits) {
    if (buffer.storage().use_count() == 1) free_buffer = &buffer;
  }
  if (free_buffer == nullptr) {
    free_buffer = &graph.host_logits.emplace_back(
        Tensor::empty(graph.logits.shape(), DType::F32, backend_.pinned_host_allocator()));
  }
  backend_.copy(*free_buffer, graph.logits);
  return *free_buffer;
}

DecodeGraphs::Graph& DecodeGraphs::graph_for(Ctx& ctx, const GraphShape& shape) {
  const auto found = graphs_.find(shape);
  if (found != graphs_.end()) return found->second;
  const StagedLayout layout = staged_layout(shape.rows, shape.sequences, shape.table_width, config_.hidden_size);
  Graph graph;  // f32 and i32 are both 4 bytes: one i32 buffer holds everything
  graph.staging = Tensor::empty({layout.total}, DType::I32, backend_.pinned_host_allocator());
  graph.inputs = ctx.empty({layout.total}, DType::I32, backend_.device());
  const std::shared_ptr<Storage>& storage = graph.inputs.storage();
  const auto view = [&](const Shape& dims, DType dtype, int64_t first_elem) {
    return Tensor(storage, dims, dtype, graph.inputs.offset_bytes() + first_elem * 4);
  };
  graph.step.tokens = shape.rows;
  graph.step.positions = view({shape.rows}, DType::I32, layout.positions);
  graph.step.slots = view({shape.rows}, DType::I32, layout.slots);
  graph.step.token_sequences = view({shape.rows}, DType::I32, layout.token_sequences);
  graph.step.block_tables = view({shape.sequences, shape.table_width}, DType::I32, layout.block_tables);
  graph.step.max_visible = shape.visible;
  graph.x = view({shape.rows, config_.hidden_size}, DType::F32, layout.x);
  return graphs_.emplace(shape, std::move(graph)).first->second;
}

void DecodeGraphs::stage(Graph& graph, const GraphShape& shape, const StepIndices& indices, const Batch& batch,
                         const Tensor& embedding) {
  const StagedLayout layout = staged_layout(shape.rows, shape.sequences, shape.table_width, config_.hidden_size);
  int32_t* staging = graph.staging.data<int32_t>();
  std::copy(indices.positions.begin(), indices.positions.end(), staging + layout.positions);
  std::copy(indices.slots.begin(), indices.slots.end(), staging + layout.slots);
  std::copy(indices.token_sequences.begin(), indices.token_sequences.end(), staging + layout.token_sequences);
  // Tables cut or padded (-1) to the bucket's width: the entries past it name positions
  // beyond every token of the step, which attention never reads.
  for (int64_t s = 0; s < shape.sequences; ++s) {
    const int32_t* row = indices.block_tables.data() + s * indices.max_blocks;
    int32_t* out = staging + layout.block_tables + s * shape.table_width;
    const int64_t kept = std::min(shape.table_width, indices.max_blocks);
    std::copy(row, row + kept, out);
    std::fill(out + kept, out + shape.table_width, -1);
  }
  gather_rows_host(embedding, batch.tokens, reinterpret_cast<float*>(staging + layout.x));
}

void DecodeGraphs::bind_cache(PagedKvCache& cache) {
  // The kernels take the cache's addresses and its shape (block size, dtype) as arguments.
  const KvCacheShape& cache_shape = cache.shape();
  std::vector<uintptr_t> addresses;
  addresses.push_back(static_cast<uintptr_t>(cache_shape.num_blocks));
  addresses.push_back(static_cast<uintptr_t>(cache_shape.block_size));
  addresses.push_back(static_cast<uintptr_t>(cache_shape.dtype));
  for (int64_t layer = 0; layer < cache.shape().num_layers; ++layer) {
    addresses.push_back(reinterpret_cast<uintptr_t>(cache.keys(layer).raw_data()));
    addresses.push_back(reinterpret_cast<uintptr_t>(cache.values(layer).raw_data()));
  }
  if (addresses == cache_addresses_) return;
  graphs_.clear();
  cache_addresses_ = std::move(addresses);
}

Tensor DecodeGraphs::run_and_capture(Ctx& ctx, Graph& graph, PagedKvCache& cache) {
  const ActivePool pool(backend_, pool_);
  // This run is the step's answer, and leaves in the pool every block the capture needs.
  Tensor host_logits = ctx.to_device(body_(ctx, graph.step, graph.x, cache), Device::cpu());
  try {
    graph.graph = backend_.capture_graph([&] { graph.logits = body_(ctx, graph.step, graph.x, cache); });
    ++stats_.captured;
  } catch (const Error& error) {
    ++stats_.failures;
    graph.logits = Tensor();
    std::fprintf(stderr, "anvil: CUDA graph capture failed, decoding without graphs: %s\n", error.what());
  }
  return host_logits;
}

}  // namespace anvil::model
