#include "anvil/ops/activations.h"

#include "ops/activation_codes.h"
#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// Every argument is a float tensor of `reference`'s shape (the first argument).
void require_same_float(const char* op, std::initializer_list<oc::Arg> args) {
  const oc::Arg& reference = *args.begin();
  oc::require(op, reference);
  for (const oc::Arg& arg : args) {
    oc::require_same_shape(op, reference, arg);
    oc::require_float(op, arg);
  }
}

}  // namespace

void gelu(Ctx& ctx, Tensor& out, const Tensor& x) {
  constexpr const char* kOp = "gelu";
  require_same_float(kOp, {{"x", &x}, {"out", &out}});
  ctx.backend(oc::common_device(kOp, {{"out", &out}, {"x", &x}})).gelu(out, x);
}

void gelu_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& x) {
  constexpr const char* kOp = "gelu_backward";
  require_same_float(kOp, {{"x", &x}, {"dout", &dout}, {"dx", &dx}});
  ctx.backend(oc::common_device(kOp, {{"dx", &dx}, {"dout", &dout}, {"x", &x}})).gelu_backward(dx, dout, x);
}

void silu(Ctx& ctx, Tensor& out, const Tensor& x) {
  constexpr const char* kOp = "silu";
  require_same_float(kOp, {{"x", &x}, {"out", &out}});
  ctx.backend(oc::common_device(kOp, {{"out", &out}, {"x", &x}})).silu(out, x);
}

void silu_backward(Ctx& ctx, Tensor& dx, const Tensor& dout, const Tensor& x) {
  constexpr const char* kOp = "silu_backward";
  require_same_float(kOp, {{"x", &x}, {"dout", &dout}, {"dx", &dx}});
  ctx.backend(oc::common_device(kOp, {{"dx", &dx}, {"dout", &dout}, {"x", &x}})).silu_backward(dx, dout, x);
}

void swiglu(Ctx& ctx, Tensor& out, const Tensor& gate, const Tensor& up) {
  constexpr const char* kOp = "swiglu";
  if (is_activation_codes(out.dtype())) {  // quantized_matmul's input: from f32 gate and up
    require_same_float(kOp, {{"gate", &gate}, {"up", &up}});
    oc::require_dtype(kOp, {"gate", &gate}, {DType::F32});
    oc::require_dtype(kOp, {"up", &up}, {DType::F32});
    oc::require_same_shape(kOp, {"gate", &gate}, {"out", &out});
    oc::require_activation_codes(kOp, out);
  } else {
    require_same_float(kOp, {{"gate", &gate}, {"up", &up}, {"out", &out}});
  }
  const Device device = oc::common_device(kOp, {{"out", &out}, {"gate", &gate}, {"up", &up}});
  Backend& backend = ctx.backend(device);
  oc::produce_activations(ctx, backend, OpKind::Swiglu, out, [&](Tensor& target) { backend.swiglu(target, gate, up); });
}

void swiglu_backward(Ctx& ctx, Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  constexpr const char* kOp = "swiglu_backward";
  require_same_float(kOp, {{"gate", &gate}, {"up", &up}, {"dout", &dout}, {"dgate", &dgate}, {"dup", &dup}});
  const Device device =
      oc::common_device(kOp, {{"dgate", &dgate}, {"dup", &dup}, {"dout", &dout}, {"gate", &gate}, {"up", &up}});
  ctx.backend(device).swiglu_backward(dgate, dup, dout, gate, up);
}

}  // namespace anvil
