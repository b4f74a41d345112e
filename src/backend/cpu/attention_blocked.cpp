// Blocked (FlashAttention-2 style) causal/non-causal attention with grouped-query heads
// on the CPU. Never holds a (T, T) matrix: memory is O(T * D) per head.
//
// Shapes: q (B, T, Hq, D); k, v (B, T, Hkv, D); query head h reads kv head h / (Hq / Hkv).
// Everything is computed in f32 on packed copies (bf16/f16 are converted while packing):
//   K^T tiles  (B * Hkv, tiles, D, Bk)   keys padded with zeros to a whole tile,
//   K/V rows   (B * Hkv, tiles * Bk, Dp) with D padded to Dp (a multiple of 16),
// so every matmul below is a small dense GEMM on f32 tiles (AttentionTileKernels::gemm,
// AVX-512 or scalar). Bq = Bk = 64: a (64, 64) score tile is 16 KiB and the K^T/V tiles
// of a head with D = 64 are 16 KiB each, so a tile step works out of L1/L2.
//
// Forward, one work item per (batch, query head, query tile of Bq rows):
//   O = 0 (Bq, Dp), m = -inf, l = 0 (Bq)
//   for each key tile j (causal: only up to the tile holding the last query of the item):
//     S = Q K_j^T (Bq, Bk);  rows see keys <= their position when causal (others masked)
//     m' = max(m, scale * rowmax S);  P = exp(scale * S - m');  alpha = exp(m - m')
//     l = alpha * l + rowsum P;  O = alpha * O + P V_j;  m = m'
//   out = O / l;  lse = m + log l  (B, Hq, T)
// Items are ordered heaviest query tile first, so the dynamic chunks of the thread pool
// balance the triangular work of the causal case.
//
// Backward, one work item per (batch, query head), recomputing P from q, k and lse:
//   Delta = rowsum(dO * O) (T)
//   for each key tile j:  dK_j = dV_j = 0 (Bk, Dp)
//     for each query tile i that sees key tile j:
//       P = exp(scale * Q_i K_j^T - lse_i);  dV_j += P^T dO_i
//       dS = scale * P * (dO_i V_j^T - Delta_i)
//       dK_j += dS^T Q_i;  dQ_i += dS K_j
// dQ of a head is owned by its item. dK/dV go straight to dk/dv when Hq == Hkv; with
// grouped heads each query head writes a partial (T, Dp) and the partials of a group are
// summed in head order afterwards, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention_kernels.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kQueryTile = 64;  // Bq
constexpr int64_t kKeyTile = 64;    // Bk (a multiple of kAttentionColumnQuantum)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
size_t to_size(int64_t n) { return static_cast<size_t>(n); }

// ---- Scalar tile primitives (the fallback of attention_blocked_avx512.cpp) ----

void gemm_scalar(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t a_row_stride, int64_t a_col_stride,
                 const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    float* c_row = c + r * ldc;
    if (!accumulate) std::fill(c_row, c_row + cols, 0.0F);
    for (int64_t i = 0; i < inner; ++i) {
      const float a_value = a[r * a_row_stride + i * a_col_stride];
      const float* b_row = b + i * ldb;
      for (int64_t col = 0; col < cols; ++col) c_row[col] += a_value * b_row[col];
    }
  }
}

float exp_row_scalar(float* row, int64_t valid, int64_t total, float scale, float shift) {
  float sum = 0.0F;
  for (int64_t i = 0; i < valid; ++i) {
    row[i] = std::exp(scale * row[i] - shift);
    sum += row[i];
  }
  std::fill(row + valid, row + total, 0.0F);
  return sum;
}

float row_max_scalar(const float* row, int64_t n) { return *std::max_element(row, row + n); }

// ---- Packing ----

// k or v of every (batch, kv head) in f32: K^T tiles (D, Bk) and/or rows (tiles * Bk, Dp).
struct KvPack {
  int64_t tiles = 0;
  int64_t head_dim = 0;
  int64_t padded_dim = 0;         // Dp
  std::vector<float> transposed;  // (B * Hkv, tiles, D, Bk)
  std::vector<float> rows;        // (B * Hkv, tiles * Bk, Dp)

