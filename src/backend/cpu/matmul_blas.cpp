// f32 GEMM through OpenBLAS, split into tiles run on the backend's thread pool.
// OpenBLAS itself is kept single-threaded (see CpuBackend's constructor): the pool owns
// every thread, so nothing oversubscribes the cores and nested calls stay serial. The
// tiling depends only on the shape, so results do not depend on the thread count.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "anvil/core/error.h"
#include "cpu/matmul_kernels.h"

namespace anvil::cpu {
namespace {

// Below this many multiply-adds a GEMM runs as one call: the pool would cost more than it saves.
constexpr int64_t kMinParallelMacs = int64_t{1} << 18;
constexpr int64_t kTargetTileRows = 128;
constexpr int64_t kTargetTileCols = 256;
constexpr int64_t kTargetGemvTileCols = 512;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits `extent` into balanced tiles of about `target` (a multiple of `align`); returns the tile size.
int64_t balanced_tile(int64_t extent, int64_t target, int64_t align) {
  const int64_t tiles = std::max<int64_t>(1, ceil_div(extent, target));
  return std::min(extent, ceil_div(ceil_div(extent, tiles), align) * align);
}

blasint to_blas_int(int64_t value) {
  ANVIL_CHECK(value <= INT_MAX, "matmul: dimension ", value, " is too large for the BLAS interface");
  return static_cast<blasint>(value);
}

// C[m0:m1, n0:n1] of batch entry `entry`: sgemv when the tile is one row, else sgemm.
void run_tile(const GemmProblem& p, int64_t entry, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const float* a = static_cast<const float*>(p.a) + entry * p.batch_stride_a + (p.trans_a ? m0 : m0 * p.lda);
  const float* b = static_cast<const float*>(p.b) + entry * p.batch_stride_b + (p.trans_b ? n0 * p.ldb : n0);
  float* c = p.c + entry * p.batch_stride_c + m0 * p.ldc + n0;
  const int64_t rows = m1 - m0;
  const int64_t cols = n1 - n0;
  if (p.beta == 0.0F) {
    // BLAS may compute beta * C even for beta == 0; C may hold NaN garbage.
    for (int64_t row = 0; row < rows; ++row) std::memset(c + row * p.ldc, 0, static_cast<size_t>(cols) * sizeof(float));
  }
  if (rows == 1) {
    // y (cols) = alpha * op(B)^T x + beta * y, x = row m0 of op(A).
    const blasint x_stride = p.trans_a ? to_blas_int(p.lda) : 1;
    if (p.trans_b) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, to_blas_int(cols), to_blas_int(p.k), p.alpha, b, to_blas_int(p.ldb), a,
                  x_stride, p.beta, c, 1);
    } else {
      cblas_sgemv(CblasRowMajor, CblasTrans, to_blas_int(p.k), to_blas_int(cols), p.alpha, b, to_blas_int(p.ldb), a,
                  x_stride, p.beta, c, 1);
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, p.trans_a ? CblasTrans : CblasNoTrans, p.trans_b ? CblasTrans : CblasNoTrans,
              to_blas_int(rows), to_blas_int(cols), to_blas_int(p.k), p.alpha, a, to_blas_int(p.lda), b,
              to_blas_int(p.ldb), p.beta, c, to_blas_int(p.ldc));
}

}  // namespace

void gemm_f32_blas(ThreadPool& pool, const GemmProblem& p) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  if (p.k == 0) {
    gemm_scale_only(p);
    return;
  }
  int64_t tile_rows = p.m;
  int64_t tile_cols = p.n;
  if (p.batch * p.m * p.n * p.k >= kMinParallelMacs) {
    tile_rows = balanced_tile(p.m, kTargetTileRows, 8);
    tile_cols = balanced_tile(p.n, p.m <= 4 ? kTargetGemvTileCols : kTargetTileCols, 16);
  }
  const int64_t row_tiles = ceil_div(p.m, tile_rows);
  const int64_t col_tiles = ceil_div(p.n, tile_cols);
  const int64_t tiles_per_entry = row_tiles * col_tiles;
  pool.parallel_for(p.batch * tiles_per_entry, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t entry = task / tiles_per_entry;
      const int64_t row_tile = (task % tiles_per_entry) / col_tiles;
      const int64_t col_tile = task % col_tiles;
      const int64_t m0 = row_tile * tile_rows;
      const int64_t n0 = col_tile * tile_cols;
      run_tile(p, entry, m0, std::min(p.m, m0 + tile_rows), n0, std::min(p.n, n0 + tile_cols));
    }
  });
}

void gemm_scale_only(const GemmProblem& p) {
  for (int64_t entry = 0; entry < p.batch; ++entry) {
    for (int64_t row = 0; row < p.m; ++row) {
      float* c = p.c + entry * p.batch_stride_c + row * p.ldc;
      for (int64_t col = 0; col < p.n; ++col) c[col] = p.beta == 0.0F ? 0.0F : p.beta * c[col];
    }
  }
}

}  // namespace anvil::cpu
