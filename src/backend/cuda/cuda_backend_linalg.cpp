// CudaBackend's linalg group: matmul through cuBLASLt, quantized_matmul through its own
// kernels, which ops the group supports, and the index download the paged ops check with.
#include "anvil/core/error.h"
#include "cuda/cast_kernels.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"
#include "cuda/device_guard.h"
#include "cuda/elementwise_kernels.h"
#include "cuda/float_buffer.h"
#include "cuda/quantized_matmul_kernels.h"
#include "cuda/scratch_buffer.h"

namespace anvil::cuda {
namespace {

bool is_float_storage(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16; }

// The batched problem of out (..., M, N) = alpha * op(a) @ op(b) + beta * out.
RowMajorGemm describe(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
                      float beta) {
  RowMajorGemm g;
  g.input_dtype = a.dtype();
  g.output_dtype = out.dtype();
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.m = out.size(-2);
  g.n = out.size(-1);
  g.k = trans_a ? a.size(-2) : a.size(-1);
  g.batch = out.numel() / (g.m * g.n);
  g.stride_a = g.m * g.k;
  g.stride_b = b.dim() == 2 ? 0 : g.k * g.n;
  g.stride_out = g.m * g.n;
  if (g.stride_b == 0 && !trans_a) {
    // A shared b: the batch entries' rows of a and out form one taller matrix.
    g.m *= g.batch;
    g.batch = 1;
  }
  g.a = a.raw_data();
  g.b = b.raw_data();
  g.out = out.raw_data();
  g.alpha = alpha;
  g.beta = beta;
  return g;
}

}  // namespace

bool CudaBackend::linalg_supports(OpKind op, DType dtype) {
  switch (op) {
    case OpKind::Matmul:
    case OpKind::KvCacheWrite:
    case OpKind::RopeKvCacheWrite:
    case OpKind::PagedAttention:
      return is_float_storage(dtype);
    case OpKind::Argmax:
    case OpKind::TopKFilter:
    case OpKind::TopPFilter:
    case OpKind::MinPFilter:
    case OpKind::SampleMultinomial:
      return dtype == DType::F32;
    case OpKind::QuantizedMatmul:
      return quantized_matmul_supported(dtype);
    case OpKind::QuantizeActivations:
      return dtype == DType::F32;
    default:
      return false;
  }
}

void CudaBackend::matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha,
                         float beta) {
  if (out.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  const RowMajorGemm gemm = describe(out, a, b, trans_a, trans_b, alpha, beta);
  matmul_.run(cublas_lt(), gemm, *allocator_, stream_);
}

void CudaBackend::linear(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& residual) {
  if (out.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  // One GEMM with the bias in its epilogue and the residual as C (beta = 1). A bias of
  // another dtype than out, or a problem cuBLASLt has no such algo for, is composed instead.
  const bool fused_bias = !bias.defined() || bias.dtype() == out.dtype();
  if (fused_bias) {
    RowMajorGemm gemm = describe(out, x, weight, false, true, 1.0F, residual.defined() ? 1.0F : 0.0F);
    gemm.bias = bias.defined() ? bias.raw_data() : nullptr;
    gemm.c = residual.defined() ? residual.raw_data() : nullptr;
    if (matmul_.run(cublas_lt(), gemm, *allocator_, stream_)) return;
  }
  Backend::linear(out, x, weight, bias, residual);
}

void CudaBackend::linear_gelu(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (out.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  // cuBLASLt's GELU is good to ~1e-4 relative: bf16 / f16 outputs only (f32 composes).
  if (out.dtype() != DType::F32 && (!bias.defined() || bias.dtype() == out.dtype())) {
    RowMajorGemm gemm = describe(out, x, weight, false, true, 1.0F, 0.0F);
    gemm.bias = bias.defined() ? bias.raw_data() : nullptr;
    gemm.epilogue = GemmEpilogue::GeluAux;
    gemm.aux = pre.raw_data();
    if (matmul_.run(cublas_lt(), gemm, *allocator_, stream_)) return;
  }
  Backend::linear_gelu(out, pre, x, weight, bias);
}

void CudaBackend::linear_gelu_input_grad(Tensor& dpre, Tensor& dbias, const Tensor& dout, const Tensor& weight,
                                         const Tensor& pre) {
  if (dpre.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  // cuBLASLt's GELU derivative is good to ~3e-3 relative: below bf16 / f16 resolution, not
  // f32's (f32 composes the GEMM and the exact gelu_backward kernel).
  // (DGELU_BGRAD with an f32 bias gradient for bf16 output is rejected by cuBLASLt 13: the
  // bias gradient is a column sum after the GEMM; training takes it from the BGRADB epilogue
  // of the weight-gradient GEMM instead.)
  if (dpre.dtype() != DType::F32) {
    RowMajorGemm gemm = describe(dpre, dout, weight, false, false, 1.0F, 0.0F);
    gemm.epilogue = GemmEpilogue::DGelu;
    gemm.aux = const_cast<void*>(pre.raw_data());  // read only: DGELU's aux is an input
    if (matmul_.run(cublas_lt(), gemm, *allocator_, stream_)) {
      if (dbias.defined()) add_column_sums(dbias, dpre);
      return;
    }
  }
  Backend::linear_gelu_input_grad(dpre, dbias, dout, weight, pre);
}

void CudaBackend::linear_weight_grad(Tensor& dweight, Tensor& dbias, const Tensor& dout, const Tensor& x) {
  if (dweight.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  if (!dbias.defined() || dout.size(0) == 0) {
    matmul(dweight, dout, x, true, false, 1.0F, 1.0F);
    return;
  }
  // The epilogue overwrites its bias gradient: sums into scratch, then one add into dbias.
  const int64_t features = dbias.numel();
  const ScratchBuffer sums(*allocator_, static_cast<size_t>(features) * sizeof(float));
  RowMajorGemm gemm = describe(dweight, dout, x, true, false, 1.0F, 1.0F);
  gemm.epilogue = GemmEpilogue::BiasGradA;
  gemm.bias_grad = sums.as<float>();
  if (matmul_.run(cublas_lt(), gemm, *allocator_, stream_)) {
    launch_broadcast_binary(BinaryOp::Add, floats(dbias), const_floats(dbias), ConstFloatBuffer{sums.get(), DType::F32},
                            features, features, stream_);
    return;
  }
  Backend::linear_weight_grad(dweight, dbias, dout, x);
}

void CudaBackend::quantized_matmul(Tensor& out, const Tensor& x, const Tensor& weight) {
  if (x.size(0) == 0 || weight.size(0) == 0) return;  // empty output
  const DeviceGuard guard(device_index_);
  if (is_activation_codes(x.dtype())) {  // quantised already (by the op that made x)
    const QuantizedMatmulArgs args{weight.dtype(), weight.raw_data(), nullptr,  out.data<float>(),
                                   x.size(0),      weight.size(0),    x.size(1)};
    launch_quantized_matmul_codes(
        args, activations_at(const_cast<void*>(x.raw_data()), x.dtype(), x.size(0), x.size(1)), stream_);
    return;
  }
  if (x.dtype() != DType::F32) return half_x_matmul(out, x, weight);
  const QuantizedMatmulArgs args{weight.dtype(), weight.raw_data(), x.data<const float>(), out.data<float>(), x.size(0),
                                 weight.size(0), x.size(1)};
  if (!dtype_info(weight.dtype()).is_quantized) {
    const bool half_weight = weight.dtype() == DType::BF16 || weight.dtype() == DType::F16;
    if (half_weight && x.size(0) >= kTensorCoreMinRows) return half_weight_gemm(out, x, weight);
    launch_plain_weight_matmul(args, stream_);
    return;
  }
  // x quantised to 8-bit blocks once: codes (M, K) and scales (M, K / block).
  const QuantizedActivationLayout layout = activation_layout(weight.dtype(), x.size(0), x.size(1));
  const ScratchBuffer scratch(*allocator_, layout.total_bytes);
  launch_quantized_matmul(args, layout, scratch.get(), stream_);
}

void CudaBackend::quantize_activations(Tensor& out, const Tensor& x) {
  const DeviceGuard guard(device_index_);
  const int64_t k = x.size(-1);
  const int64_t m = x.numel() / k;
  launch_quantize_activations(x.data<const float>(), m, k, activations_at(out.raw_data(), out.dtype(), m, k), stream_);
}

void CudaBackend::half_x_matmul(Tensor& out, const Tensor& x, const Tensor& weight) {
  // x (M, K) in the weight's f16/bf16: the GEMM as it is, or the GEMV kernel on an f32 copy.
  if (x.size(0) >= kTensorCoreMinRows) return half_weight_gemm(out, x, weight);
  const ScratchBuffer x_f32(*allocator_, static_cast<size_t>(x.numel()) * sizeof(float));
  launch_cast(x.dtype(), x.raw_data(), DType::F32, x_f32.get(), x.numel(), stream_);
  const QuantizedMatmulArgs args{weight.dtype(),    weight.raw_data(), static_cast<const float*>(x_f32.get()),
                                 out.data<float>(), x.size(0),         weight.size(0),
                                 x.size(1)};
  launch_plain_weight_matmul(args, stream_);
}

void CudaBackend::half_weight_gemm(Tensor& out, const Tensor& x, const Tensor& weight) {
  // x (M, K) f32 is cast to the weight's dtype once (unless it comes in it); out (M, N) =
  // x @ weight^T in cuBLASLt with f32 accumulation and output.
  const int64_t m = x.size(0);
  const int64_t k = x.size(1);
  const bool cast = x.dtype() != weight.dtype();
  const ScratchBuffer x_half(*allocator_, cast ? static_cast<size_t>(dtype_bytes_for(weight.dtype(), m * k)) : 0);
  if (cast) launch_cast(DType::F32, x.raw_data(), weight.dtype(), x_half.get(), m * k, stream_);
  RowMajorGemm gemm;
  gemm.input_dtype = weight.dtype();
  gemm.output_dtype = DType::F32;
  gemm.trans_b = true;
  gemm.m = m;
  gemm.n = weight.size(0);
  gemm.k = k;
  gemm.stride_a = m * k;
  gemm.stride_out = m * gemm.n;
  gemm.a = cast ? x_half.get() : x.raw_data();
  gemm.b = weight.raw_data();
  gemm.out = out.raw_data();
  matmul_.run(cublas_lt(), gemm, *allocator_, stream_);
}

std::vector<int32_t> CudaBackend::download_i32(const Tensor& tensor) {
  std::vector<int32_t> values(static_cast<size_t>(tensor.numel()));
  if (values.empty()) return values;
  ANVIL_CUDA_CHECK(cudaMemcpyAsync(values.data(), tensor.raw_data(), values.size() * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
  ANVIL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return values;
}

}  // namespace anvil::cuda
