#include "value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "anvil/core/error.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

constexpr int kMaxValueDepth = 256;  // recursion bound for printing, comparing and serialising

void check_depth(int depth) {
  if (depth > kMaxValueDepth) throw make_error("chat template: value nested deeper than ", kMaxValueDepth, " levels");
}

void charge(Budget* budget) {
  if (budget != nullptr) budget->charge();
}

void check_size(Budget* budget, const std::string& out) {
  if (budget != nullptr) budget->check_size(out.size());
}

// Python's unicode_repr rule for printable characters, approximated for the BMP.
bool is_printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F)) return false;
  if ((c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || c >= 0xF0000) return false;  // surrogates, private use
  return true;
}

void append_hex(std::string& out, const char* prefix, uint32_t value, int digits) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%0*x", digits, value);
  out += prefix;
  out += buffer;
}

void repr_string(std::string& out, const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out.push_back(quote);
  for (char32_t c : text::decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (is_printable(c)) {
      text::append_utf8(out, c);
    } else if (c <= 0xFF) {
      append_hex(out, "\\x", c, 2);
    } else if (c <= 0xFFFF) {
      append_hex(out, "\\u", c, 4);
    } else {
      append_hex(out, "\\U", c, 8);
    }
  }
  out.push_back(quote);
}

void repr_into(std::string& out, const Value& value, Budget* budget, int depth);

void repr_items(std::string& out, const Value& value, Budget* budget, int depth) {
  if (value.kind == Kind::List && value.list->is_generator) {
    out += "<generator object>";
    return;
  }
  if (value.kind == Kind::List) {
    const bool tuple = value.list->is_tuple;
    out.push_back(tuple ? '(' : '[');
    for (size_t i = 0; i < value.list->items.size(); ++i) {
      if (i > 0) out += ", ";
      repr_into(out, value.list->items[i], budget, depth + 1);
    }
    if (tuple && value.list->items.size() == 1) out.push_back(',');
    out.push_back(tuple ? ')' : ']');
    return;
  }
  if (value.dict->is_namespace) out += "<Namespace ";
  out.push_back('{');
  bool first = true;
  for (const auto& [key, item] : value.dict->entries) {
    if (!first) out += ", ";
    first = false;
    repr_string(out, key);
    out += ": ";
    repr_into(out, item, budget, depth + 1);
  }
  out.push_back('}');
  if (value.dict->is_namespace) out.push_back('>');
}

void repr_into(std::string& out, const Value& value, Budget* budget, int depth) {
  check_depth(depth);
  charge(budget);
  switch (value.kind) {
    case Kind::Undefined:
      out += "Undefined";
      break;
    case Kind::None:
      out += "None";
      break;
    case Kind::Bool:
      out += value.boolean ? "True" : "False";
      break;
    case Kind::Int:
      out += std::to_string(value.integer);
      break;
    case Kind::Float:
      out += float_repr(value.real);
      break;
    case Kind::String:
      repr_string(out, value.text);
      break;
    case Kind::List:
    case Kind::Dict:
      repr_items(out, value, budget, depth);
      break;
    case Kind::Function:
      out += "<function " + value.function->name + ">";
      break;
  }
  check_size(budget, out);
}

bool equals_at(const Value& a, const Value& b, Budget* budget, int depth) {
  check_depth(depth);
  charge(budget);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.text == b.text;
    case Kind::List: {
      if (a.list == b.list) return true;
      if (a.list->is_generator || b.list->is_generator) return false;
      if (a.list->is_tuple != b.list->is_tuple || a.list->items.size() != b.list->items.size()) return false;
      for (size_t i = 0; i < a.list->items.size(); ++i) {
        if (!equals_at(a.list->items[i], b.list->items[i], budget, depth + 1)) return false;
      }
      return true;
    }
    case Kind::Dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->is_namespace || b.dict->is_namespace) return false;
      if (a.dict->entries.size() != b.dict->entries.size()) return false;
      for (const auto& [key, item] : a.dict->entries) {
        const Value* other = b.dict->find(key);
        if (other == nullptr || !equals_at(item, *other, budget, depth + 1)) return false;
      }
      return true;
    }
    case Kind::Function:
      return a.function == b.function;
    default:
      return false;
  }
}

