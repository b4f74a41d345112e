// bf16 GEMM with AVX-512 BF16: vdpbf16ps multiplies pairs of bf16 (k, k+1) and adds both
// products into one f32 lane, so operands are laid out as k-pairs packed in 32-bit words.
// bf16 x bf16 products are exact in f32; accumulation is f32 (inputs are never subnormal
// in practice; the instruction flushes those).
//
// Two kernels:
//  - packed (here): A packed into 12-row panels and B into 32-column panels of k-pairs; a
//    12 x 32 register tile (24 zmm accumulators) runs over cache blocks of k. M > kSmallMRows.
//  - streaming, for small M (decode, M <= kSmallMRows): matmul_small_m_avx512.cpp.
//
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
#include <cstring>
#include <memory>

#include "anvil/core/float_convert.h"
#include "cpu/matmul_kernels.h"

namespace anvil::cpu {
namespace {

constexpr int64_t kMr = 12;             // rows of the register tile
constexpr int64_t kNr = 32;             // columns of the register tile (two zmm)
constexpr int64_t kKcPairs = 128;       // k-pairs per cache block: B slice kKcPairs*kNr*4 bytes = 16 KiB
constexpr int64_t kPanelsPerTaskM = 8;  // a task covers up to 96 rows
constexpr int64_t kPanelsPerTaskN = 8;  // ... and 256 columns
constexpr int64_t kPackPairBlock = 16;  // k-pairs per pass when packing k-contiguous rows

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline __m512bh as_bf16_pairs(__m512i bits) { return (__m512bh)bits; }

// Packs `width` rows of X (row stride ld, k contiguous; rows past `valid` are zero) as
// out[kp][w] = (X[w, 2kp], X[w, 2kp+1]). Blocks of k-pairs keep the written lines in L1.
void pack_k_contiguous(const uint16_t* x, int64_t ld, int64_t valid, int64_t k, int64_t width, uint32_t* out) {
  const int64_t pairs = ceil_div(k, 2);
  const int64_t full_pairs = k / 2;
  for (int64_t kp0 = 0; kp0 < pairs; kp0 += kPackPairBlock) {
    const int64_t kp1 = std::min(pairs, kp0 + kPackPairBlock);
    for (int64_t w = 0; w < width; ++w) {
      if (w >= valid) {
        for (int64_t kp = kp0; kp < kp1; ++kp) out[kp * width + w] = 0;
        continue;
      }
      const uint16_t* row = x + w * ld;
      for (int64_t kp = kp0; kp < std::min(kp1, full_pairs); ++kp) std::memcpy(&out[kp * width + w], row + 2 * kp, 4);
      if (kp1 > full_pairs) out[full_pairs * width + w] = row[k - 1];  // odd k: the last pair's high half is 0
    }
  }
}

// 16 columns of two rows interleaved into k-pairs: out[col] = (row0[col], row1[col]).
inline void interleave_16(const uint16_t* row0, const uint16_t* row1, uint32_t* out) {
  const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row0));
  const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row1));
  const __m256i lo = _mm256_unpacklo_epi16(r0, r1);  // columns 0-3 | 8-11
  const __m256i hi = _mm256_unpackhi_epi16(r0, r1);  // columns 4-7 | 12-15
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

// Packs `width` columns of X (k is the row index, row stride ld; columns past `valid` are
// zero) as out[kp][w] = (X[2kp, w], X[2kp+1, w]).
void pack_k_rows(const uint16_t* x, int64_t ld, int64_t valid, int64_t k, int64_t width, uint32_t* out) {
  const int64_t pairs = ceil_div(k, 2);
  for (int64_t kp = 0; kp < pairs; ++kp) {
    const uint16_t* row0 = x + 2 * kp * ld;
    const uint16_t* row1 = 2 * kp + 1 < k ? row0 + ld : nullptr;
    uint32_t* dst = out + kp * width;
    if (row1 != nullptr && valid == width && width % 16 == 0) {
      for (int64_t w = 0; w < width; w += 16) interleave_16(row0 + w, row1 + w, dst + w);
      continue;
    }
    for (int64_t w = 0; w < width; ++w) {
      const uint32_t lo = w < valid ? row0[w] : 0;
      const uint32_t hi = w < valid && row1 != nullptr ? row1[w] : 0;
      dst[w] = lo | (hi << 16);
    }
  }
}

