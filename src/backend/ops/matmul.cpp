#include "anvil/ops/matmul.h"

#include "anvil/ops/copy.h"
#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

struct MatmulDims {
  int64_t m;
  int64_t n;
  int64_t k;
};

// Checks the shapes of op(a) (..., M, K) @ op(b) (..., K, N) and returns M, N, K.
// b is batched like a, or 2-D (shared by every batch entry).
MatmulDims check_operands(const char* op, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  oc::require_float(op, {"a", &a});
  oc::require(op, {"a", &a});
  oc::require(op, {"b", &b});
  ANVIL_CHECK(b.dtype() == a.dtype(), "op ", op, ": b has dtype ", dtype_name(b.dtype()), " but a has ",
              dtype_name(a.dtype()), " (they must match)");
  ANVIL_CHECK(a.dim() >= 2 && b.dim() >= 2, "op ", op, ": a ", shape_string(a.shape()), " and b ",
              shape_string(b.shape()), " must have rank >= 2");
  ANVIL_CHECK(b.dim() == 2 || b.dim() == a.dim(), "op ", op, ": b ", shape_string(b.shape()),
              " must be 2-D or have a's rank (a is ", shape_string(a.shape()), ")");
  for (int64_t axis = 0; b.dim() > 2 && axis < a.dim() - 2; ++axis) {
    ANVIL_CHECK(a.size(axis) == b.size(axis), "op ", op, ": batch dims of a ", shape_string(a.shape()), " and b ",
                shape_string(b.shape()), " differ");
  }
  const MatmulDims dims{trans_a ? a.size(-1) : a.size(-2), trans_b ? b.size(-2) : b.size(-1),
                        trans_a ? a.size(-2) : a.size(-1)};
  const int64_t k_of_b = trans_b ? b.size(-1) : b.size(-2);
  ANVIL_CHECK(dims.k == k_of_b, "op ", op, ": inner dims differ: op(a) from ", shape_string(a.shape()),
              (trans_a ? " (transposed)" : ""), " has K=", dims.k, ", op(b) from ", shape_string(b.shape()),
              (trans_b ? " (transposed)" : ""), " has K=", k_of_b);
  return dims;
}

// A result (out, grads) is stored as f32 or as the inputs' dtype.
void require_result_dtype(const char* op, const oc::Arg& arg, DType input_dtype) {
  oc::require_dtype(op, arg, {DType::F32, input_dtype});
}

// The shape of op(a) @ op(b): a's batch dims, then (M, N).
Shape product_shape(const Tensor& a, const MatmulDims& dims) {
  Shape shape(a.shape().begin(), a.shape().end() - 2);
  shape.push_back(dims.m);
  shape.push_back(dims.n);
  return shape;
}

// Batch entry `index` of a (..., R, C) tensor, as a 2-D view.
Tensor batch_entry(const Tensor& tensor, int64_t index) {
  return tensor.view({-1, tensor.size(-2), tensor.size(-1)}).select(0, index);
}

// grad_a of out = op(a) @ op(b).
void matmul_grad_a(Ctx& ctx, Tensor& grad_a, const Tensor& grad_out, const Tensor& a, const Tensor& b, bool trans_a,
                   bool trans_b, float beta) {
  if (!trans_a) {
    // grad_a (M, K) = G @ op(b)^T.
    matmul(ctx, grad_a, grad_out, b, false, !trans_b, 1.0F, beta);
  } else if (b.dim() == a.dim()) {
    // grad_a (K, M) = op(b) @ G^T, batched alike.
    matmul(ctx, grad_a, b, grad_out, trans_b, true, 1.0F, beta);
  } else {
    // A shared b as the left operand: one 2-D product per batch entry.
    const int64_t entries = a.numel() / (a.size(-2) * a.size(-1));
    for (int64_t index = 0; index < entries; ++index) {
      Tensor grad_entry = batch_entry(grad_a, index);
      matmul(ctx, grad_entry, b, batch_entry(grad_out, index), trans_b, true, 1.0F, beta);
    }
  }
}

// grad_b of out = op(a) @ op(b) for a batched like b (or everything 2-D).
void matmul_grad_b_batched(Ctx& ctx, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, bool trans_a,
                           bool trans_b, float beta) {
  if (!trans_b) {
    matmul(ctx, grad_b, a, grad_out, !trans_a, false, 1.0F, beta);  // (K, N) = op(a)^T @ G
  } else {
    matmul(ctx, grad_b, grad_out, a, true, trans_a, 1.0F, beta);  // (N, K) = G^T @ op(a)
  }
}

