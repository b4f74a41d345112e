#include "ops/activation_codes.h"

#include "anvil/core/error.h"
#include "ops/op_checks.h"

namespace anvil::op_checks {

void require_activation_codes(const char* op, const Tensor& out) {
  require(op, {"out", &out});
  ANVIL_CHECK(out.dim() >= 1, "op ", op, ": argument 'out' must have at least one dimension");
  const int64_t block = dtype_info(out.dtype()).block_elems;
  ANVIL_CHECK(out.size(-1) % block == 0, "op ", op, ": argument 'out' ", shape_string(out.shape()), " of ",
              dtype_name(out.dtype()), " has rows of ", out.size(-1), ", not a multiple of its ", block,
              "-element blocks");
}

void produce_activations(Ctx& ctx, Backend& backend, OpKind op, Tensor& out,
                         const std::function<void(Tensor& target)>& produce) {
  if (!is_activation_codes(out.dtype()) || backend.writes_activation_codes(op)) {
    produce(out);
    return;
  }
  Tensor values = ctx.empty(out.shape(), DType::F32, backend.device());
  produce(values);
  backend.quantize_activations(out, values);
}

}  // namespace anvil::op_checks
