#pragma once
// Loss curves of a training log (log.jsonl of `anvil train`) drawn as an SVG a person can
// look at: training loss (raw, and smoothed), validation loss, and the unigram baseline.
#include <string>
#include <utility>
#include <vector>

namespace anvil::train {

struct LossCurves {
  std::vector<std::pair<double, double>> train;  // (step, loss)
  std::vector<std::pair<double, double>> val;    // (step, val_loss)
  double baseline = -1.0;                        // unigram val loss; < 0 when unknown
  std::string title;
};

// Reads "loss" and "val_loss" records (and the start record's baseline) of a log; lines
// that are not JSON objects are errors naming the line.
LossCurves read_loss_curves(const std::string& log_path);
// A self-contained SVG document.
std::string loss_curves_svg(const LossCurves& curves);
// read + draw + write atomically.
void write_loss_plot(const std::string& log_path, const std::string& svg_path);

}  // namespace anvil::train
