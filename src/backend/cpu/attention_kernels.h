#pragma once
// Internal interface of the CPU attention kernels: the sizes of one call, the Reference
// and Blocked implementations (cpu/attention_reference.cpp, cpu/attention_blocked.cpp),
// and the tile primitives the Blocked one runs on (scalar, and AVX-512 in
// cpu/attention_blocked_avx512.cpp).
#include <cstdint>

#include "anvil/backend/op_params.h"
#include "anvil/core/cpu_features.h"
#include "anvil/core/tensor.h"
#include "anvil/core/thread_pool.h"

namespace anvil::cpu {

// Sizes of one attention call: q (B, T, Hq, D), k/v (B, T, Hkv, D).
struct AttentionDims {
  int64_t batch = 0;     // B
  int64_t seq = 0;       // T
  int64_t q_heads = 0;   // Hq
  int64_t kv_heads = 0;  // Hkv
  int64_t head_dim = 0;  // D
  float scale = 1.0F;    // resolved: never 0
  bool causal = true;

  // Query heads per kv head; query head h reads kv head h / group().
  [[nodiscard]] int64_t group() const { return q_heads / kv_heads; }
  // Row of q/out/dq (viewed as (B * T * Hq, D)) for batch b, position t, query head h.
  [[nodiscard]] int64_t q_row(int64_t b, int64_t t, int64_t h) const { return (b * seq + t) * q_heads + h; }
  // Row of k/v (viewed as (B * T * Hkv, D)) for batch b, position t, kv head h.
  [[nodiscard]] int64_t kv_row(int64_t b, int64_t t, int64_t h) const { return (b * seq + t) * kv_heads + h; }
};

// Reads the sizes from q and k and resolves scale 0 to 1/sqrt(D).
AttentionDims attention_dims(const Tensor& q, const Tensor& k, const AttentionParams& params);

// Reference: one (T, T) score matrix per (batch, query head).
void attention_reference_forward(ThreadPool& pool, const AttentionDims& dims, Tensor& out, Tensor& lse, const Tensor& q,
                                 const Tensor& k, const Tensor& v);
void attention_reference_backward(ThreadPool& pool, const AttentionDims& dims, Tensor& dq, Tensor& dk, Tensor& dv,
                                  const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& lse);

// Blocked (FlashAttention-2 style): tiles of queries x keys with an online softmax.
void attention_blocked_forward(ThreadPool& pool, CpuIsa isa, const AttentionDims& dims, Tensor& out, Tensor& lse,
                               const Tensor& q, const Tensor& k, const Tensor& v);
void attention_blocked_backward(ThreadPool& pool, CpuIsa isa, const AttentionDims& dims, Tensor& dq, Tensor& dk,
                                Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& out, const Tensor& lse);

// Adds the per-query-head partial gradients (B * Hq, T, row_stride) of the query heads
// sharing each kv head, in head order, and stores the sums in dst (B, T, Hkv, D).
void store_kv_gradient(ThreadPool& pool, const AttentionDims& dims, const float* partials, int64_t row_stride,
                       int64_t head_stride, Tensor& dst);

// Tile primitives of the Blocked kernels, all on f32 buffers.
struct AttentionTileKernels {
  // c (rows, cols) = a @ b, or c += a @ b when `accumulate`; a (rows, inner) has element
  // [r, i] at a[r * a_row_stride + i * a_col_stride] (so a transposed view is free);
  // b (inner, cols) has rows ldb apart; c rows ldc apart. cols must be a multiple of 16.
  void (*gemm)(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t a_row_stride, int64_t a_col_stride,
               const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);
  // row[i] = exp(scale * row[i] - shift) for i < valid, 0 for valid <= i < total; returns
  // the sum of the exponentials.
  float (*exp_row)(float* row, int64_t valid, int64_t total, float scale, float shift);
  // max(row[0..n)), n >= 1.
  float (*row_max)(const float* row, int64_t n);
};

// Column counts handed to AttentionTileKernels::gemm are padded to this.
constexpr int64_t kAttentionColumnQuantum = 16;

AttentionTileKernels attention_tile_kernels_scalar();
AttentionTileKernels attention_tile_kernels_avx512();

}  // namespace anvil::cpu
