// Backend defaults of the fused training ops (linear_gelu, linear_gelu_input_grad,
// linear_weight_grad, layer_norm_backward_residual, cross_entropy_fused): each composes the
// plain ops it fuses, so a backend without a fused kernel (the CPU) computes the reference.
#include "anvil/backend/backend.h"

namespace anvil {

void Backend::linear_gelu(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  linear(pre, x, weight, bias, Tensor());
  gelu(out, pre);
}

void Backend::linear_gelu_input_grad(Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                                     const Tensor& pre) {
  Tensor product = Tensor::empty(dpre.shape(), dpre.dtype(), allocator());
  matmul(product, dout, weight, false, false, 1.0F, 0.0F);
  gelu_backward(dpre, product, pre);
  if (dbias.defined()) add_column_sums(dbias, dpre);
}

void Backend::linear_weight_grad(Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x) {
  matmul(dweight, dout, x, true, false, 1.0F, 1.0F);
  if (dbias.defined()) add_column_sums(dbias, dout);
}

void Backend::layer_norm_backward_residual(Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias,
                                           Tensor& dres_sums, const Tensor& dout, const Tensor& x, const Tensor& weight,
                                           const Tensor& mean, const Tensor& rstd) {
  Tensor dx = Tensor::empty(dres.shape(), DType::F32, allocator());
  layer_norm_backward(dx, dweight, dbias, dout, x, weight, mean, rstd);
  add(dres, dres, dx);
  if (dres_low.defined()) copy(dres_low, dres);
  if (dres_sums.defined()) add_column_sums(dres_sums, dres);
}

void Backend::cross_entropy_fused(Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                  const Tensor& targets) {
  cross_entropy(losses, logits, targets);
  if (dlogits.raw_data() != logits.raw_data()) {
    cross_entropy_backward(dlogits, dlosses, logits, targets);
    return;
  }
  Tensor gradient = Tensor::empty(dlogits.shape(), dlogits.dtype(), allocator());
  cross_entropy_backward(gradient, dlosses, logits, targets);
  copy(dlogits, gradient);
}

}  // namespace anvil
