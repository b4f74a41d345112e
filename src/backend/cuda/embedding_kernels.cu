// Embedding gather and its scatter-add backward, without atomics.
#include <algorithm>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.h"
#include "cuda/embedding_kernels.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

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

// Same dtype, 16-byte aligned, C a whole number of vectors: a straight 16-byte copy.
__global__ void embedding_vec_kernel(uint4* out, const uint4* table, const int32_t* ids, int64_t row_vecs) {
  const int64_t row = blockIdx.x;
  const uint4* source = table + static_cast<int64_t>(ids[row]) * row_vecs;
  uint4* target = out + row * row_vecs;
  for (int64_t v = threadIdx.x; v < row_vecs; v += blockDim.x) target[v] = source[v];
}

// grid (vocab blocks, column blocks), block (kThreads). Block (b, k) owns table rows
// [b * rows_per_block, ...) and columns [k * kThreads, ...), one column per thread, so no
// two threads ever update the same element. Each warp scans all ids 32 at a time: a ballot
// marks the ids in the block's rows; their gradients are loaded together (independent
// loads in flight), then applied lowest i first. Consecutive hits on one id are summed in a
// register and added to the table once per run, so a repeated id is not a chain of
// dependent read-modify-writes. Every element thus sums its gradients in ascending i, in a
// grouping fixed by the ids and the shape: deterministic.
__global__ void embedding_backward_kernel(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids,
                                          int64_t count, int64_t channels, int64_t rows_per_block) {
  const int64_t first_row = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end_row = first_row + rows_per_block;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  const bool active = col < channels;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  int64_t run_id = -1;
  float run_sum = 0.0F;
  for (int64_t base = 0; base < count; base += kWarpSize) {
    const int64_t i = base + lane;
    const int64_t id = i < count ? ids[i] : -1;
    const unsigned hits = __ballot_sync(kFullWarpMask, id >= first_row && id < end_row);
    if (hits == 0) continue;
    float grads[kWarpSize];
#pragma unroll
    for (int k = 0; k < kWarpSize; ++k) {
      grads[k] = active && ((hits >> k) & 1U) != 0 ? load_float(grad_out, (base + k) * channels + col) : 0.0F;
    }
#pragma unroll
    for (int k = 0; k < kWarpSize; ++k) {
      if (((hits >> k) & 1U) == 0) continue;  // uniform over the warp
      const int64_t hit_id = __shfl_sync(kFullWarpMask, id, k);
      if (hit_id == run_id) {
        run_sum += grads[k];
        continue;
      }
      if (run_id >= 0 && active) grad_table[run_id * channels + col] += run_sum;
      run_id = hit_id;
      run_sum = grads[k];
    }
  }
  if (run_id >= 0 && active) grad_table[run_id * channels + col] += run_sum;
}

}  // namespace

void launch_embedding(FloatBuffer out, ConstFloatBuffer table, const int32_t* ids, int64_t count, int64_t channels,
                      cudaStream_t stream) {
  if (count == 0 || channels == 0) return;
  const int64_t row_bytes = channels * (table.dtype == DType::F32 ? 4 : 2);
  if (vector_ready(table.dtype, {as_const(out), table}) && row_bytes % 16 == 0) {
    embedding_vec_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(
        static_cast<uint4*>(out.data), static_cast<const uint4*>(table.data), ids, row_bytes / 16);
  } else {
    embedding_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(out, table, ids, channels);
  }
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
