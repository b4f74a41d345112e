#pragma once
// The parameters of a training model live in ONE flat f32 buffer (and the gradients in a
// second of the same layout), llm.c style: every tensor is a view at an offset, so
// optimizers, clipping, checkpoints and (later) data parallelism work on a few large spans.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "anvil/core/tensor.h"

namespace anvil::train {

// What a parameter is, which decides its weight-decay group, its optimizer (Muon takes
// Matrix only) and its initialisation.
enum class ParamRole : uint8_t {
  Embedding,  // token / position tables
  Head,       // the output projection when not tied
  Matrix,     // a hidden 2-D weight
  Norm,       // norm gains
  Bias,
};
const char* param_role_name(ParamRole role);

struct ParamEntry {
  std::string name;
  int64_t offset = 0;  // in elements, into the flat buffers
  Shape shape;
  ParamRole role = ParamRole::Matrix;
  double init_std = 0.0;    // N(0, init_std) when > 0, else the constant below
  float init_constant = 0;  // norms 1, biases 0
  [[nodiscard]] int64_t numel() const { return shape_numel(shape); }
};

class ParamTable {
 public:
  // Appends a parameter after the last one; returns its index.
  size_t add(std::string name, Shape shape, ParamRole role, double init_std, float init_constant = 0.0F);

  [[nodiscard]] const std::vector<ParamEntry>& entries() const { return entries_; }
  [[nodiscard]] int64_t total() const { return total_; }
  // The entry named `name`; throws anvil::Error when there is none.
  [[nodiscard]] const ParamEntry& find(const std::string& name) const;
  [[nodiscard]] bool contains(const std::string& name) const;
  // A view of `entry` into `buffer` (a flat (total) f32 tensor of this layout, or its bf16
  // compute copy).
  [[nodiscard]] Tensor view(const Tensor& buffer, const ParamEntry& entry) const;
  [[nodiscard]] Tensor view(const Tensor& buffer, const std::string& name) const { return view(buffer, find(name)); }
  // [{name, offset, shape, role}, ...]: what a checkpoint or fixture records of the layout.
  [[nodiscard]] nlohmann::json to_json() const;
  // Whether `layout` (from to_json) describes exactly this table.
  [[nodiscard]] bool matches(const nlohmann::json& layout) const;

 private:
  std::vector<ParamEntry> entries_;
  int64_t total_ = 0;
};

}  // namespace anvil::train
