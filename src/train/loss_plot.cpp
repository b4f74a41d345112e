// An SVG loss-curve plot written with plain text: axes, ticks, three series, a legend.
#include "anvil/train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "anvil/core/error.h"
#include "atomic_file.h"

namespace anvil::train {

namespace {

constexpr double kWidth = 900, kHeight = 540, kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;

struct Scale {
  double x0, x1, y0, y1;
  [[nodiscard]] double x(double step) const { return kLeft + (step - x0) / (x1 - x0) * (kWidth - kLeft - kRight); }
  [[nodiscard]] double y(double loss) const { return kTop + (y1 - loss) / (y1 - y0) * (kHeight - kTop - kBottom); }
};

// A "nice" tick spacing (1, 2 or 5 times a power of ten) for about `count` ticks.
double tick_step(double span, int count) {
  const double raw = span / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0}) {
    if (raw <= m * power) return m * power;
  }
  return 10.0 * power;
}

// Text for SVG: the XML metacharacters escaped.
std::string escaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

void polyline(std::ostringstream& svg, const std::vector<std::pair<double, double>>& points, const Scale& s,
              const char* colour, double width, double opacity) {
  if (points.empty()) return;
  svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"" << width << "\" stroke-opacity=\""
      << opacity << "\" points=\"";
  for (const auto& [step, loss] : points) svg << s.x(step) << "," << s.y(loss) << " ";
  svg << "\"/>\n";
}

// Exponential moving average, debiased (as TensorBoard's smoothing).
std::vector<std::pair<double, double>> smoothed(const std::vector<std::pair<double, double>>& points) {
  std::vector<std::pair<double, double>> out;
  const double weight = points.size() > 50 ? 0.9 : 0.6;
  double average = 0.0, debias = 0.0;
  for (const auto& [step, loss] : points) {
    average = weight * average + (1.0 - weight) * loss;
    debias = weight * debias + (1.0 - weight);
    out.emplace_back(step, average / debias);
  }
  return out;
}

void axes(std::ostringstream& svg, const Scale& s) {
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << kWidth - kLeft - kRight << "\" height=\""
      << kHeight - kTop - kBottom << "\" fill=\"white\" stroke=\"#444\"/>\n";
  const double dy = tick_step(s.y1 - s.y0, 8);
  for (double v = std::ceil(s.y0 / dy) * dy; v <= s.y1 + 1e-9; v += dy) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kWidth - kRight << "\" y1=\"" << s.y(v) << "\" y2=\"" << s.y(v)
        << "\" stroke=\"#ddd\"/>\n<text x=\"" << kLeft - 6 << "\" y=\"" << s.y(v) + 4 << "\" text-anchor=\"end\">"
        << number(v) << "</text>\n";
  }
  const double dx = tick_step(s.x1 - s.x0, 10);
  for (double v = std::ceil(s.x0 / dx) * dx; v <= s.x1 + 1e-9; v += dx) {
    svg << "<line y1=\"" << kTop << "\" y2=\"" << kHeight - kBottom << "\" x1=\"" << s.x(v) << "\" x2=\"" << s.x(v)
        << "\" stroke=\"#eee\"/>\n<text x=\"" << s.x(v) << "\" y=\"" << kHeight - kBottom + 18
        << "\" text-anchor=\"middle\">" << number(v) << "</text>\n";
  }
  svg << "<text x=\"" << (kLeft + kWidth - kRight) / 2 << "\" y=\"" << kHeight - 10
      << "\" text-anchor=\"middle\">step</text>\n<text transform=\"translate(18," << (kTop + kHeight - kBottom) / 2
      << ") rotate(-90)\" text-anchor=\"middle\">loss (nats/token)</text>\n";
}

