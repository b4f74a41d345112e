// Embedding gather and its scatter-add backward. The backward sorts the ids (CUB's stable
// radix sort) and reduces each id's rows in a fixed order: deterministic, no float atomics,
// and a frequent id is summed by many blocks in parallel rather than by one.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <limits>

#include "anvil/core/error.h"
#include "cuda/cuda_check.h"
#include "cuda/embedding_kernels.h"
#include "cuda/float_io.cuh"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 32;  // sorted entries per chunk of the backward

__host__ __device__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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

// Scratch layout of the backward, each part 256-byte aligned.
struct BackwardScratch {
  int32_t* positions;         // (N) 0, 1, ..., N - 1: the sort's values
  int32_t* sorted_ids;        // (N)
  int32_t* sorted_positions;  // (N): row i of grad_out for each sorted id, ascending i per id
  float* heads;               // (num_chunks, C)
  void* sort_temp;
  size_t sort_temp_bytes;
};

size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

__host__ __device__ int64_t num_chunks(int64_t count) { return ceil_div(count, kChunk); }

// Bits the radix sort needs for ids in [0, vocab).
int sort_bits(int64_t vocab) {
  int bits = 1;
  while (bits < 31 && (int64_t{1} << bits) < vocab) ++bits;
  return bits;
}

size_t sort_temp_bytes(int64_t count, int64_t vocab) {
  size_t bytes = 0;
  ANVIL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                                   static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                   static_cast<int32_t*>(nullptr), static_cast<int>(count), 0,
                                                   sort_bits(vocab)));
  return bytes;
}

BackwardScratch carve(void* scratch, int64_t count, int64_t vocab, int64_t channels) {
  char* next = static_cast<char*>(scratch);
  const size_t index_bytes = align_up(static_cast<size_t>(count) * sizeof(int32_t));
  BackwardScratch parts{};
  parts.positions = reinterpret_cast<int32_t*>(next);
  next += index_bytes;
  parts.sorted_ids = reinterpret_cast<int32_t*>(next);
  next += index_bytes;
  parts.sorted_positions = reinterpret_cast<int32_t*>(next);
  next += index_bytes;
  parts.heads = reinterpret_cast<float*>(next);
  next += align_up(static_cast<size_t>(num_chunks(count) * channels) * sizeof(float));
  parts.sort_temp = next;
  parts.sort_temp_bytes = sort_temp_bytes(count, vocab);
  return parts;
}

__global__ void iota_kernel(int32_t* values, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    values[i] = static_cast<int32_t>(i);
  }
}

// The backward works on the ids sorted stably (so each id's rows are in ascending i), cut
// into chunks of kChunk sorted entries. A run is the entries of one id. Both kernels: grid
// (num_chunks, column blocks), block (kThreads), one column per thread, every thread of a
// block on the same chunk (control flow is uniform).
//
// Heads: a chunk whose first entry continues the previous chunk's run sums that run's
// entries inside the chunk into heads[chunk, c].
__global__ void embedding_heads_kernel(float* heads, ConstFloatBuffer grad_out, const int32_t* sorted_ids,
                                       const int32_t* sorted_positions, int64_t count, int64_t channels) {
  const int64_t chunk = blockIdx.x;
  const int64_t start = chunk * kChunk;
  const int64_t end = std::min(count, start + kChunk);
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (chunk == 0 || col >= channels || sorted_ids[start] != sorted_ids[start - 1]) return;
  const int32_t id = sorted_ids[start];
  float sum = 0.0F;
  for (int64_t e = start; e < end && sorted_ids[e] == id; ++e) {
    sum += load_float(grad_out, static_cast<int64_t>(sorted_positions[e]) * channels + col);
  }
  heads[chunk * channels + col] = sum;
}

