// CudaBackend: self-attention forward and backward (kernels in attention_*.cu).
#include <cmath>

#include "cuda/attention_kernels.h"
#include "cuda/cuda_backend.h"
#include "cuda/device_guard.h"

namespace anvil::cuda {

namespace {

AttentionShape attention_shape(const Tensor& q, const Tensor& k, const AttentionParams& params) {
  AttentionShape shape;
  shape.batch = q.size(0);
  shape.seq = q.size(1);
  shape.q_heads = q.size(2);
  shape.kv_heads = k.size(2);
  shape.head_dim = q.size(3);
  shape.scale = params.scale != 0.0F ? params.scale : 1.0F / std::sqrt(static_cast<float>(shape.head_dim));
  shape.causal = params.causal;
  return shape;
}

}  // namespace

bool CudaBackend::attention_supports(OpKind op, DType dtype) {
  return (op == OpKind::Attention || op == OpKind::AttentionBackward) &&
         (dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16);
}

void CudaBackend::attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                            const AttentionParams& params) {
  if (q.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  launch_attention_forward(attention_shape(q, k, params), q.dtype(), q.raw_data(), k.raw_data(), v.raw_data(),
                           out.raw_data(), lse.defined() ? lse.data<float>() : nullptr, stream_);
}

void CudaBackend::attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                     const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                     const AttentionParams& params) {
  if (q.numel() == 0) return;
  const DeviceGuard guard(device_index_);
  const AttentionShape shape = attention_shape(q, k, params);
  // rowsum(dout * out) per query row; freed to the cache at once, the stream orders reuse.
  const Tensor delta = Tensor::empty({shape.batch, shape.q_heads, shape.seq}, DType::F32, *allocator_);
  // The Reference implementation's Delta is sum_j P dP in f32 (exact O); Blocked takes it
  // from `out` as stored, like the CPU Blocked kernels.
  const bool exact_delta = params.impl == AttentionImpl::Reference;
  // The tensor-core path accumulates dQ in f32 over the key blocks (FlashAttention-2's scheme).
  Tensor dq_accum;
  if (const int64_t elements = attention_backward_dq_accum_elements(shape, q.dtype()); elements > 0) {
    dq_accum = Tensor::empty({elements}, DType::F32, *allocator_);
  }
  launch_attention_backward(shape, q.dtype(), exact_delta, dout.raw_data(), q.raw_data(), k.raw_data(), v.raw_data(),
                            out.raw_data(), lse.data<const float>(), dq.raw_data(), dk.raw_data(), dv.raw_data(),
                            delta.data<float>(), dq_accum.defined() ? dq_accum.data<float>() : nullptr, stream_);
}

}  // namespace anvil::cuda
