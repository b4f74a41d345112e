// CudaBackend's pointwise, row-wise and optimizer ops: elementwise add/mul/scale, embedding,
// LayerNorm, RMSNorm, rope, activations, softmax, cross-entropy and AdamW. The free
// functions (src/backend/ops) have already checked shapes, dtypes and devices; these
// methods size the launches, take scratch from the caching allocator and queue the kernels
// on the backend's stream. Only the id / target range checks wait for the device.
#include <cstdint>
#include <limits>

#include "anvil/core/error.h"
#include "cuda/activation_kernels.h"
#include "cuda/adamw_kernels.h"
#include "cuda/column_sum_kernels.h"
#include "cuda/cross_entropy_kernels.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"
#include "cuda/elementwise_kernels.h"
#include "cuda/embedding_kernels.h"
#include "cuda/float_buffer.h"
#include "cuda/index_check_kernels.h"
#include "cuda/norm_kernels.h"
#include "cuda/rope_kernels.h"
#include "cuda/softmax_kernels.h"

namespace anvil::cuda {
namespace {

bool is_float_type(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16; }

// An optional tensor as a buffer whose data is null when the tensor is undefined.
ConstFloatBuffer optional_floats(const Tensor& tensor) {
  return tensor.defined() ? const_floats(tensor) : ConstFloatBuffer{nullptr, DType::F32};
}

float* optional_f32(Tensor& tensor) { return tensor.defined() ? tensor.data<float>() : nullptr; }

// Scratch for `arrays` per-block partial column-sum arrays of a norm backward (none: undefined).
Tensor norm_partials(Allocator& allocator, int64_t arrays, int64_t rows, int64_t channels) {
  if (arrays == 0) return {};
  return Tensor::empty({arrays * norm_backward_num_partials(rows) * channels}, DType::F32, allocator);
}

// Rows of a (..., C) tensor.
int64_t rows_of(const Tensor& tensor) {
  const int64_t channels = tensor.size(-1);
  return channels == 0 ? 0 : tensor.numel() / channels;
}

ActivationArgs activation_args(std::initializer_list<const Tensor*> inputs, std::initializer_list<Tensor*> outputs) {
  ActivationArgs args{};
  int i = 0;
  for (const Tensor* input : inputs) args.inputs[i++] = const_floats(*input);
  int o = 0;
  for (Tensor* output : outputs) args.outputs[o++] = floats(*output);
  return args;
}

}  // namespace

bool CudaBackend::supports_pointwise_ops(OpKind op, DType dtype) {
  switch (op) {
    case OpKind::AdamW:  // dtype: param's (f32 only; grad may be bf16)
      return dtype == DType::F32;
    case OpKind::Add:
    case OpKind::Mul:
    case OpKind::Scale:
    case OpKind::AddBackward:
    case OpKind::MulBackward:
    case OpKind::Embedding:
    case OpKind::EmbeddingBackward:
    case OpKind::LayerNorm:
    case OpKind::LayerNormBackward:
    case OpKind::RmsNorm:
    case OpKind::RmsNormBackward:
    case OpKind::AddRmsNorm:
    case OpKind::Rope:
    case OpKind::RopeBackward:
    case OpKind::Gelu:
    case OpKind::GeluBackward:
    case OpKind::Silu:
    case OpKind::SiluBackward:
    case OpKind::Swiglu:
    case OpKind::SwigluBackward:
    case OpKind::Softmax:
    case OpKind::SoftmaxBackward:
    case OpKind::CrossEntropy:
    case OpKind::CrossEntropyBackward:
      return is_float_type(dtype);
    default:
      return false;
  }
}

// ---- elementwise ----

void CudaBackend::add(Tensor& out, const Tensor& a, const Tensor& b) {
  const DeviceGuard guard(device_index_);
  launch_broadcast_binary(BinaryOp::Add, floats(out), const_floats(a), const_floats(b), a.numel(), b.numel(), stream_);
}

void CudaBackend::mul(Tensor& out, const Tensor& a, const Tensor& b) {
  const DeviceGuard guard(device_index_);
  launch_broadcast_binary(BinaryOp::Mul, floats(out), const_floats(a), const_floats(b), a.numel(), b.numel(), stream_);
}

void CudaBackend::scale(Tensor& out, const Tensor& a, float factor) {
  const DeviceGuard guard(device_index_);
  launch_scale(floats(out), const_floats(a), factor, a.numel(), stream_);
}

void CudaBackend::add_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out) {
  const DeviceGuard guard(device_index_);
  if (grad_b.defined() && grad_b.numel() > 0) {
    const int64_t cols = grad_b.numel();
    const int64_t rows = grad_out.numel() / cols;
    Tensor partials = Tensor::empty({column_sum_num_partials(rows) * cols}, DType::F32, *allocator_);
    launch_column_sums(const_floats(grad_out), ConstFloatBuffer{nullptr, DType::F32}, rows, cols,
                       partials.data<float>(), floats(grad_b), stream_);
  }
  if (!grad_a.defined() || grad_a.numel() == 0 || grad_a.raw_data() == grad_out.raw_data()) return;
  if (grad_a.dtype() == grad_out.dtype()) {
    ANVIL_CUDA_CHECK(cudaMemcpyAsync(grad_a.raw_data(), grad_out.raw_data(), static_cast<size_t>(grad_out.nbytes()),
                                     cudaMemcpyDeviceToDevice, stream_));
  } else {
    launch_scale(floats(grad_a), const_floats(grad_out), 1.0F, grad_out.numel(), stream_);  // exact: a dtype cast
  }
}

