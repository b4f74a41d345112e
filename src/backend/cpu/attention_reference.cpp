// Reference attention on the CPU: for each (batch, query head) the full (T, T) matrix of
// scores is materialised, softmaxed row by row, and multiplied out. Plain loops in f32;
// the Blocked kernels are checked against this (and both against float64 in the tests).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention_kernels.h"
#include "cpu/row_io.h"

namespace anvil::cpu {

namespace {

// Copies the T rows of one head of x into dst (T, D) as f32; the row of position t is
// first_row + t * row_step in x viewed as (rows, D).
void load_head(const Tensor& x, int64_t first_row, int64_t row_step, int64_t seq, int64_t d, float* dst) {
  std::vector<float> scratch;
  for (int64_t t = 0; t < seq; ++t) {
    const float* row = load_row(x, first_row + t * row_step, d, scratch);
    for (int64_t c = 0; c < d; ++c) dst[t * d + c] = row[c];
  }
}

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0F;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Keys that query i sees: 0..i when causal, else all T.
int64_t visible_keys(const AttentionDims& dims, int64_t i) { return dims.causal ? i + 1 : dims.seq; }

// The f32 copies of q, k, v (each (T, D)) of one (batch, query head).
struct HeadInputs {
  std::vector<float> q, k, v;

  HeadInputs(const AttentionDims& dims, int64_t b, int64_t h, const Tensor& q_in, const Tensor& k_in,
             const Tensor& v_in)
      : q(static_cast<size_t>(dims.seq * dims.head_dim)), k(q.size()), v(q.size()) {
    const int64_t kv_head = h / dims.group();
    load_head(q_in, dims.q_row(b, 0, h), dims.q_heads, dims.seq, dims.head_dim, q.data());
    load_head(k_in, dims.kv_row(b, 0, kv_head), dims.kv_heads, dims.seq, dims.head_dim, k.data());
    load_head(v_in, dims.kv_row(b, 0, kv_head), dims.kv_heads, dims.seq, dims.head_dim, v.data());
  }
};

// Forward of one (batch b, query head h).
void forward_head(const AttentionDims& dims, int64_t b, int64_t h, Tensor& out, Tensor& lse, const Tensor& q_in,
                  const Tensor& k_in, const Tensor& v_in) {
  const int64_t seq = dims.seq;
  const int64_t d = dims.head_dim;
  const HeadInputs in(dims, b, h, q_in, k_in, v_in);
  std::vector<float> probs(static_cast<size_t>(seq * seq));  // (T, T) scores, then probabilities
  std::vector<float> scratch;
  for (int64_t i = 0; i < seq; ++i) {
    float* p = probs.data() + i * seq;
    float row_max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < visible_keys(dims, i); ++j) {
      p[j] = dims.scale * dot(&in.q[static_cast<size_t>(i * d)], &in.k[static_cast<size_t>(j * d)], d);
      row_max = std::max(row_max, p[j]);
    }
    float row_sum = 0.0F;
    for (int64_t j = 0; j < visible_keys(dims, i); ++j) {
      p[j] = std::exp(p[j] - row_max);
      row_sum += p[j];
    }
    float* o = output_row(out, dims.q_row(b, i, h), d, scratch);
    for (int64_t c = 0; c < d; ++c) o[c] = 0.0F;
    for (int64_t j = 0; j < visible_keys(dims, i); ++j) {
      for (int64_t c = 0; c < d; ++c) o[c] += p[j] * in.v[static_cast<size_t>(j * d + c)];
    }
    for (int64_t c = 0; c < d; ++c) o[c] /= row_sum;
    store_row(out, dims.q_row(b, i, h), d, o);
    if (lse.defined()) lse.data<float>()[(b * dims.q_heads + h) * seq + i] = row_max + std::log(row_sum);
  }
}

// Backward of one (batch b, query head h): writes dq and this head's dk/dv partials (T, D).
void backward_head(const AttentionDims& dims, int64_t b, int64_t h, Tensor& dq, float* dk_part, float* dv_part,
                   const Tensor& dout, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& lse) {
  const int64_t seq = dims.seq;
  const int64_t d = dims.head_dim;
  const HeadInputs in(dims, b, h, q_in, k_in, v_in);
  std::vector<float> grad_out(in.q.size());  // (T, D)
  load_head(dout, dims.q_row(b, 0, h), dims.q_heads, seq, d, grad_out.data());
  const float* row_lse = lse.data<const float>() + (b * dims.q_heads + h) * seq;
  std::vector<float> probs(static_cast<size_t>(seq * seq), 0.0F);        // P (T, T)
  std::vector<float> grad_scores(static_cast<size_t>(seq * seq), 0.0F);  // dS (T, T), includes the scale
  for (int64_t i = 0; i < seq; ++i) {
    float* p = probs.data() + i * seq;
    float* ds = grad_scores.data() + i * seq;
    float delta = 0.0F;  // sum_j P[i, j] dP[i, j]
    for (int64_t j = 0; j < visible_keys(dims, i); ++j) {
      p[j] = std::exp(dims.scale * dot(&in.q[static_cast<size_t>(i * d)], &in.k[static_cast<size_t>(j * d)], d) -
                      row_lse[i]);
      ds[j] = dot(&grad_out[static_cast<size_t>(i * d)], &in.v[static_cast<size_t>(j * d)], d);  // dP
      delta += p[j] * ds[j];
    }
    for (int64_t j = 0; j < visible_keys(dims, i); ++j) ds[j] = dims.scale * p[j] * (ds[j] - delta);
  }
  std::vector<float> scratch;
  for (int64_t i = 0; i < seq; ++i) {  // dq[i] = sum_j dS[i, j] k[j]
    float* g = output_row(dq, dims.q_row(b, i, h), d, scratch);
    for (int64_t c = 0; c < d; ++c) g[c] = 0.0F;
    for (int64_t j = 0; j < seq; ++j) {
      for (int64_t c = 0; c < d; ++c) g[c] += grad_scores[i * seq + j] * in.k[static_cast<size_t>(j * d + c)];
    }
    store_row(dq, dims.q_row(b, i, h), d, g);
  }
  for (int64_t j = 0; j < seq; ++j) {  // dk[j] = sum_i dS[i, j] q[i];  dv[j] = sum_i P[i, j] dout[i]
    for (int64_t c = 0; c < d; ++c) dk_part[j * d + c] = dv_part[j * d + c] = 0.0F;
    for (int64_t i = 0; i < seq; ++i) {
      for (int64_t c = 0; c < d; ++c) {
        dk_part[j * d + c] += grad_scores[i * seq + j] * in.q[static_cast<size_t>(i * d + c)];
        dv_part[j * d + c] += probs[i * seq + j] * grad_out[static_cast<size_t>(i * d + c)];
      }
    }
  }
}

}  // namespace