  // K^T tile j (D, Bk) of (batch, kv head) index bh.
  [[nodiscard]] const float* tile_t(int64_t bh, int64_t j) const {
    return transposed.data() + (bh * tiles + j) * head_dim * kKeyTile;
  }
  // Rows (Bk, Dp) of tile j of (batch, kv head) index bh.
  [[nodiscard]] const float* tile_rows(int64_t bh, int64_t j) const {
    return rows.data() + (bh * tiles + j) * kKeyTile * padded_dim;
  }
};

KvPack pack_kv(ThreadPool& pool, const AttentionDims& dims, const Tensor& x, bool want_transposed, bool want_rows) {
  KvPack pack;
  pack.tiles = ceil_div(dims.seq, kKeyTile);
  pack.head_dim = dims.head_dim;
  pack.padded_dim = round_up(dims.head_dim, kAttentionColumnQuantum);
  const int64_t heads = dims.batch * dims.kv_heads;
  if (want_transposed) pack.transposed.assign(to_size(heads * pack.tiles * kKeyTile * dims.head_dim), 0.0F);
  if (want_rows) pack.rows.assign(to_size(heads * pack.tiles * kKeyTile * pack.padded_dim), 0.0F);
  pool.parallel_for(heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / dims.kv_heads;
      for (int64_t t = 0; t < dims.seq; ++t) {
        const float* src = load_row(x, dims.kv_row(b, t, bh % dims.kv_heads), dims.head_dim, scratch);
        const int64_t j = t / kKeyTile;
        const int64_t col = t % kKeyTile;
        if (want_transposed) {
          float* dst = pack.transposed.data() + (bh * pack.tiles + j) * dims.head_dim * kKeyTile + col;
          for (int64_t c = 0; c < dims.head_dim; ++c) dst[c * kKeyTile] = src[c];
        }
        if (want_rows)
          std::copy(src, src + dims.head_dim, pack.rows.data() + (bh * pack.tiles * kKeyTile + t) * pack.padded_dim);
      }
    }
  });
  return pack;
}

// Keys of a tile starting at key `key0` (holding `keys` keys) that query `pos` sees.
int64_t visible_in_tile(const AttentionDims& dims, int64_t pos, int64_t key0, int64_t keys) {
  if (!dims.causal) return keys;
  return std::clamp<int64_t>(pos - key0 + 1, 0, keys);
}

// ---- Forward ----

// Per-thread buffers of the forward.
struct ForwardScratch {
  std::vector<float> q;                 // (Bq, D)
  std::vector<float> scores;            // (Bq, Bk): S, then P
  std::vector<float> acc;               // (Bq, Dp): O
  std::vector<float> row_max, row_sum;  // (Bq): m, l
  std::vector<float> convert;           // one row, for bf16/f16 I/O

  ForwardScratch(int64_t d, int64_t dp)
      : q(to_size(kQueryTile * d)),
        scores(to_size(kQueryTile * kKeyTile)),
        acc(to_size(kQueryTile * dp)),
        row_max(to_size(kQueryTile)),
        row_sum(to_size(kQueryTile)) {}
};

struct BlockedForward {
  const AttentionDims& dims;
  AttentionTileKernels kernels;
  KvPack keys;    // K^T tiles
  KvPack values;  // V rows
  Tensor& out;
  Tensor& lse;
  const Tensor& q;

  // Online-softmax update of rows [0, rows) of the item with the scores of key tile j;
  // leaves P in scratch.scores.
  void softmax_step(int64_t pos0, int64_t rows, int64_t j, int64_t keys_in_tile, ForwardScratch& s) const {
    const int64_t dp = values.padded_dim;
    for (int64_t r = 0; r < rows; ++r) {
      float* p = s.scores.data() + r * kKeyTile;
      const int64_t valid = visible_in_tile(dims, pos0 + r, j * kKeyTile, keys_in_tile);
      if (valid == 0) {
        std::fill(p, p + keys_in_tile, 0.0F);
        continue;
      }
      const float old_max = s.row_max[to_size(r)];
      const float new_max = std::max(old_max, dims.scale * kernels.row_max(p, valid));
      const float alpha = std::exp(old_max - new_max);  // 0 on the first tile (old_max = -inf)
      const float tile_sum = kernels.exp_row(p, valid, keys_in_tile, dims.scale, new_max);
      s.row_sum[to_size(r)] = alpha * s.row_sum[to_size(r)] + tile_sum;
      s.row_max[to_size(r)] = new_max;
      if (alpha != 1.0F) {
        float* o = s.acc.data() + r * dp;
        for (int64_t c = 0; c < dp; ++c) o[c] *= alpha;
      }
    }
  }