void CudaBackend::mul_backward(Tensor& grad_a, Tensor& grad_b, const Tensor& grad_out, const Tensor& a,
                               const Tensor& b) {
  const DeviceGuard guard(device_index_);
  // grad_b first: grad_a may alias grad_out (in-place backward), and grad_b reads grad_out.
  if (grad_b.defined() && grad_b.numel() > 0) {
    const int64_t cols = grad_b.numel();
    const int64_t rows = grad_out.numel() / cols;
    Tensor partials = Tensor::empty({column_sum_num_partials(rows) * cols}, DType::F32, *allocator_);
    launch_column_sums(const_floats(grad_out), const_floats(a), rows, cols, partials.data<float>(), floats(grad_b),
                       stream_);
  }
  if (grad_a.defined()) {
    launch_broadcast_binary(BinaryOp::Mul, floats(grad_a), const_floats(grad_out), const_floats(b), grad_out.numel(),
                            b.numel(), stream_);
  }
}

// ---- embedding ----

void CudaBackend::embedding(Tensor& out, const Tensor& table, const Tensor& ids) {
  const DeviceGuard guard(device_index_);
  const int64_t vocab = table.size(0);
  Tensor scratch = Tensor::empty({1}, DType::I64, *allocator_);
  if (const auto bad =
          find_first_out_of_range(ids.data<const int32_t>(), ids.numel(), 0, vocab, scratch.raw_data(), stream_)) {
    throw make_error("op embedding: id ", bad->value, " at position ", bad->position,
                     " is out of range for a table of V=", vocab, " rows");
  }
  launch_embedding(floats(out), const_floats(table), ids.data<const int32_t>(), ids.numel(), table.size(1), stream_);
}

void CudaBackend::embedding_backward(Tensor& grad_table, const Tensor& grad_out, const Tensor& ids) {
  const DeviceGuard guard(device_index_);
  const int64_t vocab = grad_table.size(0);
  Tensor scratch = Tensor::empty({1}, DType::I64, *allocator_);
  if (const auto bad =
          find_first_out_of_range(ids.data<const int32_t>(), ids.numel(), 0, vocab, scratch.raw_data(), stream_)) {
    throw make_error("op embedding_backward: id ", bad->value, " at position ", bad->position,
                     " is out of range for a table of V=", vocab, " rows");
  }
  if (ids.numel() == 0 || grad_table.size(1) == 0) return;
  const size_t scratch_bytes = embedding_backward_scratch_bytes(ids.numel(), vocab, grad_table.size(1));
  Tensor sort_scratch = Tensor::empty({static_cast<int64_t>(scratch_bytes)}, DType::U8, *allocator_);
  launch_embedding_backward(grad_table.data<float>(), const_floats(grad_out), ids.data<const int32_t>(), ids.numel(),
                            vocab, grad_table.size(1), sort_scratch.raw_data(), stream_);
}

// ---- normalisation ----

void CudaBackend::layer_norm(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& weight,
                             const Tensor& bias, float eps) {
  const DeviceGuard guard(device_index_);
  launch_layer_norm(floats(out), optional_f32(mean), optional_f32(rstd), const_floats(x), const_floats(weight),
                    optional_floats(bias), rows_of(x), x.size(-1), eps, stream_);
}

void CudaBackend::layer_norm_backward(Tensor& dx, Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x,
                                      const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  const DeviceGuard guard(device_index_);
  const int64_t rows = rows_of(x);
  const int64_t channels = x.size(-1);
  Tensor partials = norm_partials(*allocator_, dweight.defined() || dbias.defined() ? 2 : 0, rows, channels);
  launch_layer_norm_backward(floats(dx), optional_f32(dweight), optional_f32(dbias), const_floats(dout),
                             const_floats(x), const_floats(weight), mean.data<const float>(), rstd.data<const float>(),
                             rows, channels, optional_f32(partials), stream_);
}

