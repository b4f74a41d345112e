// weights_to_device: the model's tensors copied to a GPU, as stored (quantized blocks too).
#include "weights.h"

namespace anvil::model {

namespace {

Tensor moved(Ctx& ctx, const Tensor& tensor, Device device) {
  return tensor.defined() ? ctx.to_device(tensor, device) : Tensor();
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
    for (const auto member :
         {&LayerWeights::attn_norm, &LayerWeights::attn_norm_bias, &LayerWeights::wq, &LayerWeights::wk,
          &LayerWeights::wv, &LayerWeights::wo, &LayerWeights::bq, &LayerWeights::bk, &LayerWeights::bv,
          &LayerWeights::bo, &LayerWeights::q_norm, &LayerWeights::k_norm, &LayerWeights::ffn_norm,
          &LayerWeights::ffn_norm_bias, &LayerWeights::w_gate, &LayerWeights::w_up, &LayerWeights::w_down,
          &LayerWeights::b_up, &LayerWeights::b_down}) {
      copy.*member = moved(ctx, layer.*member, device);
    }
    out.layers.push_back(std::move(copy));
  }
  return out;
}

}  // namespace anvil::model
