// jinja2's built-in filters and tests (the subset chat templates use), with tojson replaced by
// transformers' version: json.dumps(value, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "anvil/core/error.h"
#include "builtins.h"
#include "interpreter.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

using Filter = Value (*)(Interpreter&, const Value&, CallArgs&, SourcePos);

// Sequence elements, as Python's iter(): str -> chars, dict -> keys, Undefined -> nothing.
std::vector<Value> elements(Interpreter& in, const Value& value, SourcePos pos) {
  if (value.is_undefined()) return {};
  if (value.is_list()) return value.list->items;
  if (value.is_dict()) {
    std::vector<Value> keys;
    for (const auto& entry : value.dict->entries) keys.push_back(Value::from_string(entry.first));
    return keys;
  }
  if (value.is_string()) {
    std::vector<Value> chars;
    for (char32_t c : text::decode(value.text)) {
      std::string one;
      text::append_utf8(one, c);
      chars.push_back(Value::from_string(std::move(one)));
    }
    return chars;
  }
  in.fail(pos, "'" + type_name(value) + "' object is not iterable");
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value lookup_path(Interpreter& in, const Value& item, const std::string& path, SourcePos pos) {
  Value current = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = std::min(path.find('.', start), path.size());
    const std::string part = path.substr(start, dot - start);
    const bool numeric =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current = in.get_item(
        current, numeric ? Value::from_int(std::atoll(part.substr(0, 18).c_str())) : Value::from_string(part), pos);
    start = dot + 1;
  }
  return current;
}

// The sort/unique key: the attribute if given, lowercased when case-insensitive.
Value sort_key(Interpreter& in, const Value& item, const std::optional<Value>& attribute, bool case_sensitive,
               SourcePos pos) {
  Value key = attribute && !attribute->is_none() ? lookup_path(in, item, to_str(*attribute), pos) : item;
  if (!case_sensitive && key.is_string()) key.text = text::lower(key.text);
  return key;
}

int checked_compare(Interpreter& in, const Value& a, const Value& b, SourcePos pos) {
  const std::optional<int> order = compare(a, b, &in.budget());
  if (!order) in.fail(pos, "'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
  return *order;
}

Value filter_tojson(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "tojson", call, {"ensure_ascii", "indent", "separators", "sort_keys"}, pos);
  JsonFormat format;
  format.ensure_ascii = args.get_bool(0, false);
  format.sort_keys = args.get_bool(3, false);
  const Value indent = args.get_or(1, Value::none());
  if (indent.is_integral()) {
    format.has_indent = true;
    format.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 64)), ' ');
  } else if (indent.is_string()) {
    format.has_indent = true;
    format.indent = indent.text;
  } else if (!indent.is_none()) {
    in.fail(pos, "tojson: indent must be an int, a string or None");
  }
  if (format.has_indent) format.item_separator = ",";
  const Value separators = args.get_or(2, Value::none());
  if (separators.is_list() && separators.list->items.size() == 2 && separators.list->items[0].is_string() &&
      separators.list->items[1].is_string()) {
    format.item_separator = separators.list->items[0].text;
    format.key_separator = separators.list->items[1].text;
  } else if (!separators.is_none()) {
    in.fail(pos, "tojson: separators must be a pair of strings");
  }
  try {
    return Value::from_string(dump_json(value, format, &in.budget()));
  } catch (const Error& error) {
    in.fail(pos, error.what());
  }
}

Value filter_length(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "length", call, {}, pos);
  switch (value.kind) {
    case Kind::Undefined:
      return Value::from_int(0);
    case Kind::String:
      return Value::from_int(static_cast<int64_t>(text::length(value.text)));
    case Kind::List:
      if (value.list->is_generator) break;
      return Value::from_int(static_cast<int64_t>(value.list->items.size()));
    case Kind::Dict:
      if (!value.dict->is_namespace) return Value::from_int(static_cast<int64_t>(value.dict->entries.size()));
      break;
    default:
      break;
  }
  in.fail(pos, "object of type '" + type_name(value) + "' has no len()");
}

Value filter_default(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "default", call, {"default_value", "boolean"}, pos);
  const bool use_default = args.get_bool(1, false) ? !truthy(value) : value.is_undefined();
  return use_default ? args.get_or(0, Value::from_string("")) : value;
}

