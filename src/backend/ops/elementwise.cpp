#include "anvil/ops/elementwise.h"

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// b's shape must be a suffix of a's (b broadcast over a's leading dims).
void require_suffix(const char* op, const oc::Arg& a, const oc::Arg& b) {
  oc::require(op, a);
  oc::require(op, b);
  const Shape& big = a.tensor->shape();
  const Shape& small = b.tensor->shape();
  bool suffix = small.size() <= big.size();
  for (size_t i = 0; suffix && i < small.size(); ++i) suffix = small[small.size() - 1 - i] == big[big.size() - 1 - i];
  ANVIL_CHECK(suffix, "op ", op, ": argument '", b.name, "' has shape ", shape_string(small),
              ", which is not a suffix of '", a.name, "' ", shape_string(big), " (no broadcast that way)");
}

// Shared checks of add and mul: a, b, out float; b broadcast over a; out shaped like a.
Device check_binary(const char* op, const Tensor& out, const Tensor& a, const Tensor& b) {
  oc::require_float(op, {"a", &a});
  oc::require_float(op, {"b", &b});
  oc::require_float(op, {"out", &out});
  require_suffix(op, {"a", &a}, {"b", &b});
  oc::require_same_shape(op, {"a", &a}, {"out", &out});
  return oc::common_device(op, {{"out", &out}, {"a", &a}, {"b", &b}});
}

}  // namespace

void add(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b) {
  const Device device = check_binary("add", out, a, b);
  ctx.backend(device).add(out, a, b);
}

void mul(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b) {
  const Device device = check_binary("mul", out, a, b);
  ctx.backend(device).mul(out, a, b);
}

void scale(Ctx& ctx, Tensor& out, const Tensor& a, float factor) {
  constexpr const char* kOp = "scale";
  oc::require_float(kOp, {"a", &a});
  oc::require_float(kOp, {"out", &out});
  oc::require_same_shape(kOp, {"a", &a}, {"out", &out});
  const Device device = oc::common_device(kOp, {{"out", &out}, {"a", &a}});
  ctx.backend(device).scale(out, a, factor);
}

void add_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out) {
  constexpr const char* kOp = "add_backward";
  oc::require_float(kOp, {"grad_out", &grad_out});
  oc::require(kOp, {"grad_out", &grad_out});
  if (grad_a.defined()) {
    oc::require_float(kOp, {"grad_a", &grad_a});
    oc::require_same_shape(kOp, {"grad_out", &grad_out}, {"grad_a", &grad_a});
  }
  if (grad_b.defined()) {
    oc::require_float(kOp, {"grad_b", &grad_b});
    require_suffix(kOp, {"grad_out", &grad_out}, {"grad_b", &grad_b});
  }
  const Device device = oc::common_device(kOp, {{"grad_a", &grad_a}, {"grad_b", &grad_b}, {"grad_out", &grad_out}});
  ctx.backend(device).add_backward(grad_a, grad_b, grad_out);
}

void mul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b) {
  constexpr const char* kOp = "mul_backward";
  oc::require_float(kOp, {"a", &a});
  oc::require_float(kOp, {"b", &b});
  oc::require_float(kOp, {"grad_out", &grad_out});
  require_suffix(kOp, {"a", &a}, {"b", &b});
  oc::require_same_shape(kOp, {"a", &a}, {"grad_out", &grad_out});
  if (grad_a.defined()) {
    oc::require_float(kOp, {"grad_a", &grad_a});
    oc::require_same_shape(kOp, {"a", &a}, {"grad_a", &grad_a});
  }
  if (grad_b.defined()) {
    oc::require_float(kOp, {"grad_b", &grad_b});
    oc::require_same_shape(kOp, {"b", &b}, {"grad_b", &grad_b});
  }
  const Device device =
      oc::common_device(kOp, {{"grad_a", &grad_a}, {"grad_b", &grad_b}, {"grad_out", &grad_out}, {"a", &a}, {"b", &b}});
  ctx.backend(device).mul_backward(grad_a, grad_b, grad_out, a, b);
}

}  // namespace anvil
