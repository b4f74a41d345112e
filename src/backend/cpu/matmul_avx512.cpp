// bf16 GEMM with AVX-512 BF16: vdpbf16ps multiplies pairs of bf16 (k, k+1) and adds both
// products into one f32 lane, so operands are laid out as k-pairs packed in 32-bit words.
// bf16 x bf16 products are exact in f32; accumulation is f32 (inputs are never subnormal
// in practice; the instruction flushes those).
//
// Two kernels:
//  - packed: A packed into 12-row panels and B into 32-column panels of k-pairs; a 12 x 32
//    register tile (24 zmm accumulators) runs over cache blocks of k. For M > 4.
//  - streaming, for small M (decode, M <= 4): no packing, B is read once.
//    B stored (N, K): dot products of A rows with B rows (vdpbf16ps along K).
//    B stored (K, N): rows of B widened to f32 and FMA'd into column blocks of C.
// GCC 12's AVX-512 headers seed some intrinsics with a self-initialised "undefined" vector
// (`__m512i __Y = __Y;`), which -Wmaybe-uninitialized flags once inlined: silence it for
// the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <memory>

#include "anvil/core/float_convert.h"
#include "cpu/matmul_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kMr = 12;              // rows of the register tile
constexpr int64_t kNr = 32;              // columns of the register tile (two zmm)
constexpr int64_t kKcPairs = 128;        // k-pairs per cache block: B slice kKcPairs*kNr*4 bytes = 16 KiB
constexpr int64_t kPanelsPerTaskM = 8;   // a task covers up to 96 rows
constexpr int64_t kPanelsPerTaskN = 8;   // ... and 256 columns
constexpr int64_t kMaxStreamingRows = 4;
constexpr int64_t kStreamColsPerTask = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline __m512bh as_bf16_pairs(__m512i bits) { return (__m512bh)bits; }

// Element (row, col) of a row-major stored matrix, read as op(stored) when `trans`.
inline uint16_t element(const uint16_t* base, int64_t ld, bool trans, int64_t row, int64_t col) {
  return trans ? base[col * ld + row] : base[row * ld + col];
}

// The pair (X[row, 2kp], X[row, 2kp+1]) of op(X) (rows x k) as one 32-bit word; zero past the edges.
inline uint32_t pair_at(const uint16_t* base, int64_t ld, bool trans, int64_t rows, int64_t k, int64_t row,
                        int64_t kp) {
  if (row >= rows) return 0;
  const uint32_t lo = element(base, ld, trans, row, 2 * kp);
  const uint32_t hi = 2 * kp + 1 < k ? element(base, ld, trans, row, 2 * kp + 1) : 0;
  return lo | (hi << 16);
}

// A panel (kMr rows from m0) as [kp][kMr] words.
void pack_a_panel(const GemmProblem& p, const uint16_t* a, int64_t m0, uint32_t* out) {
  const int64_t pairs = ceil_div(p.k, 2);
  for (int64_t kp = 0; kp < pairs; ++kp) {
    for (int64_t r = 0; r < kMr; ++r) out[kp * kMr + r] = pair_at(a, p.lda, p.trans_a, p.m, p.k, m0 + r, kp);
  }
}

// 16 columns of two rows of B (K, N) interleaved into k-pairs: [col][2].
inline void interleave_16(const uint16_t* row0, const uint16_t* row1, uint16_t* out) {
  const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row0));
  const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row1));
  const __m256i lo = _mm256_unpacklo_epi16(r0, r1);  // columns 0-3 | 8-11
  const __m256i hi = _mm256_unpackhi_epi16(r0, r1);  // columns 4-7 | 12-15
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

// A panel of B (kNr columns from n0) as [kp][kNr][2] bf16.
void pack_b_panel(const GemmProblem& p, const uint16_t* b, int64_t n0, uint16_t* out) {
  const int64_t pairs = ceil_div(p.k, 2);
  const bool fast = !p.trans_b && n0 + kNr <= p.n;
  for (int64_t kp = 0; kp < pairs; ++kp) {
    uint16_t* dst = out + kp * kNr * 2;
    if (fast && 2 * kp + 1 < p.k) {
      const uint16_t* row0 = b + 2 * kp * p.ldb + n0;
      interleave_16(row0, row0 + p.ldb, dst);
      interleave_16(row0 + 16, row0 + p.ldb + 16, dst + 32);
      continue;
    }
    auto* words = reinterpret_cast<uint32_t*>(dst);
    // op(B)^T is (N, K): the pair for column n is pair_at of row n of op(B)^T.
    for (int64_t j = 0; j < kNr; ++j) words[j] = pair_at(b, p.ldb, !p.trans_b, p.n, p.k, n0 + j, kp);
  }
}