Value filter_join(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "join", call, {"d", "attribute"}, pos);
  const std::string separator = args.get_string(0, "");
  std::string out;
  bool first = true;
  for (const Value& item : elements(in, value, pos)) {
    if (!first) out += separator;
    first = false;
    const Value shown = args.get(1) ? lookup_path(in, item, to_str(*args.get(1)), pos) : item;
    out += to_str(shown, &in.budget());
    in.check_size(out.size(), pos);
  }
  return Value::from_string(std::move(out));
}

Value filter_first_last(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, bool last) {
  const ArgBinder args(in, last ? "last" : "first", call, {}, pos);
  if (last && value.is_generator()) in.fail(pos, "'generator' object is not reversible");
  const std::vector<Value> items = elements(in, value, pos);
  if (items.empty())
    return Value::undefined(std::string("no ") + (last ? "last" : "first") + " item, sequence was empty");
  return last ? items.back() : items.front();
}

// jinja2's title filter (not str.title): words start after whitespace, '-', '(', '{', '[' or '<'.
std::string title_words(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char32_t c : text::decode(s)) {
    const bool separator = text::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    std::string one;
    text::append_utf8(one, c);
    out += separator ? one : (word_start ? text::upper(one) : text::lower(one));
    word_start = separator;
  }
  return out;
}

Value filter_string_op(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, std::string_view name) {
  if (name == "trim") {
    const ArgBinder args(in, name, call, {"chars"}, pos);
    std::optional<std::string> chars;
    if (args.get(0) && !args.get(0)->is_none()) chars = to_str(*args.get(0));
    return Value::from_string(text::strip(to_str(value, &in.budget()), chars, true, true));
  }
  if (name == "replace") {
    const ArgBinder args(in, name, call, {"old", "new", "count"}, pos);
    std::string out = text::replace(to_str(value, &in.budget()), to_str(args.get_or(0, Value::from_string(""))),
                                    to_str(args.get_or(1, Value::from_string(""))), args.get_int(2, -1));
    in.check_size(out.size(), pos);
    return Value::from_string(std::move(out));
  }
  const ArgBinder args(in, name, call, {}, pos);
  const std::string s = to_str(value, &in.budget());
  if (name == "upper") return Value::from_string(text::upper(s));
  if (name == "lower") return Value::from_string(text::lower(s));
  if (name == "title") return Value::from_string(title_words(s));
  if (name == "capitalize") return Value::from_string(text::capitalize(s));
  if (name == "string" || name == "safe") return value.is_string() ? value : Value::from_string(s);
  std::string escaped;
  for (char c : s) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&#34;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped.push_back(c);
    }
  }
  return Value::from_string(std::move(escaped));
}

