#include "anvil/ops/quantized_matmul.h"

#include "ops/activation_codes.h"
#include "ops/op_checks.h"

namespace anvil {

namespace oc = op_checks;

void quantized_matmul(Ctx& ctx, Tensor& out, const Tensor& x, const Tensor& weight) {
  constexpr const char* kOp = "quantized_matmul";
  oc::require(kOp, {"x", &x});
  // x is f32, or f16/bf16 like a weight of that dtype (a GEMM input made by the op before), or
  // the weight's 8-bit activations.
  const bool half_x = (x.dtype() == DType::BF16 || x.dtype() == DType::F16) && x.dtype() == weight.dtype();
  if (is_activation_codes(x.dtype())) {
    ANVIL_CHECK(activation_dtype_for(weight.dtype()) == x.dtype(), "op ", kOp, ": x of ", dtype_name(x.dtype()),
                " does not serve a weight of ", dtype_name(weight.dtype()), " (that takes ",
                activation_dtype_for(weight.dtype()) ? dtype_name(*activation_dtype_for(weight.dtype())) : "f32",
                " activations)");
  } else if (!half_x) {
    oc::require_dtype(kOp, {"x", &x}, {DType::F32});
  }
  ANVIL_CHECK(x.dim() >= 1, "op ", kOp, ": argument 'x' must have at least one dimension");
  oc::require_rank(kOp, {"weight", &weight}, 2);
  oc::require_dtype(kOp, {"weight", &weight},
                    {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K,
                     DType::Q6_K, DType::F32, DType::F16, DType::BF16});
  const int64_t k = weight.size(1);
  const int64_t n = weight.size(0);
  const int64_t block = dtype_info(weight.dtype()).block_elems;
  ANVIL_CHECK(k > 0, "op ", kOp, ": weight ", shape_string(weight.shape()), " has no columns");
  ANVIL_CHECK(k % block == 0, "op ", kOp, ": weight ", shape_string(weight.shape()), " of ", dtype_name(weight.dtype()),
              " has K = ", k, ", not a multiple of its ", block, "-element blocks");
  ANVIL_CHECK(x.size(-1) == k, "op ", kOp, ": argument 'x' ", shape_string(x.shape()), " has K = ", x.size(-1),
              " but weight ", shape_string(weight.shape()), " has K = ", k);
  Shape out_shape = x.shape();
  out_shape.back() = n;
  oc::require_shape(kOp, {"out", &out}, out_shape);
  oc::require_dtype(kOp, {"out", &out}, {DType::F32});
  const Device device = oc::common_device(kOp, {{"out", &out}, {"x", &x}, {"weight", &weight}});
  const int64_t rows = x.numel() / k;
  Tensor out_2d = out.view({rows, n});
  ctx.backend(device).quantized_matmul(out_2d, x.view({rows, k}), weight);
}

std::optional<DType> activation_dtype_for(DType weight_dtype) {
  switch (weight_dtype) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
      return DType::Q8Act;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8KAct;
    default:
      return std::nullopt;
  }
}

void quantize_activations(Ctx& ctx, Tensor& out, const Tensor& x) {
  constexpr const char* kOp = "quantize_activations";
  oc::require(kOp, {"x", &x});
  oc::require_dtype(kOp, {"x", &x}, {DType::F32});
  oc::require_dtype(kOp, {"out", &out}, {DType::Q8Act, DType::Q8KAct});
  oc::require_same_shape(kOp, {"x", &x}, {"out", &out});
  oc::require_activation_codes(kOp, out);
  const Device device = oc::common_device(kOp, {{"out", &out}, {"x", &x}});
  if (x.numel() == 0) return;
  ctx.backend(device).quantize_activations(out, x);
}

}  // namespace anvil