void attention_reference_forward(ThreadPool& pool, const AttentionDims& dims, Tensor& out, Tensor& lse, const Tensor& q,
                                 const Tensor& k, const Tensor& v) {
  pool.parallel_for(dims.batch * dims.q_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      forward_head(dims, item / dims.q_heads, item % dims.q_heads, out, lse, q, k, v);
    }
  });
}

void attention_reference_backward(ThreadPool& pool, const AttentionDims& dims, Tensor& dq, Tensor& dk, Tensor& dv,
                                  const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& lse) {
  // dk/dv partials per (batch, query head), (B * Hq, T, D), summed over each group in head order.
  const int64_t head_stride = dims.seq * dims.head_dim;
  std::vector<float> dk_parts(static_cast<size_t>(dims.batch * dims.q_heads * head_stride));
  std::vector<float> dv_parts(dk_parts.size());
  pool.parallel_for(dims.batch * dims.q_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      backward_head(dims, item / dims.q_heads, item % dims.q_heads, dq, dk_parts.data() + item * head_stride,
                    dv_parts.data() + item * head_stride, dout, q, k, v, lse);
    }
  });
  store_kv_gradient(pool, dims, dk_parts.data(), dims.head_dim, head_stride, dk);
  store_kv_gradient(pool, dims, dv_parts.data(), dims.head_dim, head_stride, dv);
}

}  // namespace anvil::cpu