std::optional<int> compare_at(const Value& a, const Value& b, Budget* budget, int depth) {
  check_depth(depth);
  charge(budget);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    const double x = a.as_double();
    const double y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return a.text.compare(b.text) < 0 ? -1 : (a.text == b.text ? 0 : 1);
  if (a.is_sequence() && b.is_sequence() && a.list->is_tuple == b.list->is_tuple) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      if (equals_at(x[i], y[i], budget, depth + 1)) continue;
      return compare_at(x[i], y[i], budget, depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return std::nullopt;
}

Value from_json_at(const nlohmann::ordered_json& json, int depth) {
  check_depth(depth);
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::from_bool(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::from_int(json.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto value = json.get<uint64_t>();
      if (value > static_cast<uint64_t>(INT64_MAX)) return Value::from_float(static_cast<double>(value));
      return Value::from_int(static_cast<int64_t>(value));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::from_float(json.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::from_string(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Value list = Value::new_list();
      list.list->items.reserve(json.size());
      for (const auto& item : json) list.list->items.push_back(from_json_at(item, depth + 1));
      return list;
    }
    case nlohmann::ordered_json::value_t::object: {
      Value dict = Value::new_dict();
      for (const auto& [key, item] : json.items()) dict.dict->set(key, from_json_at(item, depth + 1));
      return dict;
    }
    default:
      throw make_error("chat template: context holds a JSON value of unsupported type ", json.type_name());
  }
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : text::decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E && c < 0x10000)) {
          append_hex(out, "\\u", c, 4);
        } else if (ensure_ascii && c >= 0x10000) {
          append_hex(out, "\\u", 0xD800 + ((c - 0x10000) >> 10), 4);
          append_hex(out, "\\u", 0xDC00 + ((c - 0x10000) & 0x3FF), 4);
        } else {
          text::append_utf8(out, c);
        }
    }
  }
  out.push_back('"');
}

void newline_indent(std::string& out, const JsonFormat& format, int level) {
  out.push_back('\n');
  for (int i = 0; i < level; ++i) out += format.indent;
}

void dump_at(std::string& out, const Value& value, const JsonFormat& format, Budget* budget, int depth);

void dump_list(std::string& out, const Value& value, const JsonFormat& format, Budget* budget, int depth) {
  const auto& items = value.list->items;
  if (items.empty()) {
    out += "[]";
    return;
  }
  out.push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += format.item_separator;
    if (format.has_indent) newline_indent(out, format, depth + 1);
    dump_at(out, items[i], format, budget, depth + 1);
  }
  if (format.has_indent) newline_indent(out, format, depth);
  out.push_back(']');
}

void dump_dict(std::string& out, const Value& value, const JsonFormat& format, Budget* budget, int depth) {
  std::vector<const std::pair<std::string, Value>*> entries;
  for (const auto& entry : value.dict->entries) entries.push_back(&entry);
  if (entries.empty()) {
    out += "{}";
    return;
  }
  if (format.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
  }
  out.push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out += format.item_separator;
    if (format.has_indent) newline_indent(out, format, depth + 1);
    json_string(out, entries[i]->first, format.ensure_ascii);
    out += format.key_separator;
    dump_at(out, entries[i]->second, format, budget, depth + 1);
  }
  if (format.has_indent) newline_indent(out, format, depth);
  out.push_back('}');
}

void dump_at(std::string& out, const Value& value, const JsonFormat& format, Budget* budget, int depth) {
  check_depth(depth);
  charge(budget);
  switch (value.kind) {
    case Kind::None:
      out += "null";
      break;
    case Kind::Bool:
      out += value.boolean ? "true" : "false";
      break;
    case Kind::Int:
      out += std::to_string(value.integer);
      break;
    case Kind::Float:
      if (std::isnan(value.real)) {
        out += "NaN";
      } else if (std::isinf(value.real)) {
        out += value.real > 0 ? "Infinity" : "-Infinity";
      } else {
        out += float_repr(value.real);
      }
      break;
    case Kind::String:
      json_string(out, value.text, format.ensure_ascii);
      break;
    case Kind::List:
      if (value.list->is_generator)
        throw make_error("chat template: Object of type generator is not JSON serializable");
      dump_list(out, value, format, budget, depth);
      break;
    case Kind::Dict:
      if (value.dict->is_namespace)
        throw make_error("chat template: Object of type Namespace is not JSON serializable");
      dump_dict(out, value, format, budget, depth);
      break;
    default:
      throw make_error("chat template: Object of type ", type_name(value), " is not JSON serializable");
  }
  check_size(budget, out);
}

}  // namespace

void Budget::charge(int64_t steps) {
  steps_left -= steps;
  if (steps_left < 0) throw make_error("chat template: evaluation step limit exceeded");
}