// Python int(str): optional sign, digits with single underscores, surrounding whitespace.
std::optional<int64_t> parse_int(const std::string& s, int base) {
  const std::string trimmed = text::strip(s, std::nullopt, true, true);
  std::string digits;
  for (size_t i = 0; i < trimmed.size(); ++i) {
    if (trimmed[i] == '_' && i > 0 && i + 1 < trimmed.size() && trimmed[i - 1] != '_') continue;
    digits.push_back(trimmed[i]);
  }
  if (digits.empty() || digits.find_first_of(" \t\n") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(digits.c_str(), &end, base);
  if (*end != '\0' || errno == ERANGE || !(std::isxdigit(static_cast<unsigned char>(digits.back())))) {
    return std::nullopt;
  }
  return value;
}

// Python float(str), including "inf" and "nan".
std::optional<double> parse_float(const std::string& s) {
  const std::string trimmed = text::strip(s, std::nullopt, true, true);
  if (trimmed.empty() || trimmed.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(trimmed.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return value;
}

Value filter_number(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, bool to_int) {
  in.require_defined(value, pos);  // int(Undefined) raises in jinja2
  if (to_int) {
    const ArgBinder args(in, "int", call, {"default", "base"}, pos);
    Value fallback = args.get_or(0, Value::from_int(0));
    if (value.is_integral()) return Value::from_int(value.as_int());
    if (value.kind == Kind::Float) {
      if (!std::isfinite(value.real) || std::fabs(value.real) >= 9.2e18) return fallback;
      return Value::from_int(static_cast<int64_t>(value.real));
    }
    if (!value.is_string()) return fallback;
    if (std::optional<int64_t> parsed = parse_int(value.text, static_cast<int>(args.get_int(1, 10)))) {
      return Value::from_int(*parsed);
    }
    const std::optional<double> real = parse_float(value.text);
    if (!real || !std::isfinite(*real) || std::fabs(*real) >= 9.2e18) return fallback;
    return Value::from_int(static_cast<int64_t>(*real));
  }
  const ArgBinder args(in, "float", call, {"default"}, pos);
  if (value.is_number()) return Value::from_float(value.as_double());
  if (value.is_string()) {
    if (std::optional<double> parsed = parse_float(value.text)) return Value::from_float(*parsed);
  }
  return args.get_or(0, Value::from_float(0.0));
}

Value filter_round(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "round", call, {"precision", "method"}, pos);
  if (!value.is_number()) in.fail(pos, "round: expected a number, got " + type_name(value));
  const int64_t precision = std::clamp<int64_t>(args.get_int(0, 0), -300, 300);
  const std::string method = args.get_string(1, "common");
  const double x = value.as_double();
  if (method == "common" && value.is_integral()) {  // Python's round(int, n) stays an int
    if (precision >= 0) return Value::from_int(value.as_int());
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::from_int(static_cast<int64_t>(std::nearbyint(x / scale) * scale));
  }
  if (method == "ceil" || method == "floor") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double scaled = x * scale;
    return Value::from_float((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
  }
  if (method != "common") in.fail(pos, "round: method must be common, ceil or floor");
  if (precision <= 0 || !std::isfinite(x)) {
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::from_float(std::nearbyint(x / scale) * scale);
  }
  // Python rounds the exact binary value half-to-even; printf does the same.
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, "%.*f", static_cast<int>(std::min<int64_t>(precision, 100)), x);
  return Value::from_float(std::strtod(buffer, nullptr));
}

Value filter_items(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "items", call, {}, pos);
  Value out = Value::new_generator({});
  if (value.is_undefined()) return out;
  if (!value.is_dict()) in.fail(pos, "can only get item pairs from a mapping");
  for (const auto& [key, item] : value.dict->entries) {
    out.list->items.push_back(Value::new_list({Value::from_string(key), item}, true));
  }
  return out;
}

Value filter_dictsort(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "dictsort", call, {"case_sensitive", "by", "reverse"}, pos);
  if (!value.is_dict()) in.fail(pos, "dictsort: expected a mapping, got " + type_name(value));
  const bool case_sensitive = args.get_bool(0, false);
  const std::string by = args.get_string(1, "key");
  if (by != "key" && by != "value") in.fail(pos, "dictsort: 'by' must be 'key' or 'value'");
  const bool reverse = args.get_bool(2, false);
  std::vector<Value> pairs;
  for (const auto& [key, item] : value.dict->entries)
    pairs.push_back(Value::new_list({Value::from_string(key), item}, true));
  const size_t index = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
    const Value x = sort_key(in, a.list->items[index], std::nullopt, case_sensitive, pos);
    const Value y = sort_key(in, b.list->items[index], std::nullopt, case_sensitive, pos);
    return reverse ? checked_compare(in, y, x, pos) < 0 : checked_compare(in, x, y, pos) < 0;
  });
  return Value::new_list(std::move(pairs));
}

Value filter_sort(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "sort", call, {"reverse", "case_sensitive", "attribute"}, pos);
  std::vector<Value> items = elements(in, value, pos);
  const bool reverse = args.get_bool(0, false);
  const bool case_sensitive = args.get_bool(1, false);
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& item : items) keyed.emplace_back(sort_key(in, item, args.get(2), case_sensitive, pos), std::move(item));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? checked_compare(in, b.first, a.first, pos) < 0 : checked_compare(in, a.first, b.first, pos) < 0;
  });
  Value out = Value::new_list();
  for (auto& entry : keyed) out.list->items.push_back(std::move(entry.second));
  return out;
}

Value filter_unique(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "unique", call, {"case_sensitive", "attribute"}, pos);
  Value out = Value::new_generator({});
  std::vector<Value> seen;
  for (const Value& item : elements(in, value, pos)) {
    Value key = sort_key(in, item, args.get(1), args.get_bool(0, false), pos);
    const bool duplicate =
        std::any_of(seen.begin(), seen.end(), [&](const Value& other) { return equals(other, key, &in.budget()); });
    if (duplicate) continue;
    seen.push_back(std::move(key));
    out.list->items.push_back(item);
  }
  return out;
}