// Owners: each run that starts in this chunk is summed here, in sorted (= ascending i)
// order, then, if it runs on, the following chunks' heads in chunk order, and added once to
// grad_table[id, c]. A run has one owner, so no two threads touch one table element.
__global__ void embedding_owners_kernel(float* grad_table, const float* heads, ConstFloatBuffer grad_out,
                                        const int32_t* sorted_ids, const int32_t* sorted_positions, int64_t count,
                                        int64_t channels) {
  constexpr int kHeadBatch = 8;  // heads loaded together, so a long run is not a chain of loads
  const int64_t chunk = blockIdx.x;
  const int64_t chunks = num_chunks(count);
  const int64_t start = chunk * kChunk;
  const int64_t end = std::min(count, start + kChunk);
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (col >= channels) return;
  int64_t e = start;
  if (chunk > 0) {  // skip the head: the run belongs to an earlier chunk
    while (e < end && sorted_ids[e] == sorted_ids[start - 1]) ++e;
  }
  while (e < end) {
    const int32_t id = sorted_ids[e];
    float sum = 0.0F;
    for (; e < end && sorted_ids[e] == id; ++e) {
      sum += load_float(grad_out, static_cast<int64_t>(sorted_positions[e]) * channels + col);
    }
    // Sorted ids: the run covers chunk n's head exactly when chunk n starts with this id.
    for (int64_t next = chunk + 1; e == end && next < chunks; next += kHeadBatch) {
      float head[kHeadBatch];
      bool covered[kHeadBatch];
#pragma unroll
      for (int t = 0; t < kHeadBatch; ++t) {
        const int64_t n = next + t;
        covered[t] = n < chunks && sorted_ids[n * kChunk] == id;
        head[t] = covered[t] ? heads[n * channels + col] : 0.0F;
      }
#pragma unroll
      for (int t = 0; t < kHeadBatch; ++t) sum += head[t];  // covered chunks come first, in order
      if (!covered[kHeadBatch - 1]) break;
    }
    grad_table[static_cast<int64_t>(id) * channels + col] += sum;
  }
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

size_t embedding_backward_scratch_bytes(int64_t count, int64_t vocab, int64_t channels) {
  if (count == 0 || channels == 0) return 0;
  ANVIL_CHECK(count <= std::numeric_limits<int32_t>::max(), "cuda embedding_backward: ", count,
              " ids exceed the sort's 2^31 limit");
  const size_t index_bytes = align_up(static_cast<size_t>(count) * sizeof(int32_t));
  return 3 * index_bytes + align_up(static_cast<size_t>(num_chunks(count) * channels) * sizeof(float)) +
         sort_temp_bytes(count, vocab);
}

void launch_embedding_backward(float* grad_table, ConstFloatBuffer grad_out, const int32_t* ids, int64_t count,
                               int64_t vocab, int64_t channels, void* scratch, cudaStream_t stream) {
  if (count == 0 || channels == 0) return;
  BackwardScratch parts = carve(scratch, count, vocab, channels);
  const auto iota_blocks = static_cast<unsigned>(std::min<int64_t>(1024, ceil_div(count, kThreads)));
  iota_kernel<<<iota_blocks, kThreads, 0, stream>>>(parts.positions, count);
  ANVIL_CUDA_CHECK_LAUNCH();
  // Stable radix sort: equal ids keep ascending positions, and the result is deterministic.
  ANVIL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(parts.sort_temp, parts.sort_temp_bytes, ids, parts.sorted_ids,
                                                   parts.positions, parts.sorted_positions, static_cast<int>(count), 0,
                                                   sort_bits(vocab), stream));
  const dim3 grid(static_cast<unsigned>(num_chunks(count)), static_cast<unsigned>(ceil_div(channels, kThreads)));
  embedding_heads_kernel<<<grid, kThreads, 0, stream>>>(parts.heads, grad_out, parts.sorted_ids, parts.sorted_positions,
                                                        count, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
  embedding_owners_kernel<<<grid, kThreads, 0, stream>>>(grad_table, parts.heads, grad_out, parts.sorted_ids,
                                                         parts.sorted_positions, count, channels);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