  // One work item: query tile `tile` of (batch b, query head h).
  void run(int64_t b, int64_t h, int64_t tile, ForwardScratch& s) const {
    const int64_t d = dims.head_dim;
    const int64_t dp = values.padded_dim;
    const int64_t pos0 = tile * kQueryTile;
    const int64_t rows = std::min(kQueryTile, dims.seq - pos0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = load_row(q, dims.q_row(b, pos0 + r, h), d, s.convert);
      std::copy(src, src + d, s.q.data() + r * d);
    }
    std::fill(s.acc.begin(), s.acc.end(), 0.0F);
    std::fill(s.row_max.begin(), s.row_max.end(), -std::numeric_limits<float>::infinity());
    std::fill(s.row_sum.begin(), s.row_sum.end(), 0.0F);
    const int64_t kv_bh = b * dims.kv_heads + h / dims.group();
    const int64_t last_tile = dims.causal ? (pos0 + rows - 1) / kKeyTile : keys.tiles - 1;
    for (int64_t j = 0; j <= last_tile; ++j) {
      const int64_t keys_in_tile = std::min(kKeyTile, dims.seq - j * kKeyTile);
      const int64_t cols = round_up(keys_in_tile, kAttentionColumnQuantum);
      kernels.gemm(rows, cols, d, s.q.data(), d, 1, keys.tile_t(kv_bh, j), kKeyTile, s.scores.data(), kKeyTile, false);
      softmax_step(pos0, rows, j, keys_in_tile, s);
      kernels.gemm(rows, dp, keys_in_tile, s.scores.data(), kKeyTile, 1, values.tile_rows(kv_bh, j), dp, s.acc.data(),
                   dp, true);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = dims.q_row(b, pos0 + r, h);
      float* o = output_row(out, row, d, s.convert);
      const float inv_sum = 1.0F / s.row_sum[to_size(r)];
      for (int64_t c = 0; c < d; ++c) o[c] = s.acc[to_size(r * dp + c)] * inv_sum;
      store_row(out, row, d, o);
      if (lse.defined()) {
        lse.data<float>()[(b * dims.q_heads + h) * dims.seq + pos0 + r] =
            s.row_max[to_size(r)] + std::log(s.row_sum[to_size(r)]);
      }
    }
  }
};

AttentionTileKernels tile_kernels_for(CpuIsa isa) {
  return isa == CpuIsa::Avx512 ? attention_tile_kernels_avx512() : attention_tile_kernels_scalar();
}

// ---- Backward ----

// Per-thread buffers of the backward: whole-head f32 copies plus one tile's worth.
struct BackwardScratch {
  std::vector<float> q, grad_out, grad_q;  // (tiles * Bq, Dp)
  std::vector<float> delta;                // (tiles * Bq): rowsum(dO * O)
  std::vector<float> probs, grad_scores;   // (Bq, Bk): P, and dP then dS
  std::vector<float> grad_k, grad_v;       // (Bk, Dp)
  std::vector<float> convert, convert2;    // one row each, for bf16/f16 I/O

  BackwardScratch(int64_t padded_seq, int64_t dp)
      : q(to_size(padded_seq * dp)),
        grad_out(q.size()),
        grad_q(q.size()),
        delta(to_size(padded_seq)),
        probs(to_size(kQueryTile * kKeyTile)),
        grad_scores(probs.size()),
        grad_k(to_size(kKeyTile * dp)),
        grad_v(grad_k.size()) {}
};

struct BlockedBackward {
  const AttentionDims& dims;
  AttentionTileKernels kernels;
  KvPack keys;    // K^T tiles and K rows
  KvPack values;  // V^T tiles
  int64_t padded_seq;
  Tensor& dq;
  Tensor& dk;
  Tensor& dv;
  const Tensor& dout;
  const Tensor& q;
  const Tensor& out;
  const Tensor& lse;
  std::vector<float> dk_parts, dv_parts;  // (B * Hq, padded_seq, Dp) when Hq > Hkv

