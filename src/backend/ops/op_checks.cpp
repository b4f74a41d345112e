#include "ops/op_checks.h"

#include <cmath>

namespace anvil::op_checks {

void require(const char* op, const Arg& arg) {
  ANVIL_CHECK(arg.tensor->defined(), "op ", op, ": argument '", arg.name, "' is undefined");
  ANVIL_CHECK(arg.tensor->is_contiguous(), "op ", op, ": argument '", arg.name, "' ", shape_string(arg.tensor->shape()),
              " must be contiguous");
}

Device common_device(const char* op, std::initializer_list<Arg> args) {
  bool found = false;
  Device device;
  for (const Arg& arg : args) {
    if (!arg.tensor->defined()) continue;
    if (!found) {
      device = arg.tensor->device();
      found = true;
    }
    ANVIL_CHECK(arg.tensor->device() == device, "op ", op, ": argument '", arg.name, "' is on ",
                device_string(arg.tensor->device()), " but others are on ", device_string(device));
  }
  ANVIL_CHECK(found, "op ", op, ": no defined tensor arguments");
  return device;
}

void require_shape(const char* op, const Arg& arg, const Shape& shape) {
  require(op, arg);
  ANVIL_CHECK(arg.tensor->shape() == shape, "op ", op, ": argument '", arg.name, "' has shape ",
              shape_string(arg.tensor->shape()), ", expected ", shape_string(shape));
}

void require_dtype(const char* op, const Arg& arg, std::initializer_list<DType> allowed) {
  for (const DType dtype : allowed) {
    if (arg.tensor->dtype() == dtype) return;
  }
  std::string names;
  for (const DType dtype : allowed) names += (names.empty() ? "" : ", ") + std::string(dtype_name(dtype));
  throw make_error("op ", op, ": argument '", arg.name, "' has dtype ", dtype_name(arg.tensor->dtype()),
                   ", expected one of ", names);
}

void require_same_shape(const char* op, const Arg& a, const Arg& b) {
  require(op, a);
  require_shape(op, b, a.tensor->shape());
}

void require_rank(const char* op, const Arg& arg, int64_t rank) {
  require(op, arg);
  ANVIL_CHECK(arg.tensor->dim() == rank, "op ", op, ": argument '", arg.name, "' has shape ",
              shape_string(arg.tensor->shape()), ", expected rank ", rank);
}

void require_float(const char* op, const Arg& arg) { require_dtype(op, arg, {DType::F32, DType::BF16, DType::F16}); }

void require_rope_params(const char* op, const RopeParams& params, int64_t head_dim) {
  const int64_t rot_dim = params.rot_dim == 0 ? head_dim : params.rot_dim;
  ANVIL_CHECK(head_dim > 0, "op ", op, ": head_dim must be > 0, got ", head_dim);
  ANVIL_CHECK(rot_dim > 0 && rot_dim <= head_dim && rot_dim % 2 == 0, "op ", op, ": rot_dim ", params.rot_dim,
              " must be 0 (whole head) or even and in (0, head_dim ", head_dim, "]");
  ANVIL_CHECK(params.base > 0.0F && std::isfinite(params.base), "op ", op, ": base must be > 0, got ", params.base);
  if (params.scaling == RopeScaling::None) return;
  ANVIL_CHECK(params.factor > 0.0F && std::isfinite(params.factor), "op ", op, ": scaling factor must be > 0, got ",
              params.factor);
  if (params.scaling != RopeScaling::Llama3) return;
  ANVIL_CHECK(params.low_freq_factor > 0.0F && params.high_freq_factor > params.low_freq_factor, "op ", op,
              ": llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got ", params.low_freq_factor, " and ",
              params.high_freq_factor);
  ANVIL_CHECK(params.original_max_position > 0, "op ", op, ": llama3 original_max_position must be > 0, got ",
              params.original_max_position);
}

}  // namespace anvil::op_checks