// Writes the register tile: C = alpha * acc + beta * C on the first k block, C += alpha * acc after.
inline void store_tile(__m512 (&acc)[kMr][2], float* c, int64_t ldc, int64_t rows, int64_t cols, float alpha,
                       float beta, bool first_block) {
  const auto mask0 = static_cast<__mmask16>(cols >= 16 ? 0xFFFFU : (1U << cols) - 1U);
  const auto mask1 = static_cast<__mmask16>(cols >= 32 ? 0xFFFFU : cols > 16 ? (1U << (cols - 16)) - 1U : 0U);
  const __mmask16 masks[2] = {mask0, mask1};
  const __m512 alpha_v = _mm512_set1_ps(alpha);
  const __m512 beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 12
  for (int64_t r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    for (int64_t half = 0; half < 2; ++half) {
      float* dst = c + r * ldc + half * 16;
      __m512 value = _mm512_mul_ps(acc[r][half], alpha_v);
      if (!first_block) {
        value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(masks[half], dst));
      } else if (beta != 0.0F) {
        value = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(masks[half], dst), value);
      }
      _mm512_mask_storeu_ps(dst, masks[half], value);
    }
  }
}

// One kMr x kNr tile of C over `pairs` k-pairs of packed A and B.
void micro_kernel(const uint32_t* a, const uint16_t* b, int64_t pairs, float* c, int64_t ldc, int64_t rows,
                  int64_t cols, float alpha, float beta, bool first_block) {
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (int64_t r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < pairs; ++kp) {
    const __m512bh b0 = as_bf16_pairs(_mm512_loadu_si512(b + kp * kNr * 2));
    const __m512bh b1 = as_bf16_pairs(_mm512_loadu_si512(b + kp * kNr * 2 + 32));
#pragma GCC unroll 12
    for (int64_t r = 0; r < kMr; ++r) {
      const __m512bh a_pair = as_bf16_pairs(_mm512_set1_epi32(static_cast<int>(a[kp * kMr + r])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a_pair, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a_pair, b1);
    }
  }
  store_tile(acc, c, ldc, rows, cols, alpha, beta, first_block);
}

// The packed kernel for one batch entry whose A and B are already packed.
void packed_entry(ThreadPool& pool, const GemmProblem& p, const uint32_t* a_packed, const uint16_t* b_packed,
                  float* c) {
  const int64_t pairs = ceil_div(p.k, 2);
  const int64_t m_panels = ceil_div(p.m, kMr);
  const int64_t n_panels = ceil_div(p.n, kNr);
  const int64_t m_tasks = ceil_div(m_panels, kPanelsPerTaskM);
  const int64_t n_tasks = ceil_div(n_panels, kPanelsPerTaskN);
  pool.parallel_for(m_tasks * n_tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t mp_begin = (task / n_tasks) * kPanelsPerTaskM;
      const int64_t np_begin = (task % n_tasks) * kPanelsPerTaskN;
      const int64_t mp_end = std::min(m_panels, mp_begin + kPanelsPerTaskM);
      const int64_t np_end = std::min(n_panels, np_begin + kPanelsPerTaskN);
      for (int64_t kp0 = 0; kp0 < pairs; kp0 += kKcPairs) {
        const int64_t block = std::min(kKcPairs, pairs - kp0);
        for (int64_t np = np_begin; np < np_end; ++np) {
          const uint16_t* b_block = b_packed + (np * pairs + kp0) * kNr * 2;
          for (int64_t mp = mp_begin; mp < mp_end; ++mp) {
            const uint32_t* a_block = a_packed + (mp * pairs + kp0) * kMr;
            micro_kernel(a_block, b_block, block, c + mp * kMr * p.ldc + np * kNr, p.ldc,
                         std::min(kMr, p.m - mp * kMr), std::min(kNr, p.n - np * kNr), p.alpha, p.beta, kp0 == 0);
          }
        }
      }
    }
  });
}

