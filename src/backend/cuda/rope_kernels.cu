// Rotary embedding: one block per token row. The row's angles position * inv_frequency[k]
// are formed and turned into cos/sin in f64 (positions reach 1e5+, where an f32 angle would
// be off by ~1e-2 rad), once per pair into shared memory, then every head's pairs rotate in
// f32. inv_frequency follows rope_inv_frequency (src/backend/ops/rope.cpp): HF's
// base^(-2k / rot_dim), then Linear or Llama 3 scaling.
#include <algorithm>
#include <numbers>

#include "cuda/cuda_check.h"
#include "cuda/float_io.cuh"
#include "cuda/rope_kernels.h"

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

// grid (N), block (kThreads), dynamic shared memory 2 * rot_dim / 2 floats (cos, sin).
// Pair k of a head is (k, k + half) for RotateHalf and (2k, 2k + 1) for Interleaved; each
// pair is read whole before it is written, so out may alias x. Dims past rot_dim are copied
// (skipped when out is x).
__global__ void rope_kernel(FloatBuffer out, ConstFloatBuffer x, const int32_t* positions, int64_t heads,
                            int64_t head_dim, RopeFrequency frequency, bool interleaved, double direction) {
  extern __shared__ float trig[];  // cos[half], then sin[half]
  const int64_t half = frequency.rot_dim / 2;
  float* cosines = trig;
  float* sines = trig + half;
  const int64_t row = blockIdx.x;
  const double position = positions[row];
  for (int64_t k = threadIdx.x; k < half; k += blockDim.x) {
    double sine = 0.0;
    double cosine = 0.0;
    sincos(direction * position * inv_frequency(frequency, k), &sine, &cosine);
    cosines[k] = static_cast<float>(cosine);
    sines[k] = static_cast<float>(sine);
  }
  __syncthreads();
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
  const int64_t pass = head_dim - frequency.rot_dim;
  if (pass == 0 || out.data == x.data) return;
  for (int64_t item = threadIdx.x; item < heads * pass; item += blockDim.x) {
    const int64_t head = item / pass;
    const int64_t c = head * head_dim + frequency.rot_dim + (item - head * pass);
    store_float(y, c, load_float(in, c));
  }
}

}  // namespace

void launch_rope(FloatBuffer out, ConstFloatBuffer x, const int32_t* positions, int64_t rows, int64_t heads,
                 int64_t head_dim, const RopeParams& params, double direction, cudaStream_t stream) {
  if (rows == 0 || heads == 0) return;
  const int64_t rot_dim = params.rot_dim == 0 ? head_dim : params.rot_dim;
  const RopeFrequency frequency{params.base,
                                rot_dim,
                                params.scaling,
                                params.factor,
                                params.low_freq_factor,
                                params.high_freq_factor,
                                static_cast<double>(params.original_max_position)};
  const auto shared_bytes = static_cast<size_t>(rot_dim) * sizeof(float);  // 2 * (rot_dim / 2)
  rope_kernel<<<static_cast<unsigned>(rows), kThreads, shared_bytes, stream>>>(
      out, x, positions, heads, head_dim, frequency, params.layout == RopeLayout::Interleaved, direction);
  ANVIL_CUDA_CHECK_LAUNCH();
}

}  // namespace anvil::cuda