Value filter_min_max(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, bool is_max) {
  const ArgBinder args(in, is_max ? "max" : "min", call, {"case_sensitive", "attribute"}, pos);
  const std::vector<Value> items = elements(in, value, pos);
  if (items.empty()) return Value::undefined("no aggregated item, sequence was empty");
  size_t best = 0;
  Value best_key = sort_key(in, items[0], args.get(1), args.get_bool(0, false), pos);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(in, items[i], args.get(1), args.get_bool(0, false), pos);
    const int order = checked_compare(in, key, best_key, pos);
    if (is_max ? order > 0 : order < 0) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

Value filter_sum(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "sum", call, {"attribute", "start"}, pos);
  Value total = args.get_or(1, Value::from_int(0));
  for (const Value& item : elements(in, value, pos)) {
    const Value term = args.get(0) ? lookup_path(in, item, to_str(*args.get(0)), pos) : item;
    total = binary_arithmetic(in, BinaryOp::Add, total, term, pos);
  }
  return total;
}

Value filter_indent(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "indent", call, {"width", "first", "blank"}, pos);
  in.require_defined(value, pos);
  if (!value.is_string()) in.fail(pos, "indent: expected a string, got " + type_name(value));
  const Value width = args.get_or(0, Value::from_int(4));
  const std::string indentation =
      width.is_string() ? width.text
                        : std::string(static_cast<size_t>(std::clamp<int64_t>(width.as_int(), 0, 256)), ' ');
  const std::vector<std::string> lines = text::splitlines(to_str(value, &in.budget()) + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (args.get_bool(2, false) || !lines[i].empty()) out += indentation;
    }
    out += lines[i];
    in.check_size(out.size(), pos);
  }
  if (args.get_bool(1, false)) out = indentation + out;
  return Value::from_string(std::move(out));
}

// select/reject (`test` names a test) and selectattr/rejectattr (first argument names an attribute).
Value filter_select(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, bool by_attribute, bool keep) {
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (call.positional.empty()) in.fail(pos, "selectattr/rejectattr need an attribute name");
    attribute = to_str(call.positional[next++]);
  }
  std::optional<std::string> test;
  if (next < call.positional.size()) test = to_str(call.positional[next++]);
  if (test && !is_known_test(*test)) in.fail(pos, "unknown test '" + *test + "'");
  CallArgs test_args;
  test_args.positional.assign(call.positional.begin() + static_cast<std::ptrdiff_t>(next), call.positional.end());
  test_args.keyword = call.keyword;
  Value out = Value::new_generator({});
  if (!truthy(value)) return out;  // jinja2 skips falsy inputs without iterating them
  for (const Value& item : elements(in, value, pos)) {
    const Value subject = by_attribute ? lookup_path(in, item, attribute, pos) : item;
    CallArgs args = test_args;
    const bool passed = test ? apply_test(in, *test, subject, args, pos) : truthy(subject);
    if (passed == keep) out.list->items.push_back(item);
  }
  return out;
}

Value filter_map(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos) {
  Value out = Value::new_generator({});
  const std::vector<Value> items = truthy(value) ? elements(in, value, pos) : std::vector<Value>{};
  if (call.positional.empty()) {
    const ArgBinder args(in, "map", call, {"attribute", "default"}, pos);
    if (!args.get(0)) in.fail(pos, "map() needs a filter name or attribute=");
    for (const Value& item : items) {
      Value mapped = lookup_path(in, item, to_str(*args.get(0)), pos);
      if (mapped.is_undefined() && args.get(1)) mapped = *args.get(1);
      out.list->items.push_back(std::move(mapped));
    }
    return out;
  }
  const std::string filter = to_str(call.positional[0]);
  if (!is_known_filter(filter)) in.fail(pos, "unknown filter '" + filter + "'");
  CallArgs rest;
  rest.positional.assign(call.positional.begin() + 1, call.positional.end());
  rest.keyword = call.keyword;
  for (const Value& item : items) {
    CallArgs args = rest;
    out.list->items.push_back(apply_filter(in, filter, item, args, pos));
  }
  return out;
}

