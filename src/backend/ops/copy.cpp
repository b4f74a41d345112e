#include "anvil/ops/copy.h"

#include "ops/op_checks.h"

namespace anvil {

void copy(Ctx& ctx, Tensor& dst, const Tensor& src) {
  ANVIL_CHECK(dst.defined() && src.defined(), "op copy: undefined argument");
  ANVIL_CHECK(dst.shape() == src.shape(), "op copy: dst shape ", shape_string(dst.shape()), " != src shape ",
              shape_string(src.shape()));
  ANVIL_CHECK(dst.is_contiguous(), "op copy: dst must be contiguous");
  // Host<->device transfers are done by the device's backend.
  const Device device = dst.device().is_cpu() ? src.device() : dst.device();
  ctx.backend(device).copy(dst, src);
}

}  // namespace anvil