  // Loads q and dout of (b, h) into the scratch (zero-padded) and computes Delta.
  void load_head(int64_t b, int64_t h, BackwardScratch& s) const {
    const int64_t d = dims.head_dim;
    const int64_t dp = keys.padded_dim;
    std::fill(s.q.begin(), s.q.end(), 0.0F);
    std::fill(s.grad_out.begin(), s.grad_out.end(), 0.0F);
    std::fill(s.grad_q.begin(), s.grad_q.end(), 0.0F);
    for (int64_t t = 0; t < dims.seq; ++t) {
      const int64_t row = dims.q_row(b, t, h);
      const float* src = load_row(q, row, d, s.convert);
      std::copy(src, src + d, s.q.data() + t * dp);
      const float* g = load_row(dout, row, d, s.convert);
      std::copy(g, g + d, s.grad_out.data() + t * dp);
      const float* o = load_row(out, row, d, s.convert2);
      float delta = 0.0F;
      for (int64_t c = 0; c < d; ++c) delta += g[c] * o[c];
      s.delta[to_size(t)] = delta;
    }
  }

  // Adds the contributions of query tile i and key tile j (of kv index kv_bh) to dK_j,
  // dV_j and dQ_i.
  void tile_pair(int64_t b, int64_t h, int64_t kv_bh, int64_t i, int64_t j, BackwardScratch& s) const {
    const int64_t d = dims.head_dim;
    const int64_t dp = keys.padded_dim;
    const int64_t pos0 = i * kQueryTile;
    const int64_t rows = std::min(kQueryTile, dims.seq - pos0);
    const int64_t keys_in_tile = std::min(kKeyTile, dims.seq - j * kKeyTile);
    const int64_t cols = round_up(keys_in_tile, kAttentionColumnQuantum);
    const float* q_i = s.q.data() + pos0 * dp;
    const float* grad_out_i = s.grad_out.data() + pos0 * dp;
    const float* row_lse = lse.data<const float>() + (b * dims.q_heads + h) * dims.seq + pos0;
    float* p = s.probs.data();
    float* ds = s.grad_scores.data();
    kernels.gemm(rows, cols, d, q_i, dp, 1, keys.tile_t(kv_bh, j), kKeyTile, p, kKeyTile, false);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t valid = visible_in_tile(dims, pos0 + r, j * kKeyTile, keys_in_tile);
      kernels.exp_row(p + r * kKeyTile, valid, keys_in_tile, dims.scale, row_lse[r]);
    }
    kernels.gemm(keys_in_tile, dp, rows, p, 1, kKeyTile, grad_out_i, dp, s.grad_v.data(), dp, true);
    kernels.gemm(rows, cols, d, grad_out_i, dp, 1, values.tile_t(kv_bh, j), kKeyTile, ds, kKeyTile, false);
    for (int64_t r = 0; r < rows; ++r) {
      const float delta = s.delta[to_size(pos0 + r)];
      float* ds_row = ds + r * kKeyTile;
      const float* p_row = p + r * kKeyTile;
      for (int64_t c = 0; c < keys_in_tile; ++c) ds_row[c] = dims.scale * p_row[c] * (ds_row[c] - delta);
    }
    kernels.gemm(keys_in_tile, dp, rows, ds, 1, kKeyTile, q_i, dp, s.grad_k.data(), dp, true);
    kernels.gemm(rows, dp, keys_in_tile, ds, kKeyTile, 1, keys.tile_rows(kv_bh, j), dp, s.grad_q.data() + pos0 * dp, dp,
                 true);
  }

  // Writes dK_j / dV_j of one query head: into dk/dv directly, or into its partials.
  void store_key_tile(int64_t b, int64_t h, int64_t j, BackwardScratch& s) {
    const int64_t d = dims.head_dim;
    const int64_t dp = keys.padded_dim;
    const int64_t keys_in_tile = std::min(kKeyTile, dims.seq - j * kKeyTile);
    for (int64_t r = 0; r < keys_in_tile; ++r) {
      const int64_t t = j * kKeyTile + r;
      const float* gk = s.grad_k.data() + r * dp;
      const float* gv = s.grad_v.data() + r * dp;
      if (dims.group() == 1) {
        store_row(dk, dims.kv_row(b, t, h), d, copy_out(dk, dims.kv_row(b, t, h), gk, s.convert));
        store_row(dv, dims.kv_row(b, t, h), d, copy_out(dv, dims.kv_row(b, t, h), gv, s.convert));
      } else {
        const int64_t offset = ((b * dims.q_heads + h) * padded_seq + t) * dp;
        std::copy(gk, gk + d, dk_parts.data() + offset);
        std::copy(gv, gv + d, dv_parts.data() + offset);
      }
    }
  }

  // Copies `values` into the output_row of `tensor`'s row and returns that row.
  float* copy_out(Tensor& tensor, int64_t row, const float* values_f32, std::vector<float>& scratch) const {
    float* dst = output_row(tensor, row, dims.head_dim, scratch);
    std::copy(values_f32, values_f32 + dims.head_dim, dst);
    return dst;
  }

  // One work item: every gradient contribution of (batch b, query head h).
  void run(int64_t b, int64_t h, BackwardScratch& s) {
    const int64_t dp = keys.padded_dim;
    load_head(b, h, s);
    const int64_t kv_bh = b * dims.kv_heads + h / dims.group();
    const int64_t tiles = keys.tiles;
    for (int64_t j = 0; j < tiles; ++j) {
      std::fill(s.grad_k.begin(), s.grad_k.end(), 0.0F);
      std::fill(s.grad_v.begin(), s.grad_v.end(), 0.0F);
      const int64_t first_query_tile = dims.causal ? (j * kKeyTile) / kQueryTile : 0;
      for (int64_t i = first_query_tile; i < ceil_div(dims.seq, kQueryTile); ++i) tile_pair(b, h, kv_bh, i, j, s);
      store_key_tile(b, h, j, s);
    }
    for (int64_t t = 0; t < dims.seq; ++t) {
      const int64_t row = dims.q_row(b, t, h);
      store_row(dq, row, dims.head_dim, copy_out(dq, row, s.grad_q.data() + t * dp, s.convert));
    }
  }
};

}  // namespace

