// Rotary position embedding on the CPU, rotations in f32 (in ggml-cpu's rounding order).
// Angles are position * inv_frequency in f64 (exact enough for positions in the 100k range),
// or, with params.ggml_angles and no scaling, ggml-cpu's f32 recurrence.
#include <algorithm>
#include <cmath>
#include <vector>

#include "anvil/ops/rope.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// The rotated element pairs of a head: (first[k], second[k]) turns by angle position * inv_frequency[k].
struct RotaryPairs {
  std::vector<int64_t> first;
  std::vector<int64_t> second;
  std::vector<double> inv_frequency;
};

RotaryPairs rotary_pairs(const RopeParams& params, int64_t head_dim) {
  const int64_t rot_dim = params.rot_dim == 0 ? head_dim : params.rot_dim;
  const int64_t half = rot_dim / 2;
  RotaryPairs pairs;
  for (int64_t k = 0; k < half; ++k) {
    const bool interleaved = params.layout == RopeLayout::Interleaved;
    pairs.first.push_back(interleaved ? 2 * k : k);
    pairs.second.push_back(interleaved ? 2 * k + 1 : k + half);
    pairs.inv_frequency.push_back(rope_inv_frequency(params, head_dim, k));
  }
  return pairs;
}

// Unscaled angles as ggml-cpu computes them (RopeParams::ggml_angles; llama.cpp's Q and K to
// the bit): in f32, theta_0 = position, theta_{k+1} = theta_k * powf(base, -2 / rot_dim),
// cosf / sinf, the sine times direction.
void ggml_angles(const RopeParams& params, int64_t rot_dim, int32_t position, float direction,
                 std::vector<float>& cosines, std::vector<float>& sines) {
  const float theta_scale = std::pow(params.base, -2.0F / static_cast<float>(rot_dim));
  auto theta = static_cast<float>(position);
  for (size_t k = 0; k < cosines.size(); ++k) {
    cosines[k] = std::cos(theta);
    sines[k] = std::sin(theta) * direction;
    theta *= theta_scale;
  }
}

// out (N, H, D) = x rotated by direction * angle (direction -1 undoes the rotation). out may alias x:
// each pair is read whole before it is written, and dims past rot_dim are copied element by element.
void rotate(ThreadPool& pool, Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params,
            double direction) {
  const int64_t rows = x.size(0);
  const int64_t heads = x.size(1);
  const int64_t head_dim = x.size(2);
  const int64_t row_length = heads * head_dim;
  const RotaryPairs pairs = rotary_pairs(params, head_dim);
  const auto num_pairs = static_cast<int64_t>(pairs.first.size());
  const int32_t* position = positions.data<const int32_t>();
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, row_length));
  pool.parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> in_scratch;
    std::vector<float> out_scratch;
    std::vector<float> cosines(static_cast<size_t>(num_pairs));
    std::vector<float> sines(static_cast<size_t>(num_pairs));
    for (int64_t row = begin; row < end; ++row) {
      if (params.ggml_angles && params.scaling == RopeScaling::None) {
        ggml_angles(params, 2 * num_pairs, position[row], static_cast<float>(direction), cosines, sines);
      } else {
        for (int64_t k = 0; k < num_pairs; ++k) {
          const double angle = direction * static_cast<double>(position[row]) * pairs.inv_frequency[k];
          cosines[k] = static_cast<float>(std::cos(angle));
          sines[k] = static_cast<float>(std::sin(angle));
        }
      }
      const float* in = load_row(x, row, row_length, in_scratch);
      float* y = output_row(out, row, row_length, out_scratch);
      for (int64_t head = 0; head < heads; ++head) {
        const float* head_in = in + head * head_dim;
        float* head_out = y + head * head_dim;
        for (int64_t k = 0; k < num_pairs; ++k) {
          const float a = head_in[pairs.first[k]];
          const float b = head_in[pairs.second[k]];
          // ggml-cpu's roundings (its compiler contracts the same way): a*cos - (b*sin), a*sin + (b*cos).
          head_out[pairs.first[k]] = std::fma(a, cosines[k], -(b * sines[k]));
          head_out[pairs.second[k]] = std::fma(a, sines[k], b * cosines[k]);
        }
        for (int64_t c = 2 * num_pairs; c < head_dim; ++c) head_out[c] = head_in[c];
      }
      store_row(out, row, row_length, y);
    }
  });
}

}  // namespace

void CpuBackend::rope(Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params) {
  rotate(pool_, out, x, positions, params, 1.0);
}

void CpuBackend::rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params) {
  // The rotation is orthogonal: its transpose is the rotation by the opposite angle.
  rotate(pool_, dx, dout, positions, params, -1.0);
}

}  // namespace anvil::cpu