Value filter_sequence(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, std::string_view name) {
  const ArgBinder args(in, name, call, {}, pos);
  if (name == "abs") {
    if (!value.is_number()) in.fail(pos, "bad operand type for abs(): '" + type_name(value) + "'");
    if (value.kind == Kind::Float) return Value::from_float(std::fabs(value.real));
    if (value.as_int() == INT64_MIN) in.fail(pos, "integer overflow");
    return Value::from_int(std::llabs(value.as_int()));
  }
  std::vector<Value> items = elements(in, value, pos);
  if (name == "reverse") {
    if (value.is_string()) {
      std::u32string chars = text::decode(value.text);
      std::reverse(chars.begin(), chars.end());
      return Value::from_string(text::encode(chars));
    }
    std::reverse(items.begin(), items.end());
    return Value::new_generator(std::move(items));
  }
  return Value::new_list(std::move(items));
}

Value filter_misc(Interpreter& in, const Value& value, CallArgs& call, SourcePos pos, std::string_view name) {
  if (name == "attr") {
    const ArgBinder args(in, name, call, {"name"}, pos);
    return in.get_attr(value, args.get_string(0, ""), pos);
  }
  if (name == "format") {
    Value format_args = Value::new_list(call.positional, true);
    if (!call.keyword.empty()) {
      if (!call.positional.empty()) in.fail(pos, "format: can't mix positional and keyword arguments");
      format_args = Value::new_dict();
      for (auto& [key, item] : call.keyword) format_args.dict->set(key, item);
    }
    return Value::from_string(percent_format(in, to_str(value, &in.budget()), format_args, pos));
  }
  const ArgBinder args(in, name, call, {}, pos);  // wordcount
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : text::decode(to_str(value, &in.budget()))) {
    std::string one;
    text::append_utf8(one, c);
    const bool word_char = c == '_' || text::all_of_class(one, "alnum");  // Python's \w
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value::from_int(words);
}

struct NamedFilter {
  std::string_view name;
  Filter filter;
};

constexpr NamedFilter kFilters[] = {
    {"tojson", filter_tojson},
    {"length", filter_length},
    {"count", filter_length},
    {"default", filter_default},
    {"d", filter_default},
    {"join", filter_join},
    {"first",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_first_last(in, v, a, p, false); }},
    {"last",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_first_last(in, v, a, p, true); }},
    {"trim",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "trim"); }},
    {"replace", [](Interpreter& in, const Value& v, CallArgs& a,
                   SourcePos p) { return filter_string_op(in, v, a, p, "replace"); }},
    {"upper",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "upper"); }},
    {"lower",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "lower"); }},
    {"title",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "title"); }},
    {"capitalize", [](Interpreter& in, const Value& v, CallArgs& a,
                      SourcePos p) { return filter_string_op(in, v, a, p, "capitalize"); }},
    {"string",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "string"); }},
    {"safe",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "safe"); }},
    {"escape",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "escape"); }},
    {"e",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_string_op(in, v, a, p, "escape"); }},
    {"int", [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_number(in, v, a, p, true); }},
    {"float",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_number(in, v, a, p, false); }},
    {"round", filter_round},
    {"items", filter_items},
    {"dictsort", filter_dictsort},
    {"sort", filter_sort},
    {"unique", filter_unique},
    {"min",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_min_max(in, v, a, p, false); }},
    {"max",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_min_max(in, v, a, p, true); }},
    {"sum", filter_sum},
    {"indent", filter_indent},
    {"select",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_select(in, v, a, p, false, true); }},
    {"reject", [](Interpreter& in, const Value& v, CallArgs& a,
                  SourcePos p) { return filter_select(in, v, a, p, false, false); }},
    {"selectattr",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_select(in, v, a, p, true, true); }},
    {"rejectattr",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_select(in, v, a, p, true, false); }},
    {"map", filter_map},
    {"list",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_sequence(in, v, a, p, "list"); }},
    {"reverse",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_sequence(in, v, a, p, "reverse"); }},
    {"abs",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_sequence(in, v, a, p, "abs"); }},
    {"attr",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_misc(in, v, a, p, "attr"); }},
    {"format",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_misc(in, v, a, p, "format"); }},
    {"wordcount",
     [](Interpreter& in, const Value& v, CallArgs& a, SourcePos p) { return filter_misc(in, v, a, p, "wordcount"); }},
};

