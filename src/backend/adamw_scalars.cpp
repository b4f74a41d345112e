#include "adamw_scalars.h"

#include <cmath>

namespace anvil {

AdamWScalars adamw_scalars(const AdamWParams& params) {
  const auto step = static_cast<double>(params.step);
  const double lr = params.learning_rate;
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(params.beta1), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(params.beta2), step);
  return {params.beta1,
          static_cast<float>(1.0 - params.beta1),
          params.beta2,
          static_cast<float>(1.0 - params.beta2),
          params.eps,
          params.grad_scale,
          static_cast<float>(1.0 - lr * params.weight_decay),
          static_cast<float>(lr / bias_correction1),
          static_cast<float>(1.0 / std::sqrt(bias_correction2))};
}

}  // namespace anvil
