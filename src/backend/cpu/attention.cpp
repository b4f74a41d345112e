// Self-attention on the CPU: picks the Reference or Blocked kernels (params.impl) and
// holds the pieces both share.
#include <cmath>
#include <vector>

#include "cpu/attention_kernels.h"
#include "cpu/cpu_backend.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

AttentionDims attention_dims(const Tensor& q, const Tensor& k, const AttentionParams& params) {
  AttentionDims dims;
  dims.batch = q.size(0);
  dims.seq = q.size(1);
  dims.q_heads = q.size(2);
  dims.kv_heads = k.size(2);
  dims.head_dim = q.size(3);
  dims.scale = params.scale != 0.0F ? params.scale : 1.0F / std::sqrt(static_cast<float>(dims.head_dim));
  dims.causal = params.causal;
  return dims;
}

void store_kv_gradient(ThreadPool& pool, const AttentionDims& dims, const float* partials, int64_t row_stride,
                       int64_t head_stride, Tensor& dst) {
  const int64_t d = dims.head_dim;
  const int64_t group = dims.group();
  const int64_t rows = dims.batch * dims.seq * dims.kv_heads;  // (b, t, kv head) in dst order
  pool.parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t kv_head = row % dims.kv_heads;
      const int64_t t = (row / dims.kv_heads) % dims.seq;
      const int64_t b = row / (dims.kv_heads * dims.seq);
      float* sum = output_row(dst, row, d, scratch);
      for (int64_t c = 0; c < d; ++c) sum[c] = 0.0F;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = b * dims.q_heads + kv_head * group + g;
        const float* part = partials + head * head_stride + t * row_stride;
        for (int64_t c = 0; c < d; ++c) sum[c] += part[c];
      }
      store_row(dst, row, d, sum);
    }
  });
}

void CpuBackend::attention(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                           const AttentionParams& params) {
  if (q.numel() == 0) return;
  const AttentionDims dims = attention_dims(q, k, params);
  if (params.impl == AttentionImpl::Reference) {
    attention_reference_forward(pool_, dims, out, lse, q, k, v);
  } else {
    attention_blocked_forward(pool_, isa_, dims, out, lse, q, k, v);
  }
}

void CpuBackend::attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                    const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                    const AttentionParams& params) {
  if (q.numel() == 0) return;
  const AttentionDims dims = attention_dims(q, k, params);
  if (params.impl == AttentionImpl::Reference) {
    attention_reference_backward(pool_, dims, dq, dk, dv, dout, q, k, v, lse);
  } else {
    attention_blocked_backward(pool_, isa_, dims, dq, dk, dv, dout, q, k, v, out, lse);
  }
}

}  // namespace anvil::cpu
