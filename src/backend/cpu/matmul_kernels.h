#pragma once
// The CPU GEMM kernels behind CpuBackend::matmul. Every kernel computes, for each batch
// entry, C (M, N) f32 = alpha * op(A) @ op(B) + beta * C with row-major operands; they
// differ in the storage type of A and B. beta == 0 never reads C (it may hold garbage).
#include <cstdint>

#include "anvil/core/dtype.h"
#include "anvil/core/thread_pool.h"

namespace anvil::cpu {

struct GemmProblem {
  bool trans_a = false;  // A is stored (K, M) instead of (M, K)
  bool trans_b = false;  // B is stored (N, K) instead of (K, N)
  int64_t batch = 1;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float alpha = 1.0F;
  float beta = 0.0F;
  const void* a = nullptr;  // element type depends on the kernel
  int64_t lda = 0;          // row stride of A as stored, in elements
  int64_t batch_stride_a = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  int64_t batch_stride_b = 0;  // 0: one B shared by every batch entry
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t batch_stride_c = 0;
};

// A and B f32, through OpenBLAS (which runs single-threaded: the work is split into
// tiles over `pool` here, so one pool owns all the threads). M == 1 tiles use sgemv.
void gemm_f32_blas(ThreadPool& pool, const GemmProblem& problem);

// Up to this many rows of A (decode), the small-M kernels stream B instead of packing it.
inline constexpr int64_t kSmallMRows = 16;

// A and B bf16 (raw uint16_t), AVX-512 BF16 (vdpbf16ps): a packed, register-blocked kernel,
// or gemm_small_m_avx512 for M <= kSmallMRows. Needs avx512_bf16.
void gemm_bf16_avx512(ThreadPool& pool, const GemmProblem& problem);

// A and B bf16 or f16 (`dtype`), M <= kSmallMRows, streaming B once. f16 needs only AVX-512F;
// bf16 needs avx512_bf16.
void gemm_small_m_avx512(ThreadPool& pool, const GemmProblem& problem, DType dtype);

// dst = src widened to f32, for src bf16 or f16 (AVX-512; f16 through vcvtph2ps).
void widen_to_f32_avx512(DType dtype, const void* src, float* dst, int64_t count);

// Handles K == 0 (nothing to multiply): C = beta * C, or 0 when beta == 0.
void gemm_scale_only(const GemmProblem& problem);

}  // namespace anvil::cpu
