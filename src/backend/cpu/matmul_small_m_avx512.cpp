// Small-M GEMM (decode: M = 1 .. kSmallMRows) for bf16 and f16 operands with AVX-512.
// Packing B would cost as much as the product, so B is streamed as stored:
//  - B stored (N, K): dot products of A rows with B rows along K; bf16 uses vdpbf16ps
//    (32 k per instruction), f16 widens 16 k at a time (vcvtph2ps) and FMAs in f32.
//  - B stored (K, N): rows of B widened to f32 and FMA'd into f32 column accumulators.
// Accumulation is f32 in every case.
// GCC 12's AVX-512 headers seed some intrinsics with a self-initialised "undefined" vector
// (`__m512i __Y = __Y;`), which -Wmaybe-uninitialized flags once inlined: silence it for
// the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <memory>

#include "anvil/core/float_convert.h"
#include "cpu/matmul_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kRowGroup = 4;            // A rows per dot-product pass over B
constexpr int64_t kDotColsPerTask = 32;     // B rows (N, K) per task of the dot kernel
constexpr int64_t kAxpyColsPerTask = 1024;  // columns of C per task of the axpy kernel
constexpr int64_t kAxpyStep = 4;            // rows of B per accumulator update

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline __m512bh as_bf16_pairs(__m512i bits) { return (__m512bh)bits; }

// 16 halves (bf16 or f16) at `src` (masked; zero elsewhere) widened to f32.
template <bool kF16>
inline __m512 load_as_f32(const uint16_t* src, __mmask16 mask) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, src);
  if constexpr (kF16) {
    return _mm512_cvtph_ps(bits);
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  }
}

template <bool kF16>
inline float half_to_f32(uint16_t bits) {
  if constexpr (kF16) {
    return f16_to_f32(bits);
  } else {
    return bf16_to_f32(bits);
  }
}

// C[r, n] = alpha * dot + beta * C[r, n] (beta == 0 does not read C).
inline void store_scalar(float* c, float dot, float alpha, float beta) {
  *c = beta == 0.0F ? alpha * dot : alpha * dot + beta * *c;
}

// acc[r][j] += A row r . B row j over the 32 k at kk (masked), in f32.
template <bool kF16, int kRows, int kCols>
inline void dot_step(__m512 (&acc)[kRows][kCols], const uint16_t* a_rows, int64_t k, const uint16_t* b_rows,
                     int64_t ldb, int64_t kk) {
  const int64_t left = k - kk;
  if constexpr (kF16) {
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const int64_t half_left = left - 16 * half;
      if (half_left <= 0) break;
      const auto mask = static_cast<__mmask16>(half_left >= 16 ? 0xFFFFU : (1U << half_left) - 1U);
      __m512 b_chunk[kCols];
#pragma GCC unroll 4
      for (int j = 0; j < kCols; ++j) b_chunk[j] = load_as_f32<true>(b_rows + j * ldb + kk + 16 * half, mask);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const __m512 a_chunk = load_as_f32<true>(a_rows + r * k + kk + 16 * half, mask);
#pragma GCC unroll 4
        for (int j = 0; j < kCols; ++j) acc[r][j] = _mm512_fmadd_ps(a_chunk, b_chunk[j], acc[r][j]);
      }
    }
  } else {
    const auto mask = static_cast<__mmask32>(left >= 32 ? 0xFFFFFFFFU : (1U << left) - 1U);
    __m512bh b_chunk[kCols];
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) b_chunk[j] = as_bf16_pairs(_mm512_maskz_loadu_epi16(mask, b_rows + j * ldb + kk));
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512bh a_chunk = as_bf16_pairs(_mm512_maskz_loadu_epi16(mask, a_rows + r * k + kk));
#pragma GCC unroll 4
      for (int j = 0; j < kCols; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], a_chunk, b_chunk[j]);
    }
  }
}