// grad_b of a 2-D b shared by a batched a: the sum over batch entries.
void matmul_grad_b_shared(Ctx& ctx, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, bool trans_a, bool trans_b,
                          float beta) {
  if (!trans_a) {
    // The batch entries are one tall matrix: (B*M, K) and (B*M, N); the product sums over them.
    const Tensor a_rows = a.view({-1, a.size(-1)});
    const Tensor grad_rows = grad_out.view({-1, grad_out.size(-1)});
    matmul_grad_b_batched(ctx, grad_b, grad_rows, a_rows, false, trans_b, beta);
    return;
  }
  // a stored (B, K, M): accumulate entry by entry, in f32 (rounded once at the end).
  Tensor sum = grad_b;
  if (grad_b.dtype() != DType::F32) {
    sum = ctx.empty(grad_b.shape(), DType::F32, grad_b.device());
    if (beta != 0.0F) copy(ctx, sum, grad_b);
  }
  const int64_t entries = a.numel() / (a.size(-2) * a.size(-1));
  for (int64_t index = 0; index < entries; ++index) {
    matmul_grad_b_batched(ctx, sum, batch_entry(grad_out, index), batch_entry(a, index), true, trans_b,
                          index == 0 ? beta : 1.0F);
  }
  if (sum.raw_data() != grad_b.raw_data()) copy(ctx, grad_b, sum);
}

}  // namespace

void matmul(Ctx& ctx, Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
            float beta) {
  constexpr const char* kOp = "matmul";
  const MatmulDims dims = check_operands(kOp, a, b, trans_a, trans_b);
  oc::require_shape(kOp, {"out", &out}, product_shape(a, dims));
  require_result_dtype(kOp, {"out", &out}, a.dtype());
  const Device device = oc::common_device(kOp, {{"out", &out}, {"a", &a}, {"b", &b}});
  ctx.backend(device).matmul(out, a, b, trans_a, trans_b, alpha, beta);
}

void linear(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  constexpr const char* kOp = "linear";
  const MatmulDims dims = check_operands(kOp, x, weight, false, true);
  oc::require_rank(kOp, {"x", &x}, 2);
  oc::require_rank(kOp, {"weight", &weight}, 2);
  oc::require(kOp, {"out", &out});
  oc::require_shape(kOp, {"out", &out}, {dims.m, dims.n});
  require_result_dtype(kOp, {"out", &out}, x.dtype());
  if (bias.defined()) {
    oc::require(kOp, {"bias", &bias});
    oc::require_shape(kOp, {"bias", &bias}, {dims.n});
    oc::require_dtype(kOp, {"bias", &bias}, {DType::F32, x.dtype()});
  }
  if (residual.defined()) {
    oc::require(kOp, {"residual", &residual});
    oc::require_shape(kOp, {"residual", &residual}, {dims.m, dims.n});
    oc::require_dtype(kOp, {"residual", &residual}, {out.dtype()});
  }
  const Device device =
      oc::common_device(kOp, {{"out", &out}, {"x", &x}, {"weight", &weight}, {"bias", &bias}, {"residual", &residual}});
  ctx.backend(device).linear(out, x, weight, bias, residual);
}

void linear_gelu(Ctx& ctx, Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  constexpr const char* kOp = "linear_gelu";
  const MatmulDims dims = check_operands(kOp, x, weight, false, true);
  oc::require_rank(kOp, {"x", &x}, 2);
  oc::require_rank(kOp, {"weight", &weight}, 2);
  for (const oc::Arg& arg : {oc::Arg{"out", &out}, oc::Arg{"pre", &pre}}) {
    oc::require(kOp, arg);
    oc::require_shape(kOp, arg, {dims.m, dims.n});
  }
  require_result_dtype(kOp, {"out", &out}, x.dtype());
  oc::require_dtype(kOp, {"pre", &pre}, {out.dtype()});
  ANVIL_CHECK(out.raw_data() != pre.raw_data(), "op ", kOp, ": out and pre must not alias");
  if (bias.defined()) {
    oc::require(kOp, {"bias", &bias});
    oc::require_shape(kOp, {"bias", &bias}, {dims.n});
    oc::require_dtype(kOp, {"bias", &bias}, {DType::F32, x.dtype()});
  }
  const Device device =
      oc::common_device(kOp, {{"out", &out}, {"pre", &pre}, {"x", &x}, {"weight", &weight}, {"bias", &bias}});
  ctx.backend(device).linear_gelu(out, pre, x, weight, bias);
}

