// ParamTable: named views into the flat parameter and gradient buffers.
#include "anvil/train/param_table.h"

#include "anvil/core/error.h"

namespace anvil::train {

const char* param_role_name(ParamRole role) {
  switch (role) {
    case ParamRole::Embedding:
      return "embedding";
    case ParamRole::Head:
      return "head";
    case ParamRole::Matrix:
      return "matrix";
    case ParamRole::Norm:
      return "norm";
    case ParamRole::Bias:
      return "bias";
  }
  return "unknown";
}

size_t ParamTable::add(std::string name, Shape shape, ParamRole role, double init_std, float init_constant) {
  ANVIL_CHECK(!contains(name), "param table: duplicate parameter '", name, "'");
  ParamEntry entry;
  entry.name = std::move(name);
  entry.offset = total_;
  entry.shape = std::move(shape);
  entry.role = role;
  entry.init_std = init_std;
  entry.init_constant = init_constant;
  total_ += entry.numel();
  entries_.push_back(std::move(entry));
  return entries_.size() - 1;
}

const ParamEntry& ParamTable::find(const std::string& name) const {
  for (const ParamEntry& entry : entries_) {
    if (entry.name == name) return entry;
  }
  throw make_error("param table: no parameter named '", name, "'");
}

bool ParamTable::contains(const std::string& name) const {
  for (const ParamEntry& entry : entries_) {
    if (entry.name == name) return true;
  }
  return false;
}

Tensor ParamTable::view(const Tensor& buffer, const ParamEntry& entry) const {
  ANVIL_CHECK(
      (buffer.dtype() == DType::F32 || buffer.dtype() == DType::BF16) && buffer.dim() == 1 && buffer.numel() == total_,
      "param table: buffer ", buffer.to_string(0), " does not hold the ", total_,
      " parameters of this table (flat f32, or bf16 for a compute copy)");
  return buffer.slice(0, entry.offset, entry.offset + entry.numel()).view(entry.shape);
}

nlohmann::json ParamTable::to_json() const {
  nlohmann::json layout = nlohmann::json::array();
  for (const ParamEntry& entry : entries_) {
    layout.push_back({{"name", entry.name},
                      {"offset", entry.offset},
                      {"shape", entry.shape},
                      {"role", param_role_name(entry.role)}});
  }
  return layout;
}

bool ParamTable::matches(const nlohmann::json& layout) const { return layout == to_json(); }

}  // namespace anvil::train