// Panel of op(A): kMr rows from m0, as [kp][kMr] words.
void pack_a_panel(const GemmProblem& p, const uint16_t* a, int64_t m0, uint32_t* out) {
  const int64_t valid = std::min(kMr, p.m - m0);
  if (p.trans_a) {
    pack_k_rows(a + m0, p.lda, valid, p.k, kMr, out);  // A stored (K, M)
  } else {
    pack_k_contiguous(a + m0 * p.lda, p.lda, valid, p.k, kMr, out);
  }
}

// Panel of op(B): kNr columns from n0, as [kp][kNr] words.
void pack_b_panel(const GemmProblem& p, const uint16_t* b, int64_t n0, uint32_t* out) {
  const int64_t valid = std::min(kNr, p.n - n0);
  if (p.trans_b) {
    pack_k_contiguous(b + n0 * p.ldb, p.ldb, valid, p.k, kNr, out);  // B stored (N, K)
  } else {
    pack_k_rows(b + n0, p.ldb, valid, p.k, kNr, out);
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
void micro_kernel(const uint32_t* a, const uint32_t* b, int64_t pairs, float* c, int64_t ldc, int64_t rows,
                  int64_t cols, float alpha, float beta, bool first_block) {
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (int64_t r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t kp = 0; kp < pairs; ++kp) {
    const __m512bh b0 = as_bf16_pairs(_mm512_loadu_si512(b + kp * kNr));
    const __m512bh b1 = as_bf16_pairs(_mm512_loadu_si512(b + kp * kNr + 16));
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
void packed_entry(ThreadPool& pool, const GemmProblem& p, const uint32_t* a_packed, const uint32_t* b_packed,
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
          const uint32_t* b_block = b_packed + (np * pairs + kp0) * kNr;
          for (int64_t mp = mp_begin; mp < mp_end; ++mp) {
            const uint32_t* a_block = a_packed + (mp * pairs + kp0) * kMr;
            micro_kernel(a_block, b_block, block, c + mp * kMr * p.ldc + np * kNr, p.ldc, std::min(kMr, p.m - mp * kMr),
                         std::min(kNr, p.n - np * kNr), p.alpha, p.beta, kp0 == 0);
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
  const auto b_packed = std::make_unique_for_overwrite<uint32_t[]>(static_cast<size_t>(n_panels * pairs * kNr));
  for (int64_t entry = 0; entry < p.batch; ++entry) {
    const auto* a = static_cast<const uint16_t*>(p.a) + entry * p.batch_stride_a;
    const auto* b = static_cast<const uint16_t*>(p.b) + entry * p.batch_stride_b;
    if (entry == 0 || p.batch_stride_b != 0) {
      pool.parallel_for(n_panels, 4, [&](int64_t begin, int64_t end) {
        for (int64_t np = begin; np < end; ++np) pack_b_panel(p, b, np * kNr, b_packed.get() + np * pairs * kNr);
      });
    }
    pool.parallel_for(m_panels, 4, [&](int64_t begin, int64_t end) {
      for (int64_t mp = begin; mp < end; ++mp) pack_a_panel(p, a, mp * kMr, a_packed.get() + mp * pairs * kMr);
    });
    packed_entry(pool, p, a_packed.get(), b_packed.get(), p.c + entry * p.batch_stride_c);
  }
}

}  // namespace

void gemm_bf16_avx512(ThreadPool& pool, const GemmProblem& p) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    gemm_scale_only(p);
  } else if (p.m <= kSmallMRows) {
    gemm_small_m_avx512(pool, p, DType::BF16);
  } else {
    gemm_packed(pool, p);
  }
}

}  // namespace anvil::cpu
