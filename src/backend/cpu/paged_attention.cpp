// Attention over a paged KV cache on the CPU, and the cache write. One task per (tile of up
// to 16 consecutive tokens of one sequence, kv head): the tokens' query heads sharing that
// kv head walk their visible keys block by block with an online softmax, so each key/value
// row is read (and widened from f16/bf16) once per tile and group.
// Every task sums in a fixed order: results do not depend on the thread count.
// f16 caches with heads a multiple of 64 wide (with AVX2 or AVX-512, no window) instead take
// llama.cpp's arithmetic, to the bit (paged_attention_kernels.h): each query row's scores,
// softmax and weighted values over its whole visible prefix, as ggml-cpu sums them (tinyBLAS
// order when the batch has two or more tokens, ggml_vec_dot_f16's for one).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/half_convert.h"
#include "cpu/paged_attention_kernels.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// Sizes of one paged_attention call.
struct PagedDims {
  int64_t q_heads = 0;               // Hq
  int64_t kv_heads = 0;              // Hkv
  int64_t head_dim = 0;              // D
  int64_t num_blocks = 0;            // blocks in the cache
  int64_t block_size = 0;            // slots per block
  int64_t sequences = 0;             // S, rows of block_tables
  int64_t max_blocks = 0;            // columns of block_tables
  int64_t window = 0;                // sliding window, 0 = none
  float scale = 1.0F;                // resolved, never 0
  CpuIsa isa = CpuIsa::Scalar;       // for widening f16 / bf16 cache rows
  AttendRows attend_rows = nullptr;  // the inner step for `isa`

  [[nodiscard]] int64_t group() const { return q_heads / kv_heads; }
  // First position visible from position p.
  [[nodiscard]] int64_t first_visible(int64_t position) const {
    return window > 0 ? std::max<int64_t>(0, position - window + 1) : 0;
  }
};

void attend_rows_scalar(const float* q, const float* keys, int64_t key_stride, const float* values,
                        int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                        float* sum);

PagedDims paged_dims(const Tensor& q, const Tensor& key_cache, const Tensor& block_tables,
                     const PagedAttentionParams& params, CpuIsa isa) {
  PagedDims dims;
  dims.isa = isa;
  dims.attend_rows = isa == CpuIsa::Avx512 ? attend_rows_avx512 : attend_rows_scalar;
  dims.q_heads = q.size(1);
  dims.kv_heads = key_cache.size(2);
  dims.head_dim = q.size(2);
  dims.num_blocks = key_cache.size(0);
  dims.block_size = key_cache.size(1);
  dims.sequences = block_tables.size(0);
  dims.max_blocks = block_tables.size(1);
  dims.window = params.sliding_window;
  dims.scale = params.scale != 0.0F ? params.scale : 1.0F / std::sqrt(static_cast<float>(dims.head_dim));
  return dims;
}

// Throws unless every slot is in [0, num_slots) and no slot appears twice.
void check_slots(const Tensor& slots, int64_t num_slots) {
  const int32_t* values = slots.data<const int32_t>();
  for (int64_t i = 0; i < slots.numel(); ++i) {
    if (values[i] < 0 || values[i] >= num_slots) {
      throw make_error("op kv_cache_write: slot ", values[i], " of token ", i, " is out of range for a cache of ",
                       num_slots, " slots");
    }
  }
  std::vector<int32_t> sorted(values, values + slots.numel());
  std::sort(sorted.begin(), sorted.end());
  const auto repeated = std::adjacent_find(sorted.begin(), sorted.end());
  ANVIL_CHECK(repeated == sorted.end(), "op kv_cache_write: slot ", *repeated, " is written twice in one call");
}

// Throws unless each token's sequence and position are valid and every block it reads is
// a real block id.
void check_tokens(const PagedDims& dims, const Tensor& token_sequences, const Tensor& positions,
                  const Tensor& block_tables) {
  const int32_t* sequence_of = token_sequences.data<const int32_t>();
  const int32_t* position_of = positions.data<const int32_t>();
  const int32_t* tables = block_tables.data<const int32_t>();
  for (int64_t i = 0; i < positions.numel(); ++i) {
    const int64_t sequence = sequence_of[i];
    const int64_t position = position_of[i];
    ANVIL_CHECK(sequence >= 0 && sequence < dims.sequences, "op paged_attention: token ", i, " names sequence ",
                sequence, " but block_tables has ", dims.sequences, " rows");
    ANVIL_CHECK(position >= 0, "op paged_attention: token ", i, " has negative position ", position);
    const int64_t last_block = position / dims.block_size;
    ANVIL_CHECK(last_block < dims.max_blocks, "op paged_attention: token ", i, " at position ", position,
                " needs block index ", last_block, " but block_tables has ", dims.max_blocks, " columns");
    for (int64_t b = dims.first_visible(position) / dims.block_size; b <= last_block; ++b) {
      const int32_t block = tables[sequence * dims.max_blocks + b];
      ANVIL_CHECK(block >= 0 && block < dims.num_blocks, "op paged_attention: block id ", block, " (sequence ",
                  sequence, ", block index ", b, ") is out of range for a cache of ", dims.num_blocks, " blocks");
    }
  }
}

