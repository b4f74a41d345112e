// Typed access to GGUF metadata values.
#include <limits>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"

namespace anvil::io {
namespace {

[[noreturn]] void wrong_type(const char* wanted, GgufType actual) {
  throw make_error("GGUF value is ", gguf_type_name(actual), ", expected ", wanted);
}

}  // namespace

int64_t GgufValue::as_int() const {
  if (const auto* unsigned_value = std::get_if<uint64_t>(&value)) {
    ANVIL_CHECK(*unsigned_value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "GGUF value ",
                *unsigned_value, " does not fit in int64");
    return static_cast<int64_t>(*unsigned_value);
  }
  if (const auto* signed_value = std::get_if<int64_t>(&value)) return *signed_value;
  wrong_type("an integer", type);
}

double GgufValue::as_float() const {
  if (const auto* float_value = std::get_if<double>(&value)) return *float_value;
  if (std::holds_alternative<uint64_t>(value) || std::holds_alternative<int64_t>(value)) {
    return static_cast<double>(as_int());
  }
  wrong_type("a number", type);
}

bool GgufValue::as_bool() const {
  if (const auto* bool_value = std::get_if<bool>(&value)) return *bool_value;
  wrong_type("bool", type);
}

const std::string& GgufValue::as_string() const {
  if (const auto* string_value = std::get_if<std::string>(&value)) return *string_value;
  wrong_type("string", type);
}

const GgufArray& GgufValue::as_array() const {
  if (const auto* array_value = std::get_if<GgufArray>(&value)) return *array_value;
  wrong_type("array", type);
}

std::string GgufValue::to_string() const {
  switch (type) {
    case GgufType::String: {
      // Built by append: GCC 12 warns (falsely, -Wrestrict) on chained operator+ here.
      const std::string& text = as_string();
      std::string quoted(1, '"');
      quoted.append(text, 0, text.size() <= 60 ? text.size() : 57);
      quoted.append(text.size() <= 60 ? "\"" : "...\"");
      return quoted;
    }
    case GgufType::Bool:
      return as_bool() ? "true" : "false";
    case GgufType::F32:
    case GgufType::F64:
      return std::to_string(as_float());
    case GgufType::Array: {
      const GgufArray& array = as_array();
      if (array.items.size() > 8) {
        std::string summary = std::to_string(array.items.size());
        summary.insert(0, 1, '[');
        summary.append(" ").append(gguf_type_name(array.element_type)).append("]");
        return summary;
      }
      std::string text = "[";
      for (size_t i = 0; i < array.items.size(); ++i) text.append(i > 0 ? ", " : "").append(array.items[i].to_string());
      return text.append("]");
    }
    case GgufType::U64:
      return std::to_string(std::get<uint64_t>(value));
    default:
      return std::to_string(as_int());
  }
}

}  // namespace anvil::io