void Budget::check_size(size_t bytes) const {
  if (bytes > max_bytes) throw make_error("chat template: output or value larger than ", max_bytes, " bytes");
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& entry : entries) {
    if (entry.first == key) return &entry.second;
  }
  return nullptr;
}

void DictData::set(const std::string& key, Value value) {
  for (auto& entry : entries) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

Value Value::undefined(std::string hint) {
  Value value;
  value.text = std::move(hint);
  return value;
}

Value Value::none() {
  Value value;
  value.kind = Kind::None;
  return value;
}

Value Value::from_bool(bool b) {
  Value value;
  value.kind = Kind::Bool;
  value.boolean = b;
  return value;
}

Value Value::from_int(int64_t i) {
  Value value;
  value.kind = Kind::Int;
  value.integer = i;
  return value;
}

Value Value::from_float(double f) {
  Value value;
  value.kind = Kind::Float;
  value.real = f;
  return value;
}

Value Value::from_string(std::string s) {
  Value value;
  value.kind = Kind::String;
  value.text = std::move(s);
  return value;
}

Value Value::new_list(std::vector<Value> items, bool is_tuple) {
  Value value;
  value.kind = Kind::List;
  value.list = std::make_shared<ListData>();
  value.list->items = std::move(items);
  value.list->is_tuple = is_tuple;
  return value;
}

Value Value::new_generator(std::vector<Value> items) {
  Value value = new_list(std::move(items));
  value.list->is_generator = true;
  return value;
}

Value Value::new_dict() {
  Value value;
  value.kind = Kind::Dict;
  value.dict = std::make_shared<DictData>();
  return value;
}

Value Value::new_function(std::string name, std::function<Value(Interpreter&, CallArgs&, SourcePos)> call) {
  Value value;
  value.kind = Kind::Function;
  auto data = std::make_shared<FunctionData>();
  data->name = std::move(name);
  data->call = std::move(call);
  value.function = std::move(data);
  return value;
}

std::string type_name(const Value& value) {
  switch (value.kind) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::List:
      return value.list->is_generator ? "generator" : (value.list->is_tuple ? "tuple" : "list");
    case Kind::Dict:
      return value.dict->is_namespace ? "Namespace" : "dict";
    case Kind::Function:
      return "function";
  }
  return "object";
}

bool truthy(const Value& value) {
  switch (value.kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return value.boolean;
    case Kind::Int:
      return value.integer != 0;
    case Kind::Float:
      return value.real != 0.0;
    case Kind::String:
      return !value.text.empty();
    case Kind::List:
      return value.list->is_generator || !value.list->items.empty();
    case Kind::Dict:
      return value.dict->is_namespace || !value.dict->entries.empty();
    case Kind::Function:
      return true;
  }
  return false;
}

std::string to_str(const Value& value, Budget* budget) {
  if (value.kind == Kind::String) return value.text;
  if (value.kind == Kind::Undefined) return "";
  std::string out;
  repr_into(out, value, budget, 0);
  return out;
}

std::string repr(const Value& value, Budget* budget) {
  std::string out;
  repr_into(out, value, budget, 0);
  return out;
}

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  // Shortest round-trip digits, as "d.ddde±x", then laid out the way Python's repr does.
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  const std::string scientific(buffer, result.ptr);
  const size_t e_pos = scientific.find('e');
  const bool negative = scientific[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e_pos; ++i) {
    if (scientific[i] != '.') digits.push_back(scientific[i]);
  }
  const int exponent = std::stoi(scientific.substr(e_pos + 1));
  const int point = exponent + 1;  // digits are 0.d1d2... * 10^point
  std::string out = negative ? "-" : "";
  if (point > 16 || point < -3) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_text[16];
    std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_text;
  }
  if (point <= 0) return out + "0." + std::string(static_cast<size_t>(-point), '0') + digits;
  if (static_cast<size_t>(point) >= digits.size()) {
    return out + digits + std::string(static_cast<size_t>(point) - digits.size(), '0') + ".0";
  }
  return out + digits.substr(0, static_cast<size_t>(point)) + "." + digits.substr(static_cast<size_t>(point));
}

bool equals(const Value& a, const Value& b, Budget* budget) { return equals_at(a, b, budget, 0); }

std::optional<int> compare(const Value& a, const Value& b, Budget* budget) { return compare_at(a, b, budget, 0); }

Value from_json(const nlohmann::ordered_json& json) { return from_json_at(json, 0); }

std::string dump_json(const Value& value, const JsonFormat& format, Budget* budget) {
  std::string out;
  dump_at(out, value, format, budget, 0);
  return out;
}

}  // namespace anvil::tokenizer::jinja
