// weights_to_device: the model's tensors copied to a GPU, as stored (quantized blocks too).
#include "weights.h"

#include <vector>

namespace anvil::model {

namespace {

Tensor moved(Ctx& ctx, const Tensor& tensor, Device device) {
  return tensor.defined() ? ctx.to_device(tensor, device) : Tensor();
}

// The row-wise concatenation of `parts` (each (rows_i, ...) with the same trailing shape and
// dtype, or all undefined) on `device`, or undefined when they cannot be fused.
Tensor fused_rows(Ctx& ctx, const std::vector<Tensor>& parts, Device device) {
  if (!parts.front().defined()) return Tensor();
  Shape shape = parts.front().shape();
  shape[0] = 0;
  for (const Tensor& part : parts) {
    if (!part.defined() || part.dtype() != parts.front().dtype() || !part.is_contiguous() ||
        part.dim() != static_cast<int64_t>(shape.size())) {
      return Tensor();
    }
    for (size_t axis = 1; axis < shape.size(); ++axis) {
      if (part.size(static_cast<int64_t>(axis)) != shape[axis]) return Tensor();
    }
    shape[0] += part.size(0);
  }
  Tensor fused = ctx.empty(shape, parts.front().dtype(), device);
  int64_t row = 0;
  for (const Tensor& part : parts) {
    Tensor rows = fused.slice(0, row, row + part.size(0));
    ctx.backend(device).copy(rows, part);
    row += part.size(0);
  }
  return fused;
}

// Row views of `fused` with the row counts of `parts`, into `outputs`.
void split_rows(const Tensor& fused, const std::vector<Tensor>& parts, const std::vector<Tensor*>& outputs) {
  int64_t row = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    *outputs[i] = fused.slice(0, row, row + parts[i].size(0));
    row += parts[i].size(0);
  }
}

// Fuses Q/K/V (with their biases, when all or none exist) and gate/up of a layer on a GPU.
void fuse_projections(Ctx& ctx, const LayerWeights& host, LayerWeights& copy, Device device) {
  const std::vector<Tensor> qkv = {host.wq, host.wk, host.wv};
  const std::vector<Tensor> qkv_bias = {host.bq, host.bk, host.bv};
  const bool biases_agree = host.bq.defined() == host.bk.defined() && host.bq.defined() == host.bv.defined();
  copy.wqkv = biases_agree ? fused_rows(ctx, qkv, device) : Tensor();
  if (copy.wqkv.defined()) {
    split_rows(copy.wqkv, qkv, {&copy.wq, &copy.wk, &copy.wv});
    copy.bqkv = fused_rows(ctx, qkv_bias, device);
    if (copy.bqkv.defined()) split_rows(copy.bqkv, qkv_bias, {&copy.bq, &copy.bk, &copy.bv});
  }
  const std::vector<Tensor> gate_up = {host.w_gate, host.w_up};
  copy.w_gate_up = fused_rows(ctx, gate_up, device);
  if (copy.w_gate_up.defined()) split_rows(copy.w_gate_up, gate_up, {&copy.w_gate, &copy.w_up});
}

}  // namespace

ModelWeights weights_to_device(Ctx& ctx, const ModelWeights& weights, Device device) {
  if (device.is_cpu()) return weights;
  ModelWeights out;
  out.token_embedding = weights.token_embedding;  // rows are gathered on the host
  out.position_embedding = weights.position_embedding;
  out.final_norm = moved(ctx, weights.final_norm, device);
  out.final_norm_bias = moved(ctx, weights.final_norm_bias, device);
  out.lm_head = moved(ctx, weights.lm_head, device);
  for (const LayerWeights& layer : weights.layers) {
    LayerWeights copy;
    fuse_projections(ctx, layer, copy, device);
    for (const auto member :
         {&LayerWeights::attn_norm, &LayerWeights::attn_norm_bias, &LayerWeights::wq, &LayerWeights::wk,
          &LayerWeights::wv, &LayerWeights::wo, &LayerWeights::bq, &LayerWeights::bk, &LayerWeights::bv,
          &LayerWeights::bo, &LayerWeights::q_norm, &LayerWeights::k_norm, &LayerWeights::ffn_norm,
          &LayerWeights::ffn_norm_bias, &LayerWeights::w_gate, &LayerWeights::w_up, &LayerWeights::w_down,
          &LayerWeights::b_up, &LayerWeights::b_down}) {
      if (!(copy.*member).defined()) copy.*member = moved(ctx, layer.*member, device);
    }
    out.layers.push_back(std::move(copy));
  }
  return out;
}

}  // namespace anvil::model
