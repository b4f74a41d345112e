#pragma once
// Learning-rate schedules as a factor of the peak rate, by 0-based optimizer step.
#include <cstdint>

#include "anvil/train/train_config.h"

namespace anvil::train {

// Linear warmup over warmup_steps (step s gets (s + 1) / warmup), then
//  Constant: 1;
//  Cosine:   min + (1 - min) * (1 + cos(pi * p)) / 2, p = (s - warmup) / (total - warmup);
//  Wsd:      1 until the last decay_fraction of total steps, then linear down to min at
//            p = 1 (warmup-stable-decay).
// min = min_lr_ratio; p is clamped to [0, 1], so steps past `total` stay at min.
double lr_factor(const ScheduleConfig& schedule, double min_lr_ratio, int64_t step, int64_t total_steps);

}  // namespace anvil::train