void linear_gelu_input_grad(Ctx& ctx, Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                            const Tensor& pre) {
  constexpr const char* kOp = "linear_gelu_input_grad";
  const MatmulDims dims = check_operands(kOp, dout, weight, false, false);
  oc::require_rank(kOp, {"dout", &dout}, 2);
  oc::require_rank(kOp, {"weight", &weight}, 2);
  for (const oc::Arg& arg : {oc::Arg{"dpre", &dpre}, oc::Arg{"pre", &pre}}) {
    oc::require(kOp, arg);
    oc::require_shape(kOp, arg, {dims.m, dims.n});
  }
  require_result_dtype(kOp, {"dpre", &dpre}, dout.dtype());
  oc::require_dtype(kOp, {"pre", &pre}, {dpre.dtype()});
  if (dbias.defined()) {
    oc::require(kOp, {"dbias", &dbias});
    oc::require_shape(kOp, {"dbias", &dbias}, {dims.n});
    oc::require_dtype(kOp, {"dbias", &dbias}, {DType::F32});
  }
  const Device device =
      oc::common_device(kOp, {{"dpre", &dpre}, {"dbias", &dbias}, {"dout", &dout}, {"weight", &weight}, {"pre", &pre}});
  ctx.backend(device).linear_gelu_input_grad(dpre, dbias, dout, weight, pre);
}

void linear_weight_grad(Ctx& ctx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x) {
  constexpr const char* kOp = "linear_weight_grad";
  const MatmulDims dims = check_operands(kOp, dout, x, true, false);
  oc::require_rank(kOp, {"dout", &dout}, 2);
  oc::require_rank(kOp, {"x", &x}, 2);
  oc::require(kOp, {"dweight", &dweight});
  oc::require_shape(kOp, {"dweight", &dweight}, {dims.m, dims.n});
  oc::require_dtype(kOp, {"dweight", &dweight}, {DType::F32});
  if (dbias.defined()) {
    oc::require(kOp, {"dbias", &dbias});
    oc::require_shape(kOp, {"dbias", &dbias}, {dims.m});
    oc::require_dtype(kOp, {"dbias", &dbias}, {DType::F32});
  }
  const Device device = oc::common_device(kOp, {{"dweight", &dweight}, {"dbias", &dbias}, {"dout", &dout}, {"x", &x}});
  ctx.backend(device).linear_weight_grad(dweight, dbias, dout, x);
}

void matmul_backward(Ctx& ctx, Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a, const Tensor& b,
                     bool trans_a, bool trans_b, bool accumulate) {
  constexpr const char* kOp = "matmul_backward";
  const MatmulDims dims = check_operands(kOp, a, b, trans_a, trans_b);
  oc::require_shape(kOp, {"grad_out", &grad_out}, product_shape(a, dims));
  oc::require_float(kOp, {"grad_out", &grad_out});
  for (const oc::Arg& grad : {oc::Arg{"grad_a", &grad_a}, oc::Arg{"grad_b", &grad_b}}) {
    if (!grad.tensor->defined()) continue;
    require_result_dtype(kOp, grad, a.dtype());
  }
  if (grad_a.defined()) oc::require_same_shape(kOp, {"a", &a}, {"grad_a", &grad_a});
  if (grad_b.defined()) oc::require_same_shape(kOp, {"b", &b}, {"grad_b", &grad_b});
  const Device device =
      oc::common_device(kOp, {{"grad_a", &grad_a}, {"grad_b", &grad_b}, {"grad_out", &grad_out}, {"a", &a}, {"b", &b}});
  // The products below pair grad_out with a or b, which need one dtype: a grad_out of
  // another dtype (f32 logits of a bf16 matmul, say) is rounded to a's dtype first.
  Tensor grad = grad_out;
  if (grad_out.dtype() != a.dtype()) {
    grad = ctx.empty(grad_out.shape(), a.dtype(), device);
    copy(ctx, grad, grad_out);
  }
  const float beta = accumulate ? 1.0F : 0.0F;
  if (grad_a.defined()) matmul_grad_a(ctx, grad_a, grad, a, b, trans_a, trans_b, beta);
  if (!grad_b.defined()) return;
  if (b.dim() == 2 && a.dim() > 2) {
    matmul_grad_b_shared(ctx, grad_b, grad, a, trans_a, trans_b, beta);
  } else {
    matmul_grad_b_batched(ctx, grad_b, grad, a, trans_a, trans_b, beta);
  }
}

}  // namespace anvil
