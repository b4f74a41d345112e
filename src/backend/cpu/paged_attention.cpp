// Attention over a paged KV cache on the CPU, and the cache write. One task per (token,
// kv head): the group of query heads sharing that kv head walks the token's visible keys
// block by block with an online softmax, so each key/value row is read once per group.
// Every task sums in a fixed order: results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "anvil/core/convert.h"
#include "anvil/core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// Sizes of one paged_attention call.
struct PagedDims {
  int64_t q_heads = 0;     // Hq
  int64_t kv_heads = 0;    // Hkv
  int64_t head_dim = 0;    // D
  int64_t num_blocks = 0;  // blocks in the cache
  int64_t block_size = 0;  // slots per block
  int64_t sequences = 0;   // S, rows of block_tables
  int64_t max_blocks = 0;  // columns of block_tables
  int64_t window = 0;      // sliding window, 0 = none
  float scale = 1.0F;      // resolved, never 0

  [[nodiscard]] int64_t group() const { return q_heads / kv_heads; }
  // First position visible from position p.
  [[nodiscard]] int64_t first_visible(int64_t position) const {
    return window > 0 ? std::max<int64_t>(0, position - window + 1) : 0;
  }
};

PagedDims paged_dims(const Tensor& q, const Tensor& key_cache, const Tensor& block_tables,
                     const PagedAttentionParams& params) {
  PagedDims dims;
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
    convert_host(cache.dtype(), row_bytes(cache, first_row + j * dims.kv_heads, d), DType::F32, scratch.data() + j * d,
                 d);
  }
  return {scratch.data(), d};
}

// Online-softmax state of the G query heads of one (token, kv head) task.
struct GroupState {
  std::vector<float> q;       // (G, D), pre-scaled
  std::vector<float> acc;     // (G, D), sum of p_j v_j
  std::vector<float> max;     // (G)
  std::vector<float> sum;     // (G), sum of p_j
  std::vector<float> scores;  // (block_size)
  std::vector<float> key_scratch, value_scratch, io_scratch;

  explicit GroupState(const PagedDims& dims)
      : q(static_cast<size_t>(dims.group() * dims.head_dim)),
        acc(q.size()),
        max(static_cast<size_t>(dims.group())),
        sum(max.size()),
        scores(static_cast<size_t>(dims.block_size)) {}
};

// Adds `count` keys/values (rows of one block) to the state of every head of the group.
void attend_rows(const PagedDims& dims, const Rows& keys, const Rows& values, int64_t count, GroupState& state) {
  const int64_t d = dims.head_dim;
  for (int64_t g = 0; g < dims.group(); ++g) {
    const float* q = state.q.data() + g * d;
    float* acc = state.acc.data() + g * d;
    float block_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < count; ++j) {
      state.scores[j] = dot(q, keys.data + j * keys.stride, d);
      block_max = std::max(block_max, state.scores[j]);
    }
    const float new_max = std::max(state.max[g], block_max);
    const float correction = std::exp(state.max[g] - new_max);  // 0 on the first block (max = -inf)
    state.max[g] = new_max;
    float block_sum = 0.0F;
    for (int64_t c = 0; c < d; ++c) acc[c] *= correction;
    for (int64_t j = 0; j < count; ++j) {
      const float p = std::exp(state.scores[j] - new_max);
      block_sum += p;
      const float* v = values.data + j * values.stride;
      for (int64_t c = 0; c < d; ++c) acc[c] += p * v[c];
    }
    state.sum[g] = state.sum[g] * correction + block_sum;
  }
}

// out rows of token `token`, query heads of kv head `kv_head`.
void attend_token(const PagedDims& dims, int64_t token, int64_t kv_head, Tensor& out, const Tensor& q,
                  const Tensor& key_cache, const Tensor& value_cache, const int32_t* table, int64_t position,
                  GroupState& state) {
  const int64_t d = dims.head_dim;
  const int64_t first_q_row = token * dims.q_heads + kv_head * dims.group();  // in (N * Hq, D)
  for (int64_t g = 0; g < dims.group(); ++g) {
    const float* row = load_row(q, first_q_row + g, d, state.io_scratch);
    for (int64_t c = 0; c < d; ++c) state.q[g * d + c] = row[c] * dims.scale;
  }
  std::fill(state.acc.begin(), state.acc.end(), 0.0F);
  std::fill(state.max.begin(), state.max.end(), -std::numeric_limits<float>::infinity());
  std::fill(state.sum.begin(), state.sum.end(), 0.0F);
  const int64_t first = dims.first_visible(position);
  for (int64_t b = first / dims.block_size; b <= position / dims.block_size; ++b) {
    const int64_t begin = std::max(first, b * dims.block_size) - b * dims.block_size;
    const int64_t end = std::min(position + 1, (b + 1) * dims.block_size) - b * dims.block_size;
    const Rows keys = block_rows(key_cache, dims, table[b], kv_head, begin, end - begin, state.key_scratch);
    const Rows values = block_rows(value_cache, dims, table[b], kv_head, begin, end - begin, state.value_scratch);
    attend_rows(dims, keys, values, end - begin, state);
  }
  for (int64_t g = 0; g < dims.group(); ++g) {
    float* o = output_row(out, first_q_row + g, d, state.io_scratch);
    const float inv_sum = 1.0F / state.sum[g];
    for (int64_t c = 0; c < d; ++c) o[c] = state.acc[g * d + c] * inv_sum;
    store_row(out, first_q_row + g, d, o);
  }
}

}  // namespace

void CpuBackend::kv_cache_write(Tensor& key_cache, Tensor& value_cache, const Tensor& k, const Tensor& v,
                                const Tensor& slots) {
  const int64_t num_slots = key_cache.size(0) * key_cache.size(1);
  const int64_t row_length = key_cache.size(2) * key_cache.size(3);  // Hkv * D: one slot
  check_slots(slots, num_slots);
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
  const PagedDims dims = paged_dims(q, key_cache, block_tables, params);
  check_tokens(dims, token_sequences, positions, block_tables);
  const int32_t* sequence_of = token_sequences.data<const int32_t>();
  const int32_t* position_of = positions.data<const int32_t>();
  const int32_t* tables = block_tables.data<const int32_t>();
  pool_.parallel_for(q.size(0) * dims.kv_heads, 1, [&](int64_t begin, int64_t end) {
    GroupState state(dims);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t token = task / dims.kv_heads;
      const int32_t* table = tables + static_cast<int64_t>(sequence_of[token]) * dims.max_blocks;
      attend_token(dims, token, task % dims.kv_heads, out, q, key_cache, value_cache, table, position_of[token], state);
    }
  });
}

}  // namespace anvil::cpu