// a . b with 16 independent partial sums (vectorises; fixed order).
float dot(const float* a, const float* b, int64_t n) {
  constexpr int64_t kLanes = 16;
  float partial[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t lane = 0; lane < kLanes; ++lane) partial[lane] += a[i + lane] * b[i + lane];
  }
  float sum = 0.0F;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (const float value : partial) sum += value;
  return sum;
}

// Rows [first, first + count) of one kv head of one cache block as f32: (count, D) rows
// `stride` floats apart, in the cache itself (f32) or converted into `scratch`.
struct Rows {
  const float* data;
  int64_t stride;
};

Rows block_rows(const Tensor& cache, const PagedDims& dims, int64_t block, int64_t kv_head, int64_t first,
                int64_t count, std::vector<float>& scratch) {
  const int64_t d = dims.head_dim;
  const int64_t first_row = (block * dims.block_size + first) * dims.kv_heads + kv_head;  // in (slots * Hkv, D)
  if (cache.dtype() == DType::F32) return {cache.data<const float>() + first_row * d, dims.kv_heads * d};
  scratch.resize(static_cast<size_t>(count * d));
  for (int64_t j = 0; j < count; ++j) {
    widen_half_row(dims.isa, cache.dtype(), row_bytes(cache, first_row + j * dims.kv_heads, d), scratch.data() + j * d,
                   d);
  }
  return {scratch.data(), d};
}

// Online-softmax state of the query rows of one task: the G query heads of kv head h for
// each of up to kQueryTile tokens of one sequence, row r = token_in_tile * G + g.
struct TileState {
  std::vector<float> q;       // (R, D), pre-scaled
  std::vector<float> acc;     // (R, D), sum of p_j v_j
  std::vector<float> max;     // (R)
  std::vector<float> sum;     // (R), sum of p_j
  std::vector<float> scores;  // (block_size)
  std::vector<float> key_scratch, value_scratch, io_scratch;

  TileState(const PagedDims& dims, int64_t max_tokens)
      : q(static_cast<size_t>(max_tokens * dims.group() * dims.head_dim)),
        acc(q.size()),
        max(static_cast<size_t>(max_tokens * dims.group())),
        sum(max.size()),
        scores(static_cast<size_t>(dims.block_size)) {}
};

// Query tokens per task in prefill: each K/V block is widened once per tile, not per token.
constexpr int64_t kQueryTile = 16;

// The portable inner step (see paged_attention_kernels.h).
void attend_rows_scalar(const float* q, const float* keys, int64_t key_stride, const float* values,
                        int64_t value_stride, int64_t count, int64_t d, float* scores, float* acc, float* max,
                        float* sum) {
  float block_max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    scores[j] = dot(q, keys + j * key_stride, d);
    block_max = std::max(block_max, scores[j]);
  }
  const float new_max = std::max(*max, block_max);
  const float correction = std::exp(*max - new_max);  // 0 on the first block (max = -inf)
  *max = new_max;
  float block_sum = 0.0F;
  for (int64_t c = 0; c < d; ++c) acc[c] *= correction;
  for (int64_t j = 0; j < count; ++j) {
    const float p = std::exp(scores[j] - new_max);
    block_sum += p;
    const float* v = values + j * value_stride;
    for (int64_t c = 0; c < d; ++c) acc[c] += p * v[c];
  }
  *sum = *sum * correction + block_sum;
}

// Adds `count` keys/values to query row `row` of the state.
void attend_rows(const PagedDims& dims, const Rows& keys, const Rows& values, int64_t count, int64_t row,
                 TileState& state) {
  const int64_t d = dims.head_dim;
  dims.attend_rows(state.q.data() + row * d, keys.data, keys.stride, values.data, values.stride, count, d,
                   state.scores.data(), state.acc.data() + row * d, &state.max[static_cast<size_t>(row)],
                   &state.sum[static_cast<size_t>(row)]);
}

// A task: tokens [first_token, first_token + tokens) of one sequence, one kv head.
struct Task {
  int64_t first_token = 0;
  int64_t tokens = 0;
  int64_t kv_head = 0;
};