// kRows x kCols outputs at column n of C: A rows (contiguous, row stride k) . B rows n...
template <bool kF16, int kRows, int kCols>
void dot_block(const uint16_t* a_rows, const GemmProblem& p, const uint16_t* b, int64_t n, float* c) {
  __m512 acc[kRows][kCols];
#pragma GCC unroll 16
  for (int i = 0; i < kRows * kCols; ++i) acc[i / kCols][i % kCols] = _mm512_setzero_ps();
  const uint16_t* b_rows = b + n * p.ldb;
  for (int64_t kk = 0; kk < p.k; kk += 32) dot_step<kF16>(acc, a_rows, p.k, b_rows, p.ldb, kk);
#pragma GCC unroll 16
  for (int i = 0; i < kRows * kCols; ++i) {
    const int r = i / kCols;
    const int j = i % kCols;
    store_scalar(c + r * p.ldc + n + j, _mm512_reduce_add_ps(acc[r][j]), p.alpha, p.beta);
  }
}

template <bool kF16, int kRows>
void dot_columns(const uint16_t* a_rows, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t n1, float* c) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) dot_block<kF16, kRows, 4>(a_rows, p, b, n, c);
  for (; n < n1; ++n) dot_block<kF16, kRows, 1>(a_rows, p, b, n, c);
}

// C[0:rows, n0:n1] from A rows (contiguous) and B stored (N, K), up to kRowGroup A rows per
// pass over the task's B rows (which stay in cache between passes).
template <bool kF16>
void dot_task(const uint16_t* a_rows, int64_t rows, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t n1,
              float* c) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowGroup) {
    const uint16_t* a = a_rows + r0 * p.k;
    float* c_rows = c + r0 * p.ldc;
    switch (std::min(kRowGroup, rows - r0)) {
      case 1:
        dot_columns<kF16, 1>(a, p, b, n0, n1, c_rows);
        break;
      case 2:
        dot_columns<kF16, 2>(a, p, b, n0, n1, c_rows);
        break;
      case 3:
        dot_columns<kF16, 3>(a, p, b, n0, n1, c_rows);
        break;
      default:
        dot_columns<kF16, 4>(a, p, b, n0, n1, c_rows);
        break;
    }
  }
}

// C[r, n0 + 16v ...] = alpha * acc + beta * C for one vector of accumulators.
inline void store_vector(__m512 acc, float* dst, __mmask16 mask, float alpha, float beta) {
  __m512 value = _mm512_mul_ps(acc, _mm512_set1_ps(alpha));
  if (beta != 0.0F) value = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, dst), value);
  _mm512_mask_storeu_ps(dst, mask, value);
}

// C[0:rows, n0:n0+count] = alpha * A (rows x K, f32) @ B[:, n0:n0+count] + beta * C, B stored
// (K, N). kAxpyStep rows of B at a time are widened and FMA'd into f32 accumulators for every
// A row (rows x count floats, in L1), so each accumulator is loaded and stored once per step.
// Long row segments keep the hardware prefetchers streaming.
template <bool kF16>
void axpy_task(const float* a_rows, int64_t rows, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t count,
               float* c) {
  constexpr int64_t kVectors = kAxpyColsPerTask / 16;
  alignas(64) float acc[kSmallMRows][kAxpyColsPerTask];
  const int64_t vectors = ceil_div(count, 16);
  __mmask16 masks[kVectors];
  for (int64_t v = 0; v < vectors; ++v) {
    const int64_t left = count - 16 * v;
    masks[v] = static_cast<__mmask16>(left >= 16 ? 0xFFFFU : (1U << left) - 1U);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < vectors; ++v) _mm512_store_ps(acc[r] + 16 * v, _mm512_setzero_ps());
  }
  for (int64_t kk = 0; kk < p.k; kk += kAxpyStep) {
    const int64_t steps = std::min(kAxpyStep, p.k - kk);
    const uint16_t* b_row = b + kk * p.ldb + n0;
    for (int64_t v = 0; v < vectors; ++v) {
      __m512 b_values[kAxpyStep];
#pragma GCC unroll 4
      for (int64_t s = 0; s < kAxpyStep; ++s) {
        b_values[s] = s < steps ? load_as_f32<kF16>(b_row + s * p.ldb + 16 * v, masks[v]) : _mm512_setzero_ps();
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float* a = a_rows + r * p.k + kk;
        float* slot = acc[r] + 16 * v;
        __m512 sum = _mm512_load_ps(slot);
#pragma GCC unroll 4
        for (int64_t s = 0; s < kAxpyStep; ++s) {
          if (s < steps) sum = _mm512_fmadd_ps(_mm512_set1_ps(a[s]), b_values[s], sum);
        }
        _mm512_store_ps(slot, sum);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < vectors; ++v) {
      store_vector(_mm512_load_ps(acc[r] + 16 * v), c + r * p.ldc + n0 + 16 * v, masks[v], p.alpha, p.beta);
    }
  }
}