void gemm_packed(ThreadPool& pool, const GemmProblem& p) {
  const int64_t pairs = ceil_div(p.k, 2);
  const int64_t m_panels = ceil_div(p.m, kMr);
  const int64_t n_panels = ceil_div(p.n, kNr);
  const auto a_packed = std::make_unique_for_overwrite<uint32_t[]>(static_cast<size_t>(m_panels * pairs * kMr));
  const auto b_packed = std::make_unique_for_overwrite<uint16_t[]>(static_cast<size_t>(n_panels * pairs * kNr * 2));
  for (int64_t entry = 0; entry < p.batch; ++entry) {
    const auto* a = static_cast<const uint16_t*>(p.a) + entry * p.batch_stride_a;
    const auto* b = static_cast<const uint16_t*>(p.b) + entry * p.batch_stride_b;
    if (entry == 0 || p.batch_stride_b != 0) {
      pool.parallel_for(n_panels, 4, [&](int64_t begin, int64_t end) {
        for (int64_t np = begin; np < end; ++np) pack_b_panel(p, b, np * kNr, b_packed.get() + np * pairs * kNr * 2);
      });
    }
    pool.parallel_for(m_panels, 4, [&](int64_t begin, int64_t end) {
      for (int64_t mp = begin; mp < end; ++mp) pack_a_panel(p, a, mp * kMr, a_packed.get() + mp * pairs * kMr);
    });
    packed_entry(pool, p, a_packed.get(), b_packed.get(), p.c + entry * p.batch_stride_c);
  }
}

// C[r, n] = alpha * dot + beta * C[r, n] (beta == 0 does not read C).
inline void store_scalar(float* c, float dot, float alpha, float beta) {
  *c = beta == 0.0F ? alpha * dot : alpha * dot + beta * *c;
}

// kRows x kCols outputs at column n of C: dot products along K of A rows (contiguous bf16,
// row stride k) with rows n.. of B stored (N, K).
template <int kRows, int kCols>
void dot_block(const uint16_t* a_rows, const GemmProblem& p, const uint16_t* b, int64_t n, float* c) {
  const int64_t k = p.k;
  const int64_t ldb = p.ldb;
  __m512 acc[kRows][kCols];
#pragma GCC unroll 16
  for (int i = 0; i < kRows * kCols; ++i) acc[i / kCols][i % kCols] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; kk += 32) {
    const int64_t left = k - kk;
    const auto mask = static_cast<__mmask32>(left >= 32 ? 0xFFFFFFFFU : (1U << left) - 1U);
    __m512bh b_chunk[kCols];
#pragma GCC unroll 4
    for (int j = 0; j < kCols; ++j) b_chunk[j] = as_bf16_pairs(_mm512_maskz_loadu_epi16(mask, b + (n + j) * ldb + kk));
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512bh a_chunk = as_bf16_pairs(_mm512_maskz_loadu_epi16(mask, a_rows + r * k + kk));
#pragma GCC unroll 4
      for (int j = 0; j < kCols; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], a_chunk, b_chunk[j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < kRows * kCols; ++i) {
    const int r = i / kCols;
    const int j = i % kCols;
    store_scalar(c + r * p.ldc + n + j, _mm512_reduce_add_ps(acc[r][j]), p.alpha, p.beta);
  }
}

template <int kRows>
void dot_columns(const uint16_t* a_rows, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t n1, float* c) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) dot_block<kRows, 4>(a_rows, p, b, n, c);
  for (; n < n1; ++n) dot_block<kRows, 1>(a_rows, p, b, n, c);
}

// 16 bf16 at `src` (masked) widened to f32.
inline __m512 load_bf16_as_f32(const uint16_t* src, __mmask16 mask) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, src);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// Columns [n0, n0 + 64) of C for kRows rows: C = alpha * A (f32, kRows x K) @ B (K, N bf16)
// + beta * C, streaming down the rows of B.
template <int kRows>
void axpy_block(const float* a_rows, const GemmProblem& p, const uint16_t* b, int64_t n0, float* c) {
  const int64_t k = p.k;
  const int64_t ldb = p.ldb;
  __mmask16 masks[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t left = p.n - n0 - 16 * j;
    masks[j] = static_cast<__mmask16>(left >= 16 ? 0xFFFFU : left > 0 ? (1U << left) - 1U : 0U);
  }
  __m512 acc[kRows][4];
#pragma GCC unroll 16
  for (int i = 0; i < kRows * 4; ++i) acc[i / 4][i % 4] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 b_row[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) b_row[j] = load_bf16_as_f32(b + kk * ldb + n0 + 16 * j, masks[j]);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512 a_value = _mm512_set1_ps(a_rows[r * k + kk]);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(a_value, b_row[j], acc[r][j]);
    }
  }
  const __m512 alpha_v = _mm512_set1_ps(p.alpha);
  const __m512 beta_v = _mm512_set1_ps(p.beta);