void CudaBackend::layer_norm_backward_residual(Tensor& dres, Tensor& dres_low, Tensor& dweight, Tensor& dbias,
                                               Tensor& dres_sums, const Tensor& dout, const Tensor& x,
                                               const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  const DeviceGuard guard(device_index_);
  const int64_t rows = rows_of(x);
  const int64_t channels = x.size(-1);
  Tensor partials =
      norm_partials(*allocator_, dweight.defined() || dbias.defined() || dres_sums.defined() ? 3 : 0, rows, channels);
  if (launch_layer_norm_backward_residual(dres.data<float>(), dres_low.defined() ? dres_low.raw_data() : nullptr,
                                          optional_f32(dweight), optional_f32(dbias), optional_f32(dres_sums),
                                          dout.data<const float>(), x.data<const float>(), weight.data<const float>(),
                                          mean.data<const float>(), rstd.data<const float>(), rows, channels,
                                          optional_f32(partials), stream_)) {
    return;
  }
  Backend::layer_norm_backward_residual(dres, dres_low, dweight, dbias, dres_sums, dout, x, weight, mean, rstd);
}

void CudaBackend::rms_norm(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const DeviceGuard guard(device_index_);
  launch_rms_norm(floats(out), optional_f32(rstd), const_floats(x), const_floats(weight), rows_of(x), x.size(-1), eps,
                  stream_);
}

void CudaBackend::add_rms_norm(Tensor& out, Tensor& x, const Tensor& delta, const Tensor& weight, float eps) {
  const DeviceGuard guard(device_index_);
  if (is_activation_codes(out.dtype())) {  // one kernel where the rows suit it, else norm then quantiser
    const QuantizedActivations codes = activations_at(out.raw_data(), out.dtype(), rows_of(x), x.size(-1));
    if (launch_add_rms_norm_codes(codes, floats(x), const_floats(delta), const_floats(weight), rows_of(x), x.size(-1),
                                  eps, stream_)) {
      return;
    }
    Tensor values = Tensor::empty(x.shape(), DType::F32, *allocator_);
    add_rms_norm(values, x, delta, weight, eps);
    quantize_activations(out, values);
    return;
  }
  launch_add_rms_norm(floats(out), floats(x), const_floats(delta), const_floats(weight), rows_of(x), x.size(-1), eps,
                      stream_);
}

void CudaBackend::rms_norm_backward(Tensor& dx, Tensor& dweight, const Tensor& dout, const Tensor& x,
                                    const Tensor& weight, const Tensor& rstd) {
  const DeviceGuard guard(device_index_);
  const int64_t rows = rows_of(x);
  const int64_t channels = x.size(-1);
  Tensor partials = norm_partials(*allocator_, dweight.defined() ? 1 : 0, rows, channels);
  launch_rms_norm_backward(floats(dx), optional_f32(dweight), const_floats(dout), const_floats(x), const_floats(weight),
                           rstd.data<const float>(), rows, channels, optional_f32(partials), stream_);
}

// ---- rotary embedding ----

void CudaBackend::rope(Tensor& out, const Tensor& x, const Tensor& positions, const RopeParams& params) {
  const DeviceGuard guard(device_index_);
  launch_rope(floats(out), const_floats(x), positions.data<const int32_t>(), x.size(0), x.size(1), x.size(2), params,
              1.0, stream_);
}

void CudaBackend::rope_backward(Tensor& dx, const Tensor& dout, const Tensor& positions, const RopeParams& params) {
  const DeviceGuard guard(device_index_);
  // The rotation is orthogonal: its transpose is the rotation by the opposite angle.
  launch_rope(floats(dx), const_floats(dout), positions.data<const int32_t>(), dout.size(0), dout.size(1), dout.size(2),
              params, -1.0, stream_);
}

// ---- activations ----

void CudaBackend::gelu(Tensor& out, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  launch_activation(ActivationOp::Gelu, activation_args({&x}, {&out}), x.numel(), stream_);
}

void CudaBackend::gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  launch_activation(ActivationOp::GeluBackward, activation_args({&dout, &x}, {&dx}), x.numel(), stream_);
}

void CudaBackend::silu(Tensor& out, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  launch_activation(ActivationOp::Silu, activation_args({&x}, {&out}), x.numel(), stream_);
}

