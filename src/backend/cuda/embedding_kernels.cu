// Embedding gather and its scatter-add backward, without atomics.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.h"
#include "cuda/embedding_kernels.h"
#include "cuda/float_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kTargetBackwardBlocks = 528;  // ~4 blocks of 256 threads per H100 SM

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// grid (N), block (kThreads): row i copies table row ids[i], converting dtype.
__global__ void embedding_kernel(FloatBuffer out, ConstFloatBuffer table, const int32_t* ids, int64_t channels) {
  const int64_t row = blockIdx.x;
  const ConstFloatBuffer source = offset_buffer(table, static_cast<int64_t>(ids[row]) * channels);
  const FloatBuffer target = offset_buffer(out, row * channels);
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) store_float(target, c, load_float(source, c));
}

// grid (vocab blocks, column blocks), block (kThreads). Block (b, k) owns table rows
// [b * rows_per_block, ...) and columns [k * kThreads, ...), one column per thread, so no
// two threads ever update the same element. Each warp scans all ids 32 at a time: a ballot
// marks the ids in the block's rows, and the marked ones are applied lowest i first, so every
// element sums its gradients in ascending i.
__global__ void embedding_backward_kernel(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids,
                                          int64_t count, int64_t channels, int64_t rows_per_block) {
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = first_row + rows_per_block;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  for (int64_t base = 0; base < count; base += kWarpSize) {
    const int64_t i = base + lane;
    const int64_t id = i < count ? ids[i] : -1;
    unsigned hits = __ballot_sync(kFullWarpMask, id >= first_row && id < end_row);
    while (hits != 0) {
      const int hit = __ffs(static_cast<int>(hits)) - 1;
      hits &= hits - 1;
      const int64_t hit_id = __shfl_sync(kFullWarpMask, id, hit);
      if (col < channels) grad_table[hit_id * channels + col] += load_float(grad_out, (base + hit) * channels + col);
    }
  }
}

}  // namespace

void launch_embedding(FloatBuffer out, ConstFloatBuffer table, const int32_t* ids, int64_t count, int64_t channels,
                      cudaStream_t stream) {
  if (count == 0 || channels == 0) return;
  embedding_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(out, table, ids, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

void launch_embedding_backward(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids, int64_t count,
                               int64_t vocab, int64_t channels, cudaStream_t stream) {
  if (count == 0 || channels == 0 || vocab == 0) return;
  const int64_t column_blocks = ceil_div(channels, kThreads);
  const int64_t vocab_blocks = std::clamp<int64_t>(ceil_div(kTargetBackwardBlocks, column_blocks), 1, vocab);
  const int64_t rows_per_block = ceil_div(vocab, vocab_blocks);
  const dim3 grid(static_cast<unsigned>(ceil_div(vocab, rows_per_block)), static_cast<unsigned>(column_blocks));
  embedding_backward_kernel<<<grid, kThreads, 0, stream>>>(grad_table, grad_out, ids, count, channels, rows_per_block);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
