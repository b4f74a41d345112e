#include "anvil/backend/backend.h"

#include <array>

#include "anvil/core/error.h"

namespace anvil {

const char* op_name(OpKind op) {
  static constexpr std::array kNames = {
      "copy",
      "matmul",
      "add",
      "mul",
      "scale",
      "add_backward",
      "mul_backward",
      "embedding",
      "embedding_backward",
      "layer_norm",
      "layer_norm_backward",
      "rms_norm",
      "rms_norm_backward",
      "rope",
      "rope_backward",
      "gelu",
      "gelu_backward",
      "silu",
      "silu_backward",
      "swiglu",
      "swiglu_backward",
      "softmax",
      "softmax_backward",
      "attention",
      "attention_backward",
      "cross_entropy",
      "cross_entropy_backward",
      "adamw",
      "argmax",
      "top_k_filter",
      "top_p_filter",
      "min_p_filter",
      "sample_multinomial",
      "quantized_matmul",
      "kv_cache_write",
      "paged_attention",
      "add_rms_norm",
      "rope_kv_cache_write",
      "quantize_activations",
  };
  const auto index = static_cast<size_t>(op);
  return index < kNames.size() ? kNames[index] : "unknown_op";
}

void Backend::not_supported(OpKind op) const {
  throw make_error("op ", op_name(op), " is not supported on ", device_string(device()));
}

void Backend::add_column_sums(Tensor& sums, const Tensor& rows) {
  Tensor column_sums = Tensor::empty(sums.shape(), DType::F32, allocator());
  Tensor none;
  add_backward(none, column_sums, rows);
  add(sums, sums, column_sums);
}

// Defaults: a backend overrides what it implements.
void Backend::copy(Tensor&, const Tensor&) { not_supported(OpKind::Copy); }
void Backend::fill_zero(Tensor&) { not_supported(OpKind::Copy); }
DeviceReport Backend::device_report() { return {}; }
void Backend::matmul(Tensor&, const Tensor&, const Tensor&, bool, bool, float, float) { not_supported(OpKind::Matmul); }
// A bf16/f16 out with a bias sums in an f32 scratch and rounds once: rounding after the matmul
// and again after the bias errs at the terms' magnitude, which cancellation turns into a large
// relative error of the result.
void Backend::linear(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& residual) {
  const bool has_residual = residual.defined();
  const bool rounds_once = bias.defined() && out.dtype() != DType::F32;
  Tensor sum = rounds_once ? Tensor::empty(out.shape(), DType::F32, allocator()) : out;
  if (has_residual && residual.raw_data() != sum.raw_data()) copy(sum, residual);
  matmul(sum, x, weight, false, true, 1.0F, has_residual ? 1.0F : 0.0F);
  if (bias.defined()) add(sum, sum, bias);
  if (rounds_once) copy(out, sum);
}
void Backend::add(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Add); }
void Backend::mul(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Mul); }
void Backend::scale(Tensor&, const Tensor&, float) { not_supported(OpKind::Scale); }
void Backend::add_backward(Tensor&, Tensor&, const Tensor&) { not_supported(OpKind::AddBackward); }
void Backend::mul_backward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::MulBackward);
}
void Backend::embedding(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Embedding); }
void Backend::embedding_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::EmbeddingBackward); }
void Backend::layer_norm(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  not_supported(OpKind::LayerNorm);
}
void Backend::layer_norm_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&) {
  not_supported(OpKind::LayerNormBackward);
}
void Backend::rms_norm(Tensor&, Tensor&, const Tensor&, const Tensor&, float) { not_supported(OpKind::RmsNorm); }
void Backend::rms_norm_backward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::RmsNormBackward);
}
void Backend::rope(Tensor&, const Tensor&, const Tensor&, const RopeParams&) { not_supported(OpKind::Rope); }
void Backend::rope_backward(Tensor&, const Tensor&, const Tensor&, const RopeParams&) {
  not_supported(OpKind::RopeBackward);
}
void Backend::gelu(Tensor&, const Tensor&) { not_supported(OpKind::Gelu); }
void Backend::gelu_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::GeluBackward); }
void Backend::silu(Tensor&, const Tensor&) { not_supported(OpKind::Silu); }
void Backend::silu_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::SiluBackward); }
void Backend::swiglu(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::Swiglu); }
void Backend::swiglu_backward(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::SwigluBackward);
}
void Backend::softmax(Tensor&, const Tensor&) { not_supported(OpKind::Softmax); }
void Backend::softmax_backward(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::SoftmaxBackward); }
void Backend::attention(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const AttentionParams&) {
  not_supported(OpKind::Attention);
}
void Backend::attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                 const Tensor&, const Tensor&, const AttentionParams&) {
  not_supported(OpKind::AttentionBackward);
}
void Backend::kv_cache_write(Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, bool) {
  not_supported(OpKind::KvCacheWrite);
}
void Backend::paged_attention(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, const PagedAttentionParams&) {
  not_supported(OpKind::PagedAttention);
}
void Backend::rope_kv_cache_write(Tensor& qkv, Tensor& key_cache, Tensor& value_cache, const Tensor& positions,
                                  const Tensor& slots, const RopeParams& params, bool slots_checked) {
  const int64_t kv_heads = key_cache.size(2);
  const int64_t head_dim = qkv.size(2);
  const int64_t rotated = qkv.size(1) - kv_heads;  // the q and k heads
  const auto head_bytes = static_cast<size_t>(dtype_bytes_for(qkv.dtype(), head_dim));
  for (int64_t t = 0; t < qkv.size(0); ++t) {
    const size_t row = qkv.offset_bytes() + static_cast<size_t>(t * qkv.size(1)) * head_bytes;
    Tensor qk(qkv.storage(), {1, rotated, head_dim}, qkv.dtype(), row);
    const Tensor k(qkv.storage(), {1, kv_heads, head_dim}, qkv.dtype(),
                   row + static_cast<size_t>(rotated - kv_heads) * head_bytes);
    const Tensor v(qkv.storage(), {1, kv_heads, head_dim}, qkv.dtype(),
                   row + static_cast<size_t>(rotated) * head_bytes);
    rope(qk, qk, positions.slice(0, t, t + 1), params);
    kv_cache_write(key_cache, value_cache, k, v, slots.slice(0, t, t + 1), slots_checked);
  }
}
void Backend::cross_entropy(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::CrossEntropy); }
void Backend::cross_entropy_backward(Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  not_supported(OpKind::CrossEntropyBackward);
}
void Backend::adamw(Tensor&, Tensor&, Tensor&, const Tensor&, const AdamWParams&) { not_supported(OpKind::AdamW); }
void Backend::adamw_runs(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamWParams& params,
                         std::span<const AdamWRun> runs, Tensor& param_low) {
  AdamWParams run_params = params;
  for (const AdamWRun& run : runs) {
    run_params.weight_decay = run.decay ? params.weight_decay : 0.0F;
    Tensor p = param.slice(0, run.begin, run.end), run_m = m.slice(0, run.begin, run.end);
    Tensor run_v = v.slice(0, run.begin, run.end);
    adamw(p, run_m, run_v, grad.slice(0, run.begin, run.end), run_params);
    if (!param_low.defined()) continue;
    Tensor low = param_low.slice(0, run.begin, run.end);
    copy(low, p);
  }
}
void Backend::argmax(Tensor&, const Tensor&) { not_supported(OpKind::Argmax); }
void Backend::top_k_filter(Tensor&, int64_t) { not_supported(OpKind::TopKFilter); }
void Backend::top_p_filter(Tensor&, float) { not_supported(OpKind::TopPFilter); }
void Backend::min_p_filter(Tensor&, float) { not_supported(OpKind::MinPFilter); }
void Backend::sample_multinomial(Tensor&, const Tensor&, float, uint64_t, uint64_t) {
  not_supported(OpKind::SampleMultinomial);
}
void Backend::quantized_matmul(Tensor&, const Tensor&, const Tensor&) { not_supported(OpKind::QuantizedMatmul); }
void Backend::quantize_activations(Tensor&, const Tensor&) { not_supported(OpKind::QuantizeActivations); }
void Backend::add_rms_norm(Tensor&, Tensor&, const Tensor&, const Tensor&, float) { not_supported(OpKind::AddRmsNorm); }

namespace {
[[noreturn]] void graphs_not_supported(Device device) {
  throw make_error("device graphs are not supported on ", device_string(device));
}
}  // namespace

std::unique_ptr<DeviceGraph> Backend::capture_graph(const std::function<void()>&) { graphs_not_supported(device()); }
int64_t Backend::create_memory_pool() { graphs_not_supported(device()); }
void Backend::use_memory_pool(int64_t) { graphs_not_supported(device()); }
void Backend::release_memory_pool(int64_t) { graphs_not_supported(device()); }
Allocator& Backend::pinned_host_allocator() { graphs_not_supported(device()); }
void Backend::upload_async(Tensor&, const Tensor&) { graphs_not_supported(device()); }

}  // namespace anvil
