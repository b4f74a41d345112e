#include "anvil/ops/rope.h"

#include <cmath>
#include <numbers>

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// The rotated leading dims of a head: rot_dim, or the whole head when rot_dim is 0.
int64_t rotary_dims(const RopeParams& params, int64_t head_dim) {
  return params.rot_dim == 0 ? head_dim : params.rot_dim;
}

// Llama 3 frequency scaling (HF transformers `_compute_llama3_parameters`): long wavelengths
// are divided by factor, short ones kept, the band between interpolated smoothly.
double llama3_scaled(const RopeParams& params, double inv_frequency) {
  const auto original = static_cast<double>(params.original_max_position);
  const double low = params.low_freq_factor;
  const double high = params.high_freq_factor;
  const double wavelength = 2.0 * std::numbers::pi / inv_frequency;
  if (wavelength > original / low) return inv_frequency / params.factor;
  if (wavelength < original / high) return inv_frequency;
  const double smooth = (original / wavelength - low) / (high - low);
  return (1.0 - smooth) * inv_frequency / params.factor + smooth * inv_frequency;
}

// in/out (N, H, D) and positions (N) i32 agree, and the params fit a head of D.
void check_rope_args(const char* op, const oc::Arg& out, const oc::Arg& in, const Tensor& positions,
                     const RopeParams& params) {
  oc::require_rank(op, in, 3);
  oc::require_float(op, in);
  oc::require_same_shape(op, in, out);
  oc::require_float(op, out);
  oc::require_shape(op, {"positions", &positions}, {in.tensor->size(0)});
  oc::require_dtype(op, {"positions", &positions}, {DType::I32});
  oc::require_rope_params(op, params, in.tensor->size(2));
  // In place is fine; a partial overlap would read values already rotated.
  if (out.tensor->storage() == in.tensor->storage() && out.tensor->numel() > 0) {
    const bool same =
        out.tensor->offset_bytes() == in.tensor->offset_bytes() && out.tensor->dtype() == in.tensor->dtype();
    const bool disjoint = out.tensor->offset_bytes() >= in.tensor->offset_bytes() + in.tensor->nbytes() ||
                          in.tensor->offset_bytes() >= out.tensor->offset_bytes() + out.tensor->nbytes();
    ANVIL_CHECK(same || disjoint, "op ", op, ": '", out.name, "' partially overlaps '", in.name,
                "' (only exact aliasing is allowed)");
  }
}

}  // namespace

double rope_inv_frequency(const RopeParams& params, int64_t head_dim, int64_t pair) {
  oc::require_rope_params("rope_inv_frequency", params, head_dim);
  const int64_t rot_dim = rotary_dims(params, head_dim);
  ANVIL_CHECK(pair >= 0 && pair < rot_dim / 2, "rope_inv_frequency: pair ", pair, " is outside [0, ", rot_dim / 2, ")");
  // theta^(-2 pair / rot_dim), as in HF: 1 / base^(arange(0, rot_dim, 2) / rot_dim).
  const double inv_frequency =
      std::pow(static_cast<double>(params.base), -2.0 * static_cast<double>(pair) / static_cast<double>(rot_dim));
  switch (params.scaling) {
    case RopeScaling::None:
      return inv_frequency;
    case RopeScaling::Linear:
      return inv_frequency / params.factor;  // same angles as position / factor
    case RopeScaling::Llama3:
      return llama3_scaled(params, inv_frequency);
  }
  return inv_frequency;
}

void rope(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params) {
  constexpr const char* kOp = "rope";
  check_rope_args(kOp, {"out", &out}, {"x", &x}, positions, params);
  const Device device = oc::common_device(kOp, {{"out", &out}, {"x", &x}, {"positions", &positions}});
  ctx.backend(device).rope(out, x, positions, params);
}

void rope_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params) {
  constexpr const char* kOp = "rope_backward";
  check_rope_args(kOp, {"dx", &dx}, {"dout", &dout}, positions, params);
  const Device device = oc::common_device(kOp, {{"dx", &dx}, {"dout", &dout}, {"positions", &positions}});
  ctx.backend(device).rope_backward(dx, dout, positions, params);
}

}  // namespace anvil
