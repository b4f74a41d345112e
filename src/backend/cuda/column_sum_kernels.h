#pragma once
// Deterministic sums over the rows of a (rows, cols) matrix, for gradients of broadcast
// parameters (add/mul's b, the norms' weight and bias). Two stages, no float atomics:
// fixed blocks of rows are summed into partials (num_partials, cols) in f32, then each
// column's partials are added in partial order. The result depends only on the shape.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

#include "cuda/float_buffer.h"

namespace anvil::cuda {

// Rows summed into one partial by launch_column_sums for a matrix of `rows` rows.
int64_t column_sum_rows_per_partial(int64_t rows);
// Number of partials launch_column_sums needs (the size of its scratch is that times cols).
int64_t column_sum_num_partials(int64_t rows);

// out (cols) = sum over rows r of grad[r, c] (* factor[r, c] when factor.data is non-null).
// `partials` is scratch of column_sum_num_partials(rows) * cols floats. Overwrites out.
void launch_column_sums(ConstFloatBuffer grad, ConstFloatBuffer factor, int64_t rows, int64_t cols, float* partials,
                        FloatBuffer out, cudaStream_t stream);

// out (cols) = [out +] sum over p in order of partials[p, c], rounded once to out's dtype.
void launch_finish_column_sums(const float* partials, int64_t num_partials, int64_t cols, FloatBuffer out,
                               bool accumulate, cudaStream_t stream);

// The most partial arrays launch_add_column_sums finishes in one launch.
constexpr int kMaxSumArrays = 3;
// For every a with outs[a] non-null: outs[a] (cols) f32 += the column sums of partial array a,
// (num_partials, cols) at partials + a * num_partials * cols, added in a fixed order. One
// launch for all of them (the norms' parameter gradients). outs.size() <= kMaxSumArrays.
void launch_add_column_sums(const float* partials, int64_t num_partials, int64_t cols, std::span<float* const> outs,
                            cudaStream_t stream);

}  // namespace anvil::cuda