AttentionTileKernels attention_tile_kernels_scalar() { return {gemm_scalar, exp_row_scalar, row_max_scalar}; }

void attention_blocked_forward(ThreadPool& pool, CpuIsa isa, const AttentionDims& dims, Tensor& out, Tensor& lse,
                               const Tensor& q, const Tensor& k, const Tensor& v) {
  const BlockedForward forward{
      dims, tile_kernels_for(isa), pack_kv(pool, dims, k, true, false), pack_kv(pool, dims, v, false, true), out, lse,
      q};
  const int64_t heads = dims.batch * dims.q_heads;
  const int64_t query_tiles = ceil_div(dims.seq, kQueryTile);
  pool.parallel_for(heads * query_tiles, 1, [&](int64_t begin, int64_t end) {
    ForwardScratch scratch(dims.head_dim, forward.values.padded_dim);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t head = item % heads;
      const int64_t tile = query_tiles - 1 - item / heads;  // heaviest (causal) tiles first
      forward.run(head / dims.q_heads, head % dims.q_heads, tile, scratch);
    }
  });
}

void attention_blocked_backward(ThreadPool& pool, CpuIsa isa, const AttentionDims& dims, Tensor& dq, Tensor& dk,
                                Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& out, const Tensor& lse) {
  const int64_t padded_seq = ceil_div(dims.seq, kKeyTile) * kKeyTile;
  BlockedBackward backward{dims,
                           tile_kernels_for(isa),
                           pack_kv(pool, dims, k, true, true),
                           pack_kv(pool, dims, v, true, false),
                           padded_seq,
                           dq,
                           dk,
                           dv,
                           dout,
                           q,
                           out,
                           lse,
                           {},
                           {}};
  const int64_t dp = backward.keys.padded_dim;
  if (dims.group() > 1) {
    backward.dk_parts.assign(to_size(dims.batch * dims.q_heads * padded_seq * dp), 0.0F);
    backward.dv_parts.assign(backward.dk_parts.size(), 0.0F);
  }
  pool.parallel_for(dims.batch * dims.q_heads, 1, [&](int64_t begin, int64_t end) {
    BackwardScratch scratch(padded_seq, dp);
    for (int64_t item = begin; item < end; ++item) backward.run(item / dims.q_heads, item % dims.q_heads, scratch);
  });
  if (dims.group() > 1) {
    store_kv_gradient(pool, dims, backward.dk_parts.data(), dp, padded_seq * dp, dk);
    store_kv_gradient(pool, dims, backward.dv_parts.data(), dp, padded_seq * dp, dv);
  }
}

}  // namespace anvil::cpu