#pragma GCC unroll 16
  for (int i = 0; i < kRows * 4; ++i) {
    const int r = i / 4;
    const int j = i % 4;
    float* dst = c + r * p.ldc + n0 + 16 * j;
    __m512 value = _mm512_mul_ps(acc[r][j], alpha_v);
    if (p.beta != 0.0F) value = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(masks[j], dst), value);
    _mm512_mask_storeu_ps(dst, masks[j], value);
  }
}

// Runs `Kernel<rows>` for the small row counts 1..4.
template <template <int> class Kernel, typename... Args>
void with_rows(int64_t rows, Args&&... args) {
  switch (rows) {
    case 1:
      Kernel<1>::run(args...);
      break;
    case 2:
      Kernel<2>::run(args...);
      break;
    case 3:
      Kernel<3>::run(args...);
      break;
    default:
      Kernel<4>::run(args...);
      break;
  }
}

template <int kRows>
struct DotColumns {
  static void run(const uint16_t* a, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t n1, float* c) {
    dot_columns<kRows>(a, p, b, n0, n1, c);
  }
};

template <int kRows>
struct AxpyColumns {
  static void run(const float* a, const GemmProblem& p, const uint16_t* b, int64_t n0, int64_t n1, float* c) {
    for (int64_t n = n0; n < n1; n += 64) axpy_block<kRows>(a, p, b, n, c);
  }
};

// Small M: op(A) rows gathered into contiguous rows (bf16 for the dot kernel, f32 for the
// axpy kernel), then tasks over (batch entry, column chunk).
void gemm_streaming(ThreadPool& pool, const GemmProblem& p) {
  const int64_t row_elems = p.m * p.k;
  const auto a_bf16 = std::make_unique_for_overwrite<uint16_t[]>(static_cast<size_t>(p.batch * row_elems));
  const auto a_f32 = std::make_unique_for_overwrite<float[]>(p.trans_b ? 0 : static_cast<size_t>(p.batch * row_elems));
  for (int64_t entry = 0; entry < p.batch; ++entry) {
    const auto* a = static_cast<const uint16_t*>(p.a) + entry * p.batch_stride_a;
    for (int64_t row = 0; row < p.m; ++row) {
      for (int64_t kk = 0; kk < p.k; ++kk) {
        const uint16_t value = element(a, p.lda, p.trans_a, row, kk);
        const int64_t index = entry * row_elems + row * p.k + kk;
        a_bf16[static_cast<size_t>(index)] = value;
        if (!p.trans_b) a_f32[static_cast<size_t>(index)] = bf16_to_f32(value);
      }
    }
  }
  const int64_t chunks = ceil_div(p.n, kStreamColsPerTask);
  pool.parallel_for(p.batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t entry = task / chunks;
      const int64_t n0 = (task % chunks) * kStreamColsPerTask;
      const int64_t n1 = std::min(p.n, n0 + kStreamColsPerTask);
      const auto* b = static_cast<const uint16_t*>(p.b) + entry * p.batch_stride_b;
      float* c = p.c + entry * p.batch_stride_c;
      if (p.trans_b) {
        with_rows<DotColumns>(p.m, a_bf16.get() + entry * row_elems, p, b, n0, n1, c);
      } else {
        with_rows<AxpyColumns>(p.m, a_f32.get() + entry * row_elems, p, b, n0, n1, c);
      }
    }
  });
}

}  // namespace

void gemm_bf16_avx512(ThreadPool& pool, const GemmProblem& p) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    gemm_scale_only(p);
  } else if (p.m <= kMaxStreamingRows) {
    gemm_streaming(pool, p);
  } else {
    gemm_packed(pool, p);
  }
}

}  // namespace anvil::cpu
