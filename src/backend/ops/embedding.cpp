#include "anvil/ops/embedding.h"

#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

void embedding(Ctx& ctx, Tensor& out, const Tensor& table, const Tensor& ids) {
  constexpr const char* kOp = "embedding";
  oc::require_float(kOp, {"table", &table});
  oc::require_rank(kOp, {"table", &table}, 2);
  oc::require_dtype(kOp, {"ids", &ids}, {DType::I32});
  oc::require_rank(kOp, {"ids", &ids}, 1);
  oc::require_float(kOp, {"out", &out});
  oc::require_shape(kOp, {"out", &out}, {ids.size(0), table.size(1)});
  const Device device = oc::common_device(kOp, {{"out", &out}, {"table", &table}, {"ids", &ids}});
  // Ids are checked against V by the backend, which can read them where they live.
  ctx.backend(device).embedding(out, table, ids);
}

void embedding_backward(Ctx& ctx, Tensor& grad_table, const Tensor& grad_out, const Tensor& ids) {
  constexpr const char* kOp = "embedding_backward";
  oc::require_dtype(kOp, {"grad_table", &grad_table}, {DType::F32});
  oc::require_rank(kOp, {"grad_table", &grad_table}, 2);
  oc::require_dtype(kOp, {"ids", &ids}, {DType::I32});
  oc::require_rank(kOp, {"ids", &ids}, 1);
  oc::require_float(kOp, {"grad_out", &grad_out});
  oc::require_shape(kOp, {"grad_out", &grad_out}, {ids.size(0), grad_table.size(1)});
  const Device device = oc::common_device(kOp, {{"grad_table", &grad_table}, {"grad_out", &grad_out}, {"ids", &ids}});
  ctx.backend(device).embedding_backward(grad_table, grad_out, ids);
}

}  // namespace anvil