// Element (row, col) of op(stored) for a row-major stored matrix.
inline uint16_t element(const uint16_t* base, int64_t ld, bool trans, int64_t row, int64_t col) {
  return trans ? base[col * ld + row] : base[row * ld + col];
}

// op(A) rows gathered where the kernel needs them contiguous: raw halves for the dot kernel
// (only when A is transposed: untransposed rows are contiguous already), f32 for axpy.
struct GatheredA {
  std::unique_ptr<uint16_t[]> halves;
  std::unique_ptr<float[]> wide;
};

template <bool kF16>
GatheredA gather_a(const GemmProblem& p) {
  const int64_t row_elems = p.m * p.k;
  const bool gather_halves = p.trans_b && p.trans_a;
  GatheredA gathered;
  if (p.trans_b && !gather_halves) return gathered;
  const auto total = static_cast<size_t>(p.batch * row_elems);
  if (gather_halves) {
    gathered.halves = std::make_unique_for_overwrite<uint16_t[]>(total);
  } else {
    gathered.wide = std::make_unique_for_overwrite<float[]>(total);
  }
  for (int64_t entry = 0; entry < p.batch; ++entry) {
    const auto* a = static_cast<const uint16_t*>(p.a) + entry * p.batch_stride_a;
    for (int64_t row = 0; row < p.m; ++row) {
      for (int64_t kk = 0; kk < p.k; ++kk) {
        const uint16_t value = element(a, p.lda, p.trans_a, row, kk);
        const auto index = static_cast<size_t>(entry * row_elems + row * p.k + kk);
        if (gather_halves) {
          gathered.halves[index] = value;
        } else {
          gathered.wide[index] = half_to_f32<kF16>(value);
        }
      }
    }
  }
  return gathered;
}

// Tasks over (batch entry, column chunk).
template <bool kF16>
void gemm_small_m(ThreadPool& pool, const GemmProblem& p) {
  const GatheredA gathered = gather_a<kF16>(p);
  const int64_t row_elems = p.m * p.k;
  const int64_t cols_per_task = p.trans_b ? kDotColsPerTask : kAxpyColsPerTask;
  const int64_t chunks = ceil_div(p.n, cols_per_task);
  pool.parallel_for(p.batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t entry = task / chunks;
      const int64_t n0 = (task % chunks) * cols_per_task;
      const int64_t n1 = std::min(p.n, n0 + cols_per_task);
      const auto* b = static_cast<const uint16_t*>(p.b) + entry * p.batch_stride_b;
      float* c = p.c + entry * p.batch_stride_c;
      if (!p.trans_b) {
        axpy_task<kF16>(gathered.wide.get() + entry * row_elems, p.m, p, b, n0, n1 - n0, c);
      } else if (gathered.halves) {
        dot_task<kF16>(gathered.halves.get() + entry * row_elems, p.m, p, b, n0, n1, c);
      } else {
        dot_task<kF16>(static_cast<const uint16_t*>(p.a) + entry * p.batch_stride_a, p.m, p, b, n0, n1, c);
      }
    }
  });
}

}  // namespace

void gemm_small_m_avx512(ThreadPool& pool, const GemmProblem& p, DType dtype) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    gemm_scale_only(p);
  } else if (dtype == DType::F16) {
    gemm_small_m<true>(pool, p);
  } else {
    gemm_small_m<false>(pool, p);
  }
}

void widen_to_f32_avx512(DType dtype, const void* src, float* dst, int64_t count) {
  const auto* halves = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < count; i += 16) {
    const int64_t left = count - i;
    const auto mask = static_cast<__mmask16>(left >= 16 ? 0xFFFFU : (1U << left) - 1U);
    const __m512 values =
        dtype == DType::F16 ? load_as_f32<true>(halves + i, mask) : load_as_f32<false>(halves + i, mask);
    _mm512_mask_storeu_ps(dst + i, mask, values);
  }
}

}  // namespace anvil::cpu
