// Rotary embedding: one block per token row. The row's angles position * inv_frequency[k]
// are formed and turned into cos/sin in f64 (positions reach 1e5+, where an f32 angle would
// be off by ~1e-2 rad), once per pair into shared memory, then every head's pairs rotate in
// f32. inv_frequency follows rope_inv_frequency (src/backend/ops/rope.cpp): HF's
// base^(-2k / rot_dim), then Linear or Llama 3 scaling.
#include <algorithm>
#include <numbers>

#include "cuda/cuda_check.h"
#include "cuda/dependent_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/rope_kernels.h"
#include "cuda/vector_io.cuh"

namespace anvil::cuda {
namespace {

constexpr int kThreads = 256;

// The frequency parameters the kernel needs, in f64 as the host reference computes them.
struct RopeFrequency {
  double base;
  int64_t rot_dim;
  RopeScaling scaling;
  double factor;
  double low_freq_factor;
  double high_freq_factor;
  double original_max_position;
};

__device__ double inv_frequency(const RopeFrequency& f, int64_t pair) {
  const double inv = pow(f.base, -2.0 * static_cast<double>(pair) / static_cast<double>(f.rot_dim));
  if (f.scaling == RopeScaling::Linear) return inv / f.factor;
  if (f.scaling != RopeScaling::Llama3) return inv;
  // Long wavelengths divided by factor, short ones kept, the band between interpolated.
  const double wavelength = 2.0 * std::numbers::pi / inv;
  if (wavelength > f.original_max_position / f.low_freq_factor) return inv / f.factor;
  if (wavelength < f.original_max_position / f.high_freq_factor) return inv;
  const double smooth =
      (f.original_max_position / wavelength - f.low_freq_factor) / (f.high_freq_factor - f.low_freq_factor);
  return (1.0 - smooth) * inv / f.factor + smooth * inv;
}

// cos / sin of position * inv_frequency[k] for the row's pairs k < half, into shared memory
// (cos[half], then sin[half]); ends with a barrier.
__device__ void fill_trig(float* trig, double position, const RopeFrequency& frequency, double direction) {
  const int64_t half = frequency.rot_dim / 2;
  for (int64_t k = threadIdx.x; k < half; k += blockDim.x) {
    double sine = 0.0;
    double cosine = 0.0;
    sincos(direction * position * inv_frequency(frequency, k), &sine, &cosine);
    trig[k] = static_cast<float>(cosine);
    trig[half + k] = static_cast<float>(sine);
  }
  __syncthreads();
}

// Copies dims [rot_dim, D) of every head of one row (nothing when out is x).
__device__ void copy_pass_through(FloatBuffer y, ConstFloatBuffer in, int64_t heads, int64_t head_dim,
                                  int64_t rot_dim) {
  const int64_t pass = head_dim - rot_dim;
  if (pass == 0 || y.data == in.data) return;
  for (int64_t item = threadIdx.x; item < heads * pass; item += blockDim.x) {
    const int64_t head = item / pass;
    const int64_t c = head * head_dim + rot_dim + (item - head * pass);
    store_float(y, c, load_float(in, c));
  }
}

// grid (N), block (kThreads), dynamic shared memory rot_dim floats (cos, sin). Pair k of a
// head is (k, k + half) for RotateHalf and (2k, 2k + 1) for Interleaved; each pair is read
// whole before it is written, so out may alias x.
__global__ void rope_kernel(FloatBuffer out, ConstFloatBuffer x, const int32_t* positions, int64_t heads,
                            int64_t head_dim, RopeFrequency frequency, bool interleaved, double direction) {
  extern __shared__ float trig[];
  const int64_t half = frequency.rot_dim / 2;
  const float* cosines = trig;
  const float* sines = trig + half;
  const int64_t row = blockIdx.x;
  fill_trig(trig, positions[row], frequency, direction);
  const int64_t row_offset = row * heads * head_dim;
  const ConstFloatBuffer in = offset_buffer(x, row_offset);
  const FloatBuffer y = offset_buffer(out, row_offset);
  for (int64_t item = threadIdx.x; item < heads * half; item += blockDim.x) {
    const int64_t head = item / half;
    const int64_t k = item - head * half;
    const int64_t first = head * head_dim + (interleaved ? 2 * k : k);
    const int64_t second = first + (interleaved ? 1 : half);
    const float a = load_float(in, first);
    const float b = load_float(in, second);
    store_float(y, first, a * cosines[k] - b * sines[k]);
    store_float(y, second, b * cosines[k] + a * sines[k]);
  }
  copy_pass_through(y, in, heads, head_dim, frequency.rot_dim);
}

// One item of a row for dtype T, 16-byte aligned heads, and rotated halves (RotateHalf) or
// rotated dims (Interleaved) that are whole vectors. RotateHalf: an item is the vector of
// pairs k .. k + kSize - 1, i.e. a vector from each half. Interleaved: an item is one vector
// holding kSize / 2 whole pairs. rotate_item reads item v of `head` from `in`, writes it
// rotated to `y` (may alias `in`) and returns the rotated values with their vector indices.
template <typename T>
struct RotatedItem {
  int64_t first_vec = 0;
  int64_t second_vec = -1;  // RotateHalf: the partner vector in the second half
  float first[kVecSize<T>];
  float second[kVecSize<T>];
};

template <typename T, bool kInterleaved>
__device__ __forceinline__ RotatedItem<T> rotate_item(T* y, const T* in, int64_t head, int64_t v, int64_t head_vecs,
                                                      int64_t half, const float* cosines, const float* sines) {
  constexpr int kSize = kVecSize<T>;
  RotatedItem<T> item;
  item.first_vec = head * head_vecs + v;
  if constexpr (kInterleaved) {
    load_vec(in, item.first_vec, item.first);
#pragma unroll
    for (int p = 0; p < kSize / 2; ++p) {
      const int64_t k = v * (kSize / 2) + p;
      const float a = item.first[2 * p];
      const float b = item.first[2 * p + 1];
      item.first[2 * p] = a * cosines[k] - b * sines[k];
      item.first[2 * p + 1] = b * cosines[k] + a * sines[k];
    }
    store_vec(y, item.first_vec, item.first);
  } else {
    item.second_vec = item.first_vec + half / kSize;
    load_vec(in, item.first_vec, item.first);
    load_vec(in, item.second_vec, item.second);
#pragma unroll
    for (int p = 0; p < kSize; ++p) {
      const int64_t k = v * kSize + p;
      const float a = item.first[p];
      const float b = item.second[p];
      item.first[p] = a * cosines[k] - b * sines[k];
      item.second[p] = b * cosines[k] + a * sines[k];
    }
    store_vec(y, item.first_vec, item.first);
    store_vec(y, item.second_vec, item.second);
  }
  return item;
}

template <typename T, bool kInterleaved>
__global__ void rope_vec_kernel(T* out, const T* x, const int32_t* positions, int64_t heads, int64_t head_dim,
                                RopeFrequency frequency, double direction) {
  constexpr int kSize = kVecSize<T>;
  extern __shared__ float trig[];
  allow_dependents();
  wait_for_producer();  // launched early after a GEMV (launch_dependent): x is its output
  const int64_t half = frequency.rot_dim / 2;
  const float* cosines = trig;
  const float* sines = trig + half;
  const int64_t row = blockIdx.x;
  fill_trig(trig, positions[row], frequency, direction);
  const int64_t row_offset = row * heads * head_dim;
  const T* in = x + row_offset;
  T* y = out + row_offset;
  const int64_t head_vecs = head_dim / kSize;
  const int64_t items_per_head = (kInterleaved ? frequency.rot_dim : half) / kSize;
  for (int64_t item = threadIdx.x; item < heads * items_per_head; item += blockDim.x) {
    const int64_t head = item / items_per_head;
    rotate_item<T, kInterleaved>(y, in, head, item - head * items_per_head, head_vecs, half, cosines, sines);
  }
  copy_pass_through(FloatBuffer{y, float_dtype<T>()}, ConstFloatBuffer{in, float_dtype<T>()}, heads, head_dim,
                    frequency.rot_dim);
}

// grid (N), block (kThreads), dynamic shared memory rot_dim floats. rope_vec_kernel's
// rotation of every q and k head of a row of qkv (dtype T, in place) and kv_cache_write's
// copy of the k heads and the v heads to the row's cache slot (dtype C), in one launch
// instead of two for each decode layer: each rotated k vector goes to the cache from
// registers, rounded as qkv stores it.
template <typename T, typename C, bool kInterleaved>
__global__ void rope_kv_cache_write_vec_kernel(RopeKvWriteArgs args, RopeFrequency frequency) {
  constexpr int kSize = kVecSize<T>;
  extern __shared__ float trig[];
  allow_dependents();   // the attention kernel after it may launch and wait
  wait_for_producer();  // launched early after a GEMV (launch_dependent): qkv is its output
  const int64_t half = frequency.rot_dim / 2;
  const float* cosines = trig;
  const float* sines = trig + half;
  const int64_t row = blockIdx.x;
  fill_trig(trig, args.positions[row], frequency, 1.0);
  const int64_t head_dim = args.head_dim;
  const int64_t head_vecs = head_dim / kSize;
  const int64_t rotated_heads = args.q_heads + args.kv_heads;
  const int64_t cache_row = args.kv_heads * head_dim;
  T* y = static_cast<T*>(args.qkv.data) + row * (rotated_heads + args.kv_heads) * head_dim;
  const int64_t slot = args.slots[row];
  C* keys = static_cast<C*>(args.key_cache.data) + slot * cache_row;
  C* values = static_cast<C*>(args.value_cache.data) + slot * cache_row;
  const int64_t first_k = args.q_heads * head_dim;
  // The cache gets what qkv stores: values rounded to T, then converted to C.
  const auto to_cache = [](C* dst, const float* src) {
#pragma unroll
    for (int e = 0; e < kSize; ++e) dst[e] = narrow<C>(widen(narrow<T>(src[e])));
  };
  const int64_t items_per_head = (kInterleaved ? frequency.rot_dim : half) / kSize;
  for (int64_t item = threadIdx.x; item < rotated_heads * items_per_head; item += blockDim.x) {
    const int64_t head = item / items_per_head;
    const RotatedItem<T> rotated =
        rotate_item<T, kInterleaved>(y, y, head, item - head * items_per_head, head_vecs, half, cosines, sines);
    if (head < args.q_heads) continue;
    to_cache(keys + rotated.first_vec * kSize - first_k, rotated.first);
    if (!kInterleaved) to_cache(keys + rotated.second_vec * kSize - first_k, rotated.second);
  }
  // k's dims past rot_dim (unrotated) and v, vector by vector.
  const int64_t pass_vecs = (head_dim - frequency.rot_dim) / kSize;
  const int64_t rot_vecs = frequency.rot_dim / kSize;
  for (int64_t item = threadIdx.x; item < args.kv_heads * pass_vecs; item += blockDim.x) {
    const int64_t head = item / pass_vecs;
    const int64_t vec = head * head_vecs + rot_vecs + (item - head * pass_vecs);
    float copied[kSize];
    load_vec(y + first_k, vec, copied);
    to_cache(keys + vec * kSize, copied);
  }
  for (int64_t vec = threadIdx.x; vec < cache_row / kSize; vec += blockDim.x) {
    float copied[kSize];
    load_vec(y + first_k + cache_row, vec, copied);
    to_cache(values + vec * kSize, copied);
  }
}

RopeFrequency frequency_of(const RopeParams& params, int64_t head_dim) {
  return {params.base,
          params.rot_dim == 0 ? head_dim : params.rot_dim,
          params.scaling,
          params.factor,
          params.low_freq_factor,
          params.high_freq_factor,
          static_cast<double>(params.original_max_position)};
}

}  // namespace

bool launch_rope_kv_cache_write(const RopeKvWriteArgs& args, const RopeParams& params, cudaStream_t stream) {
  const RopeFrequency frequency = frequency_of(params, args.head_dim);
  const bool interleaved = params.layout == RopeLayout::Interleaved;
  if (!vector_ready(args.qkv.dtype, {as_const(args.qkv)})) return false;
  bool launched = false;
  dispatch_storage(args.qkv.dtype, [&](auto qkv_tag) {
    using T = decltype(qkv_tag);
    constexpr int kSize = kVecSize<T>;
    const int64_t rotated = interleaved ? frequency.rot_dim : frequency.rot_dim / 2;  // whole vectors needed
    if (args.head_dim % kSize != 0 || rotated % kSize != 0 || frequency.rot_dim % kSize != 0) return;
    const auto shared_bytes = static_cast<size_t>(frequency.rot_dim) * sizeof(float);  // cos, sin
    const auto grid = static_cast<unsigned>(args.rows);
    dispatch_storage(args.key_cache.dtype, [&](auto cache_tag) {
      using C = decltype(cache_tag);
      if (interleaved) {
        launch_dependent(rope_kv_cache_write_vec_kernel<T, C, true>, grid, kThreads, shared_bytes, stream, args,
                         frequency);
      } else {
        launch_dependent(rope_kv_cache_write_vec_kernel<T, C, false>, grid, kThreads, shared_bytes, stream, args,
                         frequency);
      }
    });
    launched = true;
  });
  return launched;
}

void launch_rope(FloatBuffer out, ConstFloatBuffer x, const int32_t* positions, int64_t rows, int64_t heads,
                 int64_t head_dim, const RopeParams& params, double direction, cudaStream_t stream) {
  if (rows == 0 || heads == 0) return;
  const RopeFrequency frequency = frequency_of(params, head_dim);
  const int64_t rot_dim = frequency.rot_dim;
  const auto shared_bytes = static_cast<size_t>(rot_dim) * sizeof(float);  // 2 * (rot_dim / 2)
  const bool interleaved = params.layout == RopeLayout::Interleaved;
  if (vector_ready(x.dtype, {as_const(out), x})) {
    bool launched = false;
    dispatch_storage(x.dtype, [&](auto tag) {
      using T = decltype(tag);
      constexpr int kSize = kVecSize<T>;
      const int64_t rotated = interleaved ? rot_dim : rot_dim / 2;  // whole vectors needed
      if (head_dim % kSize != 0 || rotated % kSize != 0) return;
      const auto grid = static_cast<unsigned>(rows);
      if (interleaved) {
        launch_dependent(rope_vec_kernel<T, true>, grid, kThreads, shared_bytes, stream, static_cast<T*>(out.data),
                         static_cast<const T*>(x.data), positions, heads, head_dim, frequency, direction);
      } else {
        launch_dependent(rope_vec_kernel<T, false>, grid, kThreads, shared_bytes, stream, static_cast<T*>(out.data),
                         static_cast<const T*>(x.data), positions, heads, head_dim, frequency, direction);
      }
      launched = true;
    });
    if (launched) {
      ANVIL_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  rope_kernel<<<static_cast<unsigned>(rows), kThreads, shared_bytes, stream>>>(out, x, positions, heads, head_dim,
                                                                               frequency, interleaved, direction);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