// Loads the task's query rows (pre-scaled) and resets their softmax state; returns the
// lowest and highest position any of its tokens sees.
std::pair<int64_t, int64_t> start_tile(const PagedDims& dims, const Task& task, const Tensor& q,
                                       const int32_t* positions, TileState& state) {
  const int64_t d = dims.head_dim;
  const int64_t group = dims.group();
  int64_t lowest = std::numeric_limits<int64_t>::max();
  int64_t highest = 0;
  for (int64_t i = 0; i < task.tokens; ++i) {
    const int64_t token = task.first_token + i;
    const int64_t first_q_row = token * dims.q_heads + task.kv_head * group;  // in (N * Hq, D)
    for (int64_t g = 0; g < group; ++g) {
      const float* row = load_row(q, first_q_row + g, d, state.io_scratch);
      for (int64_t c = 0; c < d; ++c) state.q[(i * group + g) * d + c] = row[c] * dims.scale;
    }
    lowest = std::min(lowest, dims.first_visible(positions[token]));
    highest = std::max<int64_t>(highest, positions[token]);
  }
  const auto rows = static_cast<size_t>(task.tokens * group);
  std::fill_n(state.acc.begin(), rows * static_cast<size_t>(d), 0.0F);
  std::fill_n(state.max.begin(), rows, -std::numeric_limits<float>::infinity());
  std::fill_n(state.sum.begin(), rows, 0.0F);
  return {lowest, highest};
}

// out rows of the task's tokens, query heads of its kv head. Every token sees its own
// visible range; keys are visited in block order for all of them, so each token's sums run
// in the same order as when it is alone in a task (results do not depend on the tiling).
void attend_tile(const PagedDims& dims, const Task& task, Tensor& out, const Tensor& q, const Tensor& key_cache,
                 const Tensor& value_cache, const int32_t* table, const int32_t* positions, TileState& state) {
  const int64_t d = dims.head_dim;
  const int64_t group = dims.group();
  const auto [lowest, highest] = start_tile(dims, task, q, positions, state);
  for (int64_t b = lowest / dims.block_size; b <= highest / dims.block_size; ++b) {
    const int64_t block_start = b * dims.block_size;
    const int64_t begin = std::max(lowest, block_start) - block_start;
    const int64_t end = std::min(highest + 1, block_start + dims.block_size) - block_start;
    const Rows keys = block_rows(key_cache, dims, table[b], task.kv_head, begin, end - begin, state.key_scratch);
    const Rows values = block_rows(value_cache, dims, table[b], task.kv_head, begin, end - begin, state.value_scratch);
    for (int64_t i = 0; i < task.tokens; ++i) {
      const int64_t position = positions[task.first_token + i];
      const int64_t from = std::max(begin, dims.first_visible(position) - block_start);
      const int64_t to = std::min(end, position + 1 - block_start);
      if (from >= to) continue;
      const Rows visible_keys{keys.data + (from - begin) * keys.stride, keys.stride};
      const Rows visible_values{values.data + (from - begin) * values.stride, values.stride};
      for (int64_t g = 0; g < group; ++g) {
        attend_rows(dims, visible_keys, visible_values, to - from, i * group + g, state);
      }
    }
  }
  for (int64_t i = 0; i < task.tokens; ++i) {
    const int64_t first_q_row = (task.first_token + i) * dims.q_heads + task.kv_head * group;
    for (int64_t g = 0; g < group; ++g) {
      float* o = output_row(out, first_q_row + g, d, state.io_scratch);
      const float inv_sum = 1.0F / state.sum[i * group + g];
      for (int64_t c = 0; c < d; ++c) o[c] = state.acc[(i * group + g) * d + c] * inv_sum;
      store_row(out, first_q_row + g, d, o);
    }
  }
}

// Tasks over the batch: runs of up to kQueryTile consecutive tokens of one sequence, times
// the kv heads (decode, one token per sequence, gets one task per token and head).
std::vector<Task> make_tasks(const PagedDims& dims, const int32_t* sequence_of, int64_t num_tokens) {
  std::vector<Task> tasks;
  for (int64_t token = 0; token < num_tokens;) {
    int64_t count = 1;
    while (token + count < num_tokens && count < kQueryTile && sequence_of[token + count] == sequence_of[token]) {
      ++count;
    }
    for (int64_t h = 0; h < dims.kv_heads; ++h) tasks.push_back({token, count, h});
    token += count;
  }
  return tasks;
}

// llama.cpp's arithmetic (attend_ggml_order_*) applies: AVX2 or AVX-512, f16 cache, no
// window, heads a multiple of 64 wide.
bool ggml_order_applies(const PagedDims& dims, const Tensor& key_cache, const Tensor& value_cache) {
  return dims.isa != CpuIsa::Scalar && key_cache.dtype() == DType::F16 && value_cache.dtype() == DType::F16 &&
         dims.window == 0 && dims.head_dim % 64 == 0;
}

