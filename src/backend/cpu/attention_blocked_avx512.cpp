// AVX-512 tile primitives of the Blocked attention kernels (see attention_blocked.cpp).
// This file is built with AVX-512 flags and only called when the CPU has AVX-512, so it
// uses no inline library templates that another translation unit could share.
// GCC 12 warns about _mm512_undefined_ps() inside its own intrinsics (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_kernels.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kLanes = 16;

// c (kRows, 16 * kVecs) (+)= a (kRows, inner) @ b (inner, 16 * kVecs): the register-blocked
// micro-kernel; kRows * kVecs accumulators stay in zmm registers over the inner loop.
template <int kRows, int kVecs>
void gemm_block(int64_t inner, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b, int64_t ldb,
                float* c, int64_t ldc, bool accumulate) {
  __m512 sum[kRows][kVecs];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      sum[r][v] = accumulate ? _mm512_loadu_ps(c + r * ldc + v * kLanes) : _mm512_setzero_ps();
    }
  }
  for (int64_t i = 0; i < inner; ++i) {
    __m512 b_vec[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) b_vec[v] = _mm512_loadu_ps(b + i * ldb + v * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512 a_value = _mm512_set1_ps(a[r * a_row_stride + i * a_col_stride]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) sum[r][v] = _mm512_fmadd_ps(a_value, b_vec[v], sum[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) _mm512_storeu_ps(c + r * ldc + v * kLanes, sum[r][v]);
  }
}

template <int kRows>
void gemm_rows(int64_t vecs, int64_t inner, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
               int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  switch (vecs) {
    case 1:
      gemm_block<kRows, 1>(inner, a, a_row_stride, a_col_stride, b, ldb, c, ldc, accumulate);
      break;
    case 2:
      gemm_block<kRows, 2>(inner, a, a_row_stride, a_col_stride, b, ldb, c, ldc, accumulate);
      break;
    case 3:
      gemm_block<kRows, 3>(inner, a, a_row_stride, a_col_stride, b, ldb, c, ldc, accumulate);
      break;
    default:
      gemm_block<kRows, 4>(inner, a, a_row_stride, a_col_stride, b, ldb, c, ldc, accumulate);
      break;
  }
}

// Tiles c into blocks of up to 4 rows x 64 columns.
void gemm_avx512(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t a_row_stride, int64_t a_col_stride,
                 const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t kBlockRows = 4;
  constexpr int64_t kBlockVecs = 4;
  for (int64_t col = 0; col < cols; col += kBlockVecs * kLanes) {
    const int64_t left = (cols - col) / kLanes;
    const int64_t vecs = left < kBlockVecs ? left : kBlockVecs;
    for (int64_t r = 0; r < rows; r += kBlockRows) {
      const float* a_block = a + r * a_row_stride;
      float* c_block = c + r * ldc + col;
      switch (rows - r < kBlockRows ? rows - r : kBlockRows) {
        case 1:
          gemm_rows<1>(vecs, inner, a_block, a_row_stride, a_col_stride, b + col, ldb, c_block, ldc, accumulate);
          break;
        case 2:
          gemm_rows<2>(vecs, inner, a_block, a_row_stride, a_col_stride, b + col, ldb, c_block, ldc, accumulate);
          break;
        case 3:
          gemm_rows<3>(vecs, inner, a_block, a_row_stride, a_col_stride, b + col, ldb, c_block, ldc, accumulate);
          break;
        default:
          gemm_rows<4>(vecs, inner, a_block, a_row_stride, a_col_stride, b + col, ldb, c_block, ldc, accumulate);
          break;
      }
    }
  }
}

// exp(x) to about 1 ulp: x = n ln2 + r with |r| <= ln2 / 2, a degree-6 polynomial for
// exp(r) (Cephes expf), then scaling by 2^n. Inputs below -104 give 0 (or a subnormal).
__m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0F)), _mm512_set1_ps(88.7F));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341F)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375F), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4F), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4F);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3F));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3F));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2F));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1F));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1F));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0F)));
  return _mm512_scalef_ps(p, n);
}

// Lanes [0, n) of a 16-lane mask, n clamped to [0, 16].
__mmask16 first_lanes(int64_t n) {
  if (n <= 0) return 0;
  if (n >= kLanes) return 0xFFFF;
  return static_cast<__mmask16>((1U << n) - 1U);
}

float exp_row_avx512(float* row, int64_t valid, int64_t total, float scale, float shift) {
  const __m512 scale_vec = _mm512_set1_ps(scale);
  const __m512 shift_vec = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < total; i += kLanes) {
    const __mmask16 in_row = first_lanes(total - i);
    const __m512 x = _mm512_maskz_loadu_ps(in_row, row + i);
    const __m512 y = _mm512_maskz_mov_ps(first_lanes(valid - i), exp_ps(_mm512_fmsub_ps(x, scale_vec, shift_vec)));
    _mm512_mask_storeu_ps(row + i, in_row, y);
    sum = _mm512_add_ps(sum, y);
  }
  return _mm512_reduce_add_ps(sum);
}

float row_max_avx512(const float* row, int64_t n) {
  __m512 best = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i = 0; i < n; i += kLanes) {
    best = _mm512_mask_max_ps(best, first_lanes(n - i), best, _mm512_maskz_loadu_ps(first_lanes(n - i), row + i));
  }
  return _mm512_reduce_max_ps(best);
}

}  // namespace

AttentionTileKernels attention_tile_kernels_avx512() { return {gemm_avx512, exp_row_avx512, row_max_avx512}; }

}  // namespace anvil::cpu