constexpr std::string_view kTests[] = {
    "defined", "undefined", "none",     "boolean",  "true",  "false", "integer",     "float",  "number",      "string",
    "mapping", "sequence",  "iterable", "callable", "odd",   "even",  "divisibleby", "eq",     "equalto",     "==",
    "ne",      "!=",        "lt",       "lessthan", "<",     "le",    "<=",          "gt",     "greaterthan", ">",
    "ge",      ">=",        "in",       "sameas",   "lower", "upper", "escaped",     "filter", "test"};

bool compare_test(Interpreter& in, std::string_view name, const Value& value, const Value& other, SourcePos pos) {
  if (name == "eq" || name == "equalto" || name == "==") return equals(value, other, &in.budget());
  if (name == "ne" || name == "!=") return !equals(value, other, &in.budget());
  in.require_defined(value, pos);
  in.require_defined(other, pos);
  const int order = checked_compare(in, value, other, pos);
  if (name == "lt" || name == "lessthan" || name == "<") return order < 0;
  if (name == "le" || name == "<=") return order <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return order > 0;
  return order >= 0;
}

}  // namespace

bool is_known_filter(std::string_view name) {
  return std::any_of(std::begin(kFilters), std::end(kFilters), [&](const NamedFilter& f) { return f.name == name; });
}

bool is_known_test(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

Value apply_filter(Interpreter& interpreter, std::string_view name, const Value& value, CallArgs& args, SourcePos pos) {
  for (const NamedFilter& filter : kFilters) {
    if (filter.name == name) return filter.filter(interpreter, value, args, pos);
  }
  interpreter.fail(pos, "unknown filter '" + std::string(name) + "'");
}

bool apply_test(Interpreter& in, std::string_view name, const Value& value, CallArgs& call, SourcePos pos) {
  const bool one_arg = name != "defined" && name != "undefined" && name != "none" && name != "boolean" &&
                       name != "true" && name != "false" && name != "integer" && name != "float" && name != "number" &&
                       name != "string" && name != "mapping" && name != "sequence" && name != "iterable" &&
                       name != "callable" && name != "odd" && name != "even" && name != "lower" && name != "upper" &&
                       name != "escaped" && name != "filter" && name != "test";
  const ArgBinder args(
      in, name, call,
      one_arg ? std::initializer_list<std::string_view>{"other"} : std::initializer_list<std::string_view>{}, pos);
  const Kind kind = value.kind;
  if (name == "defined") return kind != Kind::Undefined;
  if (name == "undefined") return kind == Kind::Undefined;
  if (name == "none") return kind == Kind::None;
  if (name == "boolean") return kind == Kind::Bool;
  if (name == "true" || name == "false") return kind == Kind::Bool && value.boolean == (name == "true");
  if (name == "integer") return kind == Kind::Int;
  if (name == "float") return kind == Kind::Float;
  if (name == "number") return value.is_number();
  if (name == "string") return kind == Kind::String;
  if (name == "mapping") return value.is_dict();
  if (name == "sequence" || name == "iterable") {
    if (value.is_generator()) return name == "iterable";
    return kind == Kind::Undefined || kind == Kind::String || kind == Kind::List || value.is_dict();
  }
  if (name == "callable") return kind == Kind::Function || kind == Kind::Undefined;  // Undefined has __call__
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") return text::all_of_class(to_str(value), name);
  if (name == "filter") return value.is_string() && is_known_filter(value.text);
  if (name == "test") return value.is_string() && is_known_test(value.text);
  if (name == "odd" || name == "even") {
    const Value remainder = binary_arithmetic(in, BinaryOp::Modulo, value, Value::from_int(2), pos);
    return equals(remainder, Value::from_int(name == "odd" ? 1 : 0));
  }
  const Value other = args.get_or(0, Value::undefined("test '" + std::string(name) + "' needs an argument"));
  if (name == "divisibleby") return !truthy(binary_arithmetic(in, BinaryOp::Modulo, value, other, pos));
  if (name == "in") return in.contains(other, value, pos);
  if (name == "sameas") {
    if (kind != other.kind) return false;
    if (kind == Kind::List) return value.list == other.list;
    if (kind == Kind::Dict) return value.dict == other.dict;
    if (kind == Kind::Function) return value.function == other.function;
    return equals(value, other);
  }
  return compare_test(in, name, value, other, pos);
}

}  // namespace anvil::tokenizer::jinja