// One task in llama.cpp's arithmetic: the kv head's keys and values of positions
// 0..highest gathered as f16 rows, then each query row attends to its visible prefix.
void attend_tile_ggml_order(const PagedDims& dims, const Task& task, bool batched, Tensor& out, const Tensor& q,
                            const Tensor& key_cache, const Tensor& value_cache, const int32_t* table,
                            const int32_t* positions, std::vector<uint16_t>& rows, std::vector<float>& scratch,
                            std::vector<float>& io_scratch) {
  const int64_t d = dims.head_dim;
  const int64_t group = dims.group();
  int64_t highest = 0;
  for (int64_t i = 0; i < task.tokens; ++i) highest = std::max<int64_t>(highest, positions[task.first_token + i]);
  const int64_t count = highest + 1;
  rows.resize(static_cast<size_t>(2 * count * d));
  uint16_t* keys = rows.data();
  uint16_t* values = keys + count * d;
  for (int64_t p = 0; p < count; ++p) {
    const int64_t row = (table[p / dims.block_size] * dims.block_size + p % dims.block_size) * dims.kv_heads +
                        task.kv_head;  // in (slots * Hkv, D)
    std::memcpy(keys + p * d, row_bytes(key_cache, row, d), static_cast<size_t>(d) * sizeof(uint16_t));
    std::memcpy(values + p * d, row_bytes(value_cache, row, d), static_cast<size_t>(d) * sizeof(uint16_t));
  }
  scratch.resize(static_cast<size_t>((count + 63) / 64 * 64 + 66 * d));
  float* result = scratch.data() + scratch.size() - d;  // after the kernel's scratch
  const auto attend = dims.isa == CpuIsa::Avx512 ? attend_ggml_order_avx512 : attend_ggml_order_avx2;
  for (int64_t i = 0; i < task.tokens; ++i) {
    const int64_t token = task.first_token + i;
    for (int64_t g = 0; g < group; ++g) {
      const int64_t q_row = token * dims.q_heads + task.kv_head * group + g;  // in (N * Hq, D)
      const float* query = load_row(q, q_row, d, io_scratch);
      attend(query, keys, values, positions[token] + 1, d, dims.scale, batched, scratch.data(), result);
      float* o = output_row(out, q_row, d, io_scratch);
      std::copy(result, result + d, o);
      store_row(out, q_row, d, o);
    }
  }
}

}  // namespace

void CpuBackend::kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                                const Tensor& slots, bool slots_checked) {
  const int64_t num_slots = key_cache.size(0) * key_cache.size(1);
  const int64_t row_length = key_cache.size(2) * key_cache.size(3);  // Hkv * D: one slot
  if (!slots_checked) check_slots(slots, num_slots);
  const int32_t* slot_of = slots.data<const int32_t>();
  pool_.parallel_for(k.size(0), 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      convert_host(k.dtype(), row_bytes(k, i, row_length), key_cache.dtype(),
                   row_bytes(key_cache, slot_of[i], row_length), row_length);
      convert_host(v.dtype(), row_bytes(v, i, row_length), value_cache.dtype(),
                   row_bytes(value_cache, slot_of[i], row_length), row_length);
    }
  });
}

void CpuBackend::paged_attention(Tensor& out, const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                                 const Tensor& token_sequences, const Tensor& positions, const Tensor& block_tables,
                                 const PagedAttentionParams& params) {
  const PagedDims dims = paged_dims(q, key_cache, block_tables, params, isa_);
  if (params.checked_max_visible <= 0) check_tokens(dims, token_sequences, positions, block_tables);
  const int32_t* sequence_of = token_sequences.data<const int32_t>();
  const int32_t* position_of = positions.data<const int32_t>();
  const int32_t* tables = block_tables.data<const int32_t>();
  const std::vector<Task> tasks = make_tasks(dims, sequence_of, q.size(0));
  if (ggml_order_applies(dims, key_cache, value_cache)) {
    const bool batched = q.size(0) >= 2;  // llama.cpp's f16 matmuls go through tinyBLAS then
    pool_.parallel_for(static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
      std::vector<uint16_t> rows;
      std::vector<float> scratch;
      std::vector<float> io_scratch;
      for (int64_t t = begin; t < end; ++t) {
        const Task& task = tasks[static_cast<size_t>(t)];
        const int32_t* table = tables + static_cast<int64_t>(sequence_of[task.first_token]) * dims.max_blocks;
        attend_tile_ggml_order(dims, task, batched, out, q, key_cache, value_cache, table, position_of, rows, scratch,
                               io_scratch);
      }
    });
    return;
  }
  pool_.parallel_for(static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    TileState state(dims, kQueryTile);
    for (int64_t t = begin; t < end; ++t) {
      const Task& task = tasks[static_cast<size_t>(t)];
      const int32_t* table = tables + static_cast<int64_t>(sequence_of[task.first_token]) * dims.max_blocks;
      attend_tile(dims, task, out, q, key_cache, value_cache, table, position_of, state);
    }
  });
}

}  // namespace anvil::cpu