void CudaBackend::silu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  launch_activation(ActivationOp::SiluBackward, activation_args({&dout, &x}, {&dx}), x.numel(), stream_);
}

void CudaBackend::swiglu(Tensor& out, const Tensor& gate, const Tensor& up) {
  const DeviceGuard guard(device_index_);
  if (is_activation_codes(out.dtype())) {  // one kernel where the rows suit it, else swiglu then quantiser
    const QuantizedActivations codes = activations_at(out.raw_data(), out.dtype(), rows_of(gate), gate.size(-1));
    if (launch_swiglu_codes(codes, const_floats(gate), const_floats(up), gate.numel(), stream_)) return;
    Tensor values = Tensor::empty(gate.shape(), DType::F32, *allocator_);
    swiglu(values, gate, up);
    quantize_activations(out, values);
    return;
  }
  launch_activation(ActivationOp::Swiglu, activation_args({&gate, &up}, {&out}), gate.numel(), stream_);
}

void CudaBackend::swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                                  const Tensor& up) {
  const DeviceGuard guard(device_index_);
  launch_activation(ActivationOp::SwigluBackward, activation_args({&dout, &gate, &up}, {&dgate, &dup}), gate.numel(),
                    stream_);
}

// ---- softmax and cross-entropy ----

void CudaBackend::softmax(Tensor& out, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  launch_softmax(floats(out), const_floats(x), rows_of(x), x.size(-1), stream_);
}

void CudaBackend::softmax_backward(Tensor& dx, const Tensor& dout, const Tensor& y) {
  const DeviceGuard guard(device_index_);
  launch_softmax_backward(floats(dx), const_floats(dout), const_floats(y), rows_of(y), y.size(-1), stream_);
}

namespace {

// Throws for the first row whose target is >= vocab (negative targets are ignored rows).
void check_targets(const char* op, const Tensor& targets, int64_t vocab, void* scratch, cudaStream_t stream) {
  const auto bad = find_first_out_of_range(targets.data<const int32_t>(), targets.numel(),
                                           std::numeric_limits<int32_t>::min(), vocab, scratch, stream);
  if (bad) {
    throw make_error("op ", op, ": row ", bad->position, " has target ", bad->value, ", but the vocabulary has ", vocab,
                     " entries");
  }
}

}  // namespace

void CudaBackend::cross_entropy(Tensor& losses, const Tensor& logits, const Tensor& targets) {
  const DeviceGuard guard(device_index_);
  Tensor scratch = Tensor::empty({1}, DType::I64, *allocator_);
  check_targets("cross_entropy", targets, logits.size(1), scratch.raw_data(), stream_);
  launch_cross_entropy(losses.data<float>(), const_floats(logits), targets.data<const int32_t>(), logits.size(0),
                       logits.size(1), stream_);
}

void CudaBackend::cross_entropy_backward(Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                         const Tensor& targets) {
  const DeviceGuard guard(device_index_);
  Tensor scratch = Tensor::empty({1}, DType::I64, *allocator_);
  check_targets("cross_entropy_backward", targets, logits.size(1), scratch.raw_data(), stream_);
  launch_cross_entropy_backward(floats(dlogits), dlosses.data<const float>(), const_floats(logits),
                                targets.data<const int32_t>(), logits.size(0), logits.size(1), stream_);
}

void CudaBackend::cross_entropy_fused(Tensor& losses, Tensor& dlogits, const Tensor& dlosses, const Tensor& logits,
                                      const Tensor& targets) {
  const DeviceGuard guard(device_index_);
  Tensor scratch = Tensor::empty({1}, DType::I64, *allocator_);
  check_targets("cross_entropy_fused", targets, logits.size(1), scratch.raw_data(), stream_);
  launch_cross_entropy_fused(losses.data<float>(), floats(dlogits), dlosses.data<const float>(), const_floats(logits),
                             targets.data<const int32_t>(), logits.size(0), logits.size(1), stream_);
}

// ---- optimizer ----

void CudaBackend::adamw(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params) {
  const DeviceGuard guard(device_index_);
  launch_adamw(param.data<float>(), m.data<float>(), v.data<float>(), const_floats(grad), param.numel(), params,
               stream_);
}

void CudaBackend::adamw_runs(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                             std::span<const AdamWRun> runs, Tensor& param_low) {
  const DeviceGuard guard(device_index_);
  launch_adamw_runs(param.data<float>(), m.data<float>(), v.data<float>(), const_floats(grad),
                    param_low.defined() ? param_low.raw_data() : nullptr, runs, params, stream_);
}

}  // namespace anvil::cuda
