// Learning-rate schedules: warmup + constant, cosine, or warmup-stable-decay.
#include "anvil/train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace anvil::train {

double lr_factor(const ScheduleConfig& schedule, double min_lr_ratio, int64_t step, int64_t total_steps) {
  if (step < schedule.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  }
  const auto progress_over = [&](int64_t begin) {
    const int64_t span = std::max<int64_t>(1, total_steps - begin);
    return std::clamp(static_cast<double>(step - begin) / static_cast<double>(span), 0.0, 1.0);
  };
  switch (schedule.kind) {
    case ScheduleKind::Constant:
      return 1.0;
    case ScheduleKind::Cosine: {
      const double p = progress_over(schedule.warmup_steps);
      return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
    case ScheduleKind::Wsd: {
      const auto decay_steps = static_cast<int64_t>(std::llround(schedule.decay_fraction * total_steps));
      const int64_t decay_begin = std::max(schedule.warmup_steps, total_steps - decay_steps);
      if (step < decay_begin) return 1.0;
      return 1.0 - (1.0 - min_lr_ratio) * progress_over(decay_begin);
    }
  }
  return 1.0;
}

}  // namespace anvil::train
