#include "anvil/ops/attention.h"

#include <cmath>

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

namespace {

// Checks q (B, T, Hq, D) and k/v (B, T, Hkv, D) against each other and the params.
void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& params) {
  oc::require_float(op, {"q", &q});
  oc::require_rank(op, {"q", &q}, 4);
  oc::require_rank(op, {"k", &k}, 4);
  oc::require_dtype(op, {"k", &k}, {q.dtype()});
  oc::require_same_shape(op, {"k", &k}, {"v", &v});
  oc::require_dtype(op, {"v", &v}, {q.dtype()});
  const int64_t q_heads = q.size(2);
  const int64_t kv_heads = k.size(2);
  ANVIL_CHECK(k.size(0) == q.size(0) && k.size(1) == q.size(1) && k.size(3) == q.size(3), "op ", op, ": k ",
              shape_string(k.shape()), " must match q ", shape_string(q.shape()), " in batch, sequence and head_dim");
  ANVIL_CHECK(q.size(3) > 0, "op ", op, ": head_dim of q ", shape_string(q.shape()), " must be positive");
  ANVIL_CHECK(q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0, "op ", op, ": query heads (", q_heads,
              ") must be a positive multiple of kv heads (", kv_heads, ")");
  ANVIL_CHECK(std::isfinite(params.scale) && params.scale >= 0.0F, "op ", op, ": scale ", params.scale,
              " must be finite and >= 0 (0 means 1/sqrt(head_dim))");
}

// lse is (B, Hq, T) f32.
void check_lse(const char* op, const Tensor& lse, const Tensor& q) {
  oc::require_shape(op, {"lse", &lse}, {q.size(0), q.size(2), q.size(1)});
  oc::require_dtype(op, {"lse", &lse}, {DType::F32});
}

// A gradient or output argument has the shape and dtype of its input.
void check_like(const char* op, const oc::Arg& arg, const oc::Arg& like) {
  oc::require_same_shape(op, like, arg);
  oc::require_dtype(op, arg, {like.tensor->dtype()});
}

}  // namespace

void attention(Ctx& ctx, Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionParams& params) {
  constexpr const char* kOp = "attention";
  check_qkv(kOp, q, k, v, params);
  check_like(kOp, {"out", &out}, {"q", &q});
  if (lse.defined()) check_lse(kOp, lse, q);
  const Device device = oc::common_device(kOp, {{"out", &out}, {"lse", &lse}, {"q", &q}, {"k", &k}, {"v", &v}});
  ctx.backend(device).attention(out, lse, q, k, v, params);
}

void attention_backward(Ctx& ctx, Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionParams& params) {
  constexpr const char* kOp = "attention_backward";
  check_qkv(kOp, q, k, v, params);
  check_like(kOp, {"out", &out}, {"q", &q});
  check_like(kOp, {"dout", &dout}, {"q", &q});
  check_like(kOp, {"dq", &dq}, {"q", &q});
  check_like(kOp, {"dk", &dk}, {"k", &k});
  check_like(kOp, {"dv", &dv}, {"v", &v});
  check_lse(kOp, lse, q);
  const Device device = oc::common_device(kOp, {{"dq", &dq},
                                                {"dk", &dk},
                                                {"dv", &dv},
                                                {"dout", &dout},
                                                {"q", &q},
                                                {"k", &k},
                                                {"v", &v},
                                                {"out", &out},
                                                {"lse", &lse}});
  ctx.backend(device).attention_backward(dq, dk, dv, dout, q, k, v, out, lse, params);
}

}  // namespace anvil