void legend(std::ostringstream& svg, const LossCurves& curves) {
  struct Item {
    const char* colour;
    std::string label;
    bool dashed;
  };
  std::vector<Item> items = {{"#1f77b4", "train (smoothed)", false}};
  if (!curves.val.empty()) items.push_back({"#d62728", "validation", false});
  if (curves.baseline >= 0) items.push_back({"#555", "unigram baseline " + number(curves.baseline), true});
  double y = kTop + 18;
  for (const Item& item : items) {
    const double x = kWidth - kRight - 230;
    svg << "<line x1=\"" << x << "\" x2=\"" << x + 28 << "\" y1=\"" << y << "\" y2=\"" << y << "\" stroke=\""
        << item.colour << "\" stroke-width=\"2.5\"" << (item.dashed ? " stroke-dasharray=\"6,4\"" : "")
        << "/>\n<text x=\"" << x + 36 << "\" y=\"" << y + 4 << "\">" << item.label << "</text>\n";
    y += 20;
  }
}

}  // namespace

LossCurves read_loss_curves(const std::string& log_path) {
  std::ifstream stream(log_path);
  ANVIL_CHECK(stream.good(), "cannot read training log '", log_path, "'");
  LossCurves curves;
  curves.title = log_path;
  std::string line;
  for (int64_t number = 1; std::getline(stream, line); ++number) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ANVIL_CHECK(!record.is_discarded() && record.is_object(), "training log '", log_path, "' line ", number,
                " is not a JSON object");
    const auto step = record.value("step", 0.0);
    if (record.contains("loss") && record["loss"].is_number()) curves.train.emplace_back(step, record["loss"]);
    if (record.contains("val_loss") && record["val_loss"].is_number()) {
      curves.val.emplace_back(step, record["val_loss"]);
    }
    if (record.contains("unigram_val_loss") && record["unigram_val_loss"].is_number()) {
      curves.baseline = record["unigram_val_loss"];
    }
    if (record.contains("name") && record["name"].is_string()) curves.title = record["name"];
  }
  return curves;
}

std::string loss_curves_svg(const LossCurves& curves) {
  double x1 = 1.0, y0 = INFINITY, y1 = -INFINITY;
  for (const auto* series : {&curves.train, &curves.val}) {
    for (const auto& [step, loss] : *series) {
      x1 = std::max(x1, step);
      if (std::isfinite(loss)) {
        y0 = std::min(y0, loss);
        y1 = std::max(y1, loss);
      }
    }
  }
  if (curves.baseline >= 0) {
    y0 = std::min(y0, curves.baseline);
    y1 = std::max(y1, curves.baseline);
  }
  if (!std::isfinite(y0)) y0 = 0.0, y1 = 1.0;
  const double pad = std::max(1e-3, 0.05 * (y1 - y0));
  const Scale s{0.0, x1, std::max(0.0, y0 - pad), y1 + pad};
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n"
      << "<text x=\"" << kLeft << "\" y=\"24\" font-size=\"15\">" << escaped(curves.title) << "</text>\n";
  axes(svg, s);
  if (curves.baseline >= 0) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kWidth - kRight << "\" y1=\"" << s.y(curves.baseline) << "\" y2=\""
        << s.y(curves.baseline) << "\" stroke=\"#555\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"/>\n";
  }
  polyline(svg, curves.train, s, "#1f77b4", 1.0, 0.3);
  polyline(svg, smoothed(curves.train), s, "#1f77b4", 2.5, 1.0);
  polyline(svg, curves.val, s, "#d62728", 2.5, 1.0);
  for (const auto& [step, loss] : curves.val) {
    svg << "<circle cx=\"" << s.x(step) << "\" cy=\"" << s.y(loss) << "\" r=\"3.5\" fill=\"#d62728\"/>\n";
  }
  legend(svg, curves);
  svg << "</svg>\n";
  return svg.str();
}

void write_loss_plot(const std::string& log_path, const std::string& svg_path) {
  detail::write_file_atomically(svg_path, loss_curves_svg(read_loss_curves(log_path)));
}

}  // namespace anvil::train
