// Two-stage column sums: partials over fixed row blocks, then the partials in order. The
// partial sums depend only on the shape (and on which path runs, which depends on dtypes
// and alignment), never on scheduling.
#include <algorithm>

#include "cuda/column_sum_kernels.h"
#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kColumnsPerBlock = 32;  // threadIdx.x: one column each, coalesced along a row
constexpr int kRowLanes = 8;          // threadIdx.y: rows lane, lane + 8, ... of the row block
constexpr int64_t kMinRowsPerPartial = 32;
constexpr int64_t kMaxPartials = 256;
constexpr int kFinishLanes = 32;  // partial lanes of the finishing sum (1024 threads a block)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// grid (ceil(cols / 32), num_partials), block (32, 8). Block (x, p) sums rows
// [p * rows_per_partial, ...) of 32 columns: each row lane sums its rows in order, then the
// 8 lane sums are added in lane order through shared memory into partials[p, c].
__global__ void column_partials_kernel(ConstFloatBuffer grad, ConstFloatBuffer factor, int64_t rows, int64_t cols,
                                       int64_t rows_per_partial, float* partials) {
  __shared__ float lane_sums[kRowLanes][kColumnsPerBlock];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumnsPerBlock + threadIdx.x;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * rows_per_partial;
  const int64_t end_row = std::min(rows, first_row + rows_per_partial);
  float sum = 0.0F;
  if (col < cols) {
    for (int64_t row = first_row + threadIdx.y; row < end_row; row += kRowLanes) {
      const int64_t index = row * cols + col;
      const float value = load_float(grad, index);
      sum += factor.data != nullptr ? value * load_float(factor, index) : value;
    }
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || col >= cols) return;
  float total = 0.0F;
  for (int lane = 0; lane < kRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
  partials[static_cast<int64_t>(blockIdx.y) * cols + col] = total;
}

// The same with 16-byte vectors: grad and factor of one dtype T, aligned, cols a whole
// number of vectors. Block (x, p) covers 32 vectors of columns; each thread sums kVecSize<T>
// columns of its rows, in row order, then the 8 lanes are added in lane order.
template <typename T>
__global__ void column_partials_vec_kernel(const T* grad, const T* factor, int64_t rows, int64_t cols,
                                           int64_t rows_per_partial, float* partials) {
  constexpr int kSize = kVecSize<T>;
  __shared__ float lane_sums[kRowLanes][kColumnsPerBlock][kSize];
  const int64_t col_vecs = cols / kSize;
  const int64_t vec = static_cast<int64_t>(blockIdx.x) * kColumnsPerBlock + threadIdx.x;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * rows_per_partial;
  const int64_t end_row = std::min(rows, first_row + rows_per_partial);
  float sum[kSize] = {};
  if (vec < col_vecs) {
    for (int64_t row = first_row + threadIdx.y; row < end_row; row += kRowLanes) {
      float values[kSize];
      load_vec(grad, row * col_vecs + vec, values);
      if (factor != nullptr) {
        float scales[kSize];
        load_vec(factor, row * col_vecs + vec, scales);
#pragma unroll
        for (int k = 0; k < kSize; ++k) values[k] *= scales[k];
      }
#pragma unroll
      for (int k = 0; k < kSize; ++k) sum[k] += values[k];
    }
  }
#pragma unroll
  for (int k = 0; k < kSize; ++k) lane_sums[threadIdx.y][threadIdx.x][k] = sum[k];
  __syncthreads();
  if (threadIdx.y != 0 || vec >= col_vecs) return;
  float* partial = partials + static_cast<int64_t>(blockIdx.y) * cols + vec * kSize;
#pragma unroll
  for (int k = 0; k < kSize; ++k) {
    float total = 0.0F;
    for (int lane = 0; lane < kRowLanes; ++lane) total += lane_sums[lane][threadIdx.x][k];
    partial[k] = total;
  }
}

struct SumTargets {
  FloatBuffer out[kMaxSumArrays];  // data null: skipped
};

// grid (ceil(cols / 32), arrays), block (32, kFinishLanes). For the grid row's array a, at
// partials + a * num_partials * cols: out[c] = [out[c] +] the sum of its partials[p, c] over
// p: lane l adds p = l, l + kFinishLanes, ... in order (loads unrolled, so several are in
// flight), then the lanes are added in lane order. The order depends only on num_partials:
// deterministic.
__global__ void finish_column_sums_kernel(const float* partials, int64_t num_partials, int64_t cols, SumTargets targets,
                                          bool accumulate) {
  __shared__ float lane_sums[kFinishLanes][kColumnsPerBlock];
  const FloatBuffer out = targets.out[blockIdx.y];
  if (out.data == nullptr) return;
  const float* array = partials + static_cast<int64_t>(blockIdx.y) * num_partials * cols;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumnsPerBlock + threadIdx.x;
  float sum = 0.0F;
  if (col < cols) {
#pragma unroll 4
    for (int64_t p = threadIdx.y; p < num_partials; p += kFinishLanes) sum += array[p * cols + col];
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || col >= cols) return;
  float total = 0.0F;
  for (int lane = 0; lane < kFinishLanes; ++lane) total += lane_sums[lane][threadIdx.x];
  if (accumulate) total += load_float(out, col);
  store_float(out, col, total);
}

void launch_finish(const float* partials, int64_t num_partials, int64_t cols, const SumTargets& targets, int arrays,
                   bool accumulate, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(ceil_div(cols, kColumnsPerBlock)), static_cast<unsigned>(arrays));
  finish_column_sums_kernel<<<grid, dim3(kColumnsPerBlock, kFinishLanes), 0, stream>>>(partials, num_partials, cols,
                                                                                       targets, accumulate);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace

int64_t column_sum_rows_per_partial(int64_t rows) { return std::max(kMinRowsPerPartial, ceil_div(rows, kMaxPartials)); }

int64_t column_sum_num_partials(int64_t rows) {
  return std::max<int64_t>(1, ceil_div(rows, column_sum_rows_per_partial(rows)));
}

void launch_column_sums(ConstFloatBuffer grad, ConstFloatBuffer factor, int64_t rows, int64_t cols, float* partials,
                        FloatBuffer out, cudaStream_t stream) {
  if (cols == 0) return;
  const int64_t num_partials = column_sum_num_partials(rows);
  const dim3 block(kColumnsPerBlock, kRowLanes);
  bool launched = false;
  if (vector_ready(grad.dtype, {grad, factor})) {
    dispatch_storage(grad.dtype, [&](auto tag) {
      using T = decltype(tag);
      if (cols % kVecSize<T> != 0) return;
      const dim3 grid(static_cast<unsigned>(ceil_div(cols / kVecSize<T>, kColumnsPerBlock)),
                      static_cast<unsigned>(num_partials));
      column_partials_vec_kernel<T><<<grid, block, 0, stream>>>(static_cast<const T*>(grad.data),
                                                                static_cast<const T*>(factor.data), rows, cols,
                                                                column_sum_rows_per_partial(rows), partials);
      launched = true;
    });
  }
  if (!launched) {
    const dim3 grid(static_cast<unsigned>(ceil_div(cols, kColumnsPerBlock)), static_cast<unsigned>(num_partials));
    column_partials_kernel<<<grid, block, 0, stream>>>(grad, factor, rows, cols, column_sum_rows_per_partial(rows),
                                                       partials);
  }
  ANVIL_CUDA_CHECK_LAUNCH();
  launch_finish_column_sums(partials, num_partials, cols, out, false, stream);
}

void launch_finish_column_sums(const float* partials, int64_t num_partials, int64_t cols, FloatBuffer out,
                               bool accumulate, cudaStream_t stream) {
  if (cols == 0) return;
  launch_finish(partials, num_partials, cols, SumTargets{{out}}, 1, accumulate, stream);
}

void launch_add_column_sums(const float* partials, int64_t num_partials, int64_t cols, std::span<float* const> outs,
                            cudaStream_t stream) {
  ANVIL_CHECK(outs.size() <= kMaxSumArrays, "add_column_sums: ", outs.size(), " arrays, at most ", kMaxSumArrays);
  if (cols == 0 || std::none_of(outs.begin(), outs.end(), [](float* out) { return out != nullptr; })) return;
  SumTargets targets{};
  for (size_t a = 0; a < outs.size(); ++a) targets.out[a] = FloatBuffer{outs[a], DType::F32};
  launch_finish(partials, num_partials, cols, targets, static_cast<int>(outs.size()), true, stream);
}

}  // namespace anvil::cuda
