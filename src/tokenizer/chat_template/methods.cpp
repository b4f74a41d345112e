// Methods of str, dict and list that jinja2's immutable sandbox allows, the global functions
// (range, dict, namespace, raise_exception, strftime_now) and argument binding.
#include <algorithm>
#include <ctime>

#include "anvil/core/error.h"
#include "builtins.h"
#include "interpreter.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox MAX_RANGE

using Method = Value (*)(Interpreter&, const Value&, CallArgs&, SourcePos);

std::optional<std::string> optional_string(Interpreter& interpreter, const ArgBinder& args, size_t index,
                                           std::string_view what, SourcePos pos) {
  const std::optional<Value>& value = args.get(index);
  if (!value || value->is_none()) return std::nullopt;
  if (!value->is_string()) interpreter.fail(pos, std::string(what) + " arg must be None or str");
  return value->text;
}

Value string_list(std::vector<std::string> parts) {
  Value list = Value::new_list();
  for (auto& part : parts) list.list->items.push_back(Value::from_string(std::move(part)));
  return list;
}

Value str_strip(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos, bool left, bool right) {
  const ArgBinder args(in, "strip", call, {"chars"}, pos);
  return Value::from_string(text::strip(self.text, optional_string(in, args, 0, "strip", pos), left, right));
}

Value str_split(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos, bool from_right) {
  const ArgBinder args(in, "split", call, {"sep", "maxsplit"}, pos);
  const std::optional<std::string> separator = optional_string(in, args, 0, "split", pos);
  if (separator && separator->empty()) in.fail(pos, "empty separator");
  const std::vector<std::string> parts = text::split(self.text, separator, args.get_int(1, -1), from_right);
  in.budget().charge(static_cast<int64_t>(parts.size()));
  return string_list(parts);
}

Value str_affix(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos, bool suffix) {
  const ArgBinder args(in, suffix ? "endswith" : "startswith", call, {"prefix"}, pos);
  const Value affix = args.get_or(0, Value::undefined());
  std::vector<std::string> candidates;
  if (affix.is_string()) {
    candidates.push_back(affix.text);
  } else if (affix.is_list() && affix.list->is_tuple) {
    for (const Value& item : affix.list->items) {
      if (!item.is_string()) in.fail(pos, "tuple for startswith/endswith must only contain str");
      candidates.push_back(item.text);
    }
  } else {
    in.fail(pos, "startswith/endswith first arg must be str or a tuple of str, not " + type_name(affix));
  }
  const std::string& s = self.text;
  return Value::from_bool(std::any_of(candidates.begin(), candidates.end(), [&](const std::string& c) {
    return c.size() <= s.size() && s.compare(suffix ? s.size() - c.size() : 0, c.size(), c) == 0;
  }));
}

Value str_replace(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "replace", call, {"old", "new", "count"}, pos);
  const std::string from = args.get_string(0, "");
  const std::string to = args.get_string(1, "");
  if (!args.get(0) || !args.get(1)) in.fail(pos, "replace() takes at least 2 arguments");
  std::string out = text::replace(self.text, from, to, args.get_int(2, -1));
  in.check_size(out.size(), pos);
  return Value::from_string(std::move(out));
}

Value str_join(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "join", call, {"iterable"}, pos);
  const Value items = args.get_or(0, Value::undefined());
  if (!items.is_list()) in.fail(pos, "can only join an iterable of strings");
  std::string out;
  for (size_t i = 0; i < items.list->items.size(); ++i) {
    const Value& item = items.list->items[i];
    if (!item.is_string()) in.fail(pos, "sequence item " + std::to_string(i) + ": expected str instance");
    if (i > 0) out += self.text;
    out += item.text;
    in.check_size(out.size(), pos);
  }
  return Value::from_string(std::move(out));
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs or conversions).
Value str_format(Interpreter& in, const Value& self, CallArgs& call, SourcePos pos) {
  const std::string& f = self.text;
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out.push_back('}');
      ++i;
      continue;
    }
    if (f[i] != '{') {
      out.push_back(f[i]);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) in.fail(pos, "single '{' encountered in format string");
    const std::string field = f.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) in.fail(pos, "unsupported str.format field '" + field + "'");
    const Value* arg = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      const size_t index = field.empty() ? auto_index++ : std::stoul(field.substr(0, 9));
      if (index >= call.positional.size()) in.fail(pos, "str.format: positional argument index out of range");
      arg = &call.positional[index];
    } else {
      for (const auto& [name, value] : call.keyword) {
        if (name == field) arg = &value;
      }
      if (arg == nullptr) in.fail(pos, "str.format: missing argument '" + field + "'");
    }
    out += to_str(*arg, &in.budget());
    in.check_size(out.size(), pos);
    i = close;
  }
  return Value::from_string(std::move(out));
}

Value str_method(Interpreter& in, const std::string& name, const Value& self, CallArgs& call, SourcePos pos) {
  if (name == "strip") return str_strip(in, self, call, pos, true, true);
  if (name == "lstrip") return str_strip(in, self, call, pos, true, false);
  if (name == "rstrip") return str_strip(in, self, call, pos, false, true);
  if (name == "split") return str_split(in, self, call, pos, false);
  if (name == "rsplit") return str_split(in, self, call, pos, true);
  if (name == "startswith") return str_affix(in, self, call, pos, false);
  if (name == "endswith") return str_affix(in, self, call, pos, true);
  if (name == "replace") return str_replace(in, self, call, pos);
  if (name == "join") return str_join(in, self, call, pos);
  if (name == "format") return str_format(in, self, call, pos);
  if (name == "splitlines") {
    const ArgBinder args(in, name, call, {"keepends"}, pos);
    return string_list(text::splitlines(self.text, args.get_bool(0, false)));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    const ArgBinder args(in, name, call, {"sub"}, pos);
    if (!args.get(0) || !args.get(0)->is_string()) in.fail(pos, name + "() argument must be str");
    if (name == "count") return Value::from_int(text::count(self.text, args.get(0)->text));
    return Value::from_int(text::find(self.text, args.get(0)->text, name == "rfind"));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const ArgBinder args(in, name, call, {"affix"}, pos);
    const std::string affix = args.get_string(0, "");
    const std::string& s = self.text;
    if (name == "removeprefix" && s.rfind(affix, 0) == 0) return Value::from_string(s.substr(affix.size()));
    if (name == "removesuffix" && affix.size() <= s.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::from_string(s.substr(0, s.size() - affix.size()));
    }
    return self;
  }
  const ArgBinder no_args(in, name, call, {}, pos);
  if (name == "upper") return Value::from_string(text::upper(self.text));
  if (name == "lower") return Value::from_string(text::lower(self.text));
  if (name == "title") return Value::from_string(text::title(self.text));
  if (name == "capitalize") return Value::from_string(text::capitalize(self.text));
  return Value::from_bool(text::all_of_class(self.text, std::string_view(name).substr(2)));  // isalpha...
}

Value dict_method(Interpreter& in, const std::string& name, const Value& self, CallArgs& call, SourcePos pos) {
  if (name == "get") {
    const ArgBinder args(in, name, call, {"key", "default"}, pos);
    const Value key = args.get_or(0, Value::undefined());
    const Value* found = key.is_string() ? self.dict->find(key.text) : nullptr;
    return found != nullptr ? *found : args.get_or(1, Value::none());
  }
  const ArgBinder no_args(in, name, call, {}, pos);
  if (name == "copy") {
    Value copy = Value::new_dict();
    copy.dict->entries = self.dict->entries;
    return copy;
  }
  Value out = Value::new_list();
  for (const auto& [key, value] : self.dict->entries) {
    if (name == "keys") {
      out.list->items.push_back(Value::from_string(key));
    } else if (name == "values") {
      out.list->items.push_back(value);
    } else {
      out.list->items.push_back(Value::new_list({Value::from_string(key), value}, true));
    }
  }
  return out;
}

Value list_method(Interpreter& in, const std::string& name, const Value& self, CallArgs& call, SourcePos pos) {
  if (name == "copy") {
    const ArgBinder no_args(in, name, call, {}, pos);
    return Value::new_list(self.list->items, self.list->is_tuple);
  }
  const ArgBinder args(in, name, call, {"value"}, pos);
  const Value needle = args.get_or(0, Value::undefined());
  int64_t count = 0;
  for (size_t i = 0; i < self.list->items.size(); ++i) {
    if (!equals(self.list->items[i], needle, &in.budget())) continue;
    if (name == "index") return Value::from_int(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") in.fail(pos, repr(needle) + " is not in list");
  return Value::from_int(count);
}

constexpr std::string_view kStrMethods[] = {
    "strip",   "lstrip",     "rstrip",  "split",   "rsplit",  "startswith", "endswith",     "replace",     "join",
    "format",  "splitlines", "find",    "rfind",   "count",   "upper",      "lower",        "title",       "capitalize",
    "isalpha", "isdigit",    "isalnum", "isspace", "islower", "isupper",    "removeprefix", "removesuffix"};
constexpr std::string_view kDictMethods[] = {"items", "keys", "values", "get", "copy"};
constexpr std::string_view kListMethods[] = {"index", "count", "copy"};

template <size_t N>
bool listed(const std::string_view (&names)[N], const std::string& name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Value range_function(Interpreter& in, CallArgs& call, SourcePos pos) {
  if (!call.keyword.empty() || call.positional.empty() || call.positional.size() > 3) {
    in.fail(pos, "range() takes 1 to 3 positional arguments");
  }
  for (const Value& arg : call.positional) {
    if (!arg.is_integral()) in.fail(pos, "range() arguments must be integers, not " + type_name(arg));
  }
  const size_t n = call.positional.size();
  const int64_t start = n == 1 ? 0 : call.positional[0].as_int();
  const int64_t stop = n == 1 ? call.positional[0].as_int() : call.positional[1].as_int();
  const int64_t step = n == 3 ? call.positional[2].as_int() : 1;
  if (step == 0) in.fail(pos, "range() arg 3 must not be zero");
  const long double span = (static_cast<long double>(stop) - start) / step;
  if (span > kMaxRange) in.fail(pos, "range too big: the sandbox blocks ranges larger than 100000");
  Value list = Value::new_list();
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) list.list->items.push_back(Value::from_int(i));
  in.budget().charge(static_cast<int64_t>(list.list->items.size()));
  return list;
}

// dict(**kwargs) / namespace(**kwargs), optionally from a dict positional argument.
Value dict_function(Interpreter& in, CallArgs& call, SourcePos pos, bool is_namespace) {
  Value dict = Value::new_dict();
  dict.dict->is_namespace = is_namespace;
  if (call.positional.size() > 1) in.fail(pos, "expected at most 1 positional argument");
  if (!call.positional.empty()) {
    if (!call.positional[0].is_dict()) in.fail(pos, "positional argument must be a dict");
    dict.dict->entries = call.positional[0].dict->entries;
  }
  for (auto& [key, value] : call.keyword) dict.dict->set(key, value);
  return dict;
}

std::string system_strftime(const std::string& format) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string buffer(256 + format.size() * 8, '\0');
  const size_t written = std::strftime(buffer.data(), buffer.size(), format.c_str(), &local);
  buffer.resize(written);
  return buffer;
}

Value strftime_now_function(Interpreter& in, CallArgs& call, SourcePos pos) {
  const ArgBinder args(in, "strftime_now", call, {"format"}, pos);
  if (!args.get(0) || !args.get(0)->is_string()) in.fail(pos, "strftime_now() needs a format string");
  const std::string& format = args.get(0)->text;
  if (format.size() > 1024 || format.find('\0') != std::string::npos) in.fail(pos, "strftime_now(): bad format");
  const auto& clock = in.options().strftime_now;
  return Value::from_string(clock ? clock(format) : system_strftime(format));
}

}  // namespace

ArgBinder::ArgBinder(Interpreter& interpreter, std::string_view function, CallArgs& args,
                     std::initializer_list<std::string_view> parameters, SourcePos pos)
    : interpreter_(interpreter), function_(function), pos_(pos), values_(parameters.size()) {
  if (args.positional.size() > parameters.size()) {
    interpreter.fail(pos, function_ + "() takes at most " + std::to_string(parameters.size()) + " argument(s), " +
                              std::to_string(args.positional.size()) + " given");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = args.positional[i];
  for (auto& [name, value] : args.keyword) {
    const auto it = std::find(parameters.begin(), parameters.end(), name);
    if (it == parameters.end())
      interpreter.fail(pos, function_ + "() got an unexpected keyword argument '" + name + "'");
    auto& slot = values_[static_cast<size_t>(it - parameters.begin())];
    if (slot) interpreter.fail(pos, function_ + "() got multiple values for argument '" + name + "'");
    slot = value;
  }
}

Value ArgBinder::get_or(size_t index, const Value& fallback) const {
  return values_[index] ? *values_[index] : fallback;
}

int64_t ArgBinder::get_int(size_t index, int64_t fallback) const {
  if (!values_[index] || values_[index]->is_none()) return fallback;
  if (!values_[index]->is_integral()) {
    interpreter_.fail(pos_, function_ + "(): expected an integer argument, got " + type_name(*values_[index]));
  }
  return values_[index]->as_int();
}

std::string ArgBinder::get_string(size_t index, const std::string& fallback) const {
  if (!values_[index]) return fallback;
  if (!values_[index]->is_string()) {
    interpreter_.fail(pos_, function_ + "(): expected a string argument, got " + type_name(*values_[index]));
  }
  return values_[index]->text;
}

bool ArgBinder::get_bool(size_t index, bool fallback) const {
  return values_[index] ? truthy(*values_[index]) : fallback;
}

std::optional<Value> bound_method(const Value& receiver, const std::string& name) {
  Value (*dispatch)(Interpreter&, const std::string&, const Value&, CallArgs&, SourcePos) = nullptr;
  if (receiver.is_string() && listed(kStrMethods, name)) dispatch = str_method;
  if (receiver.is_dict() && listed(kDictMethods, name)) dispatch = dict_method;
  if (receiver.is_sequence() && listed(kListMethods, name)) dispatch = list_method;
  if (dispatch == nullptr) return std::nullopt;
  return Value::new_function(name, [dispatch, receiver, name](Interpreter& in, CallArgs& args, SourcePos pos) {
    return dispatch(in, name, receiver, args, pos);
  });
}

std::vector<std::pair<std::string, Value>> global_functions() {
  std::vector<std::pair<std::string, Value>> globals;
  globals.emplace_back("range", Value::new_function("range", range_function));
  globals.emplace_back("dict", Value::new_function("dict", [](Interpreter& in, CallArgs& args, SourcePos pos) {
                         return dict_function(in, args, pos, false);
                       }));
  globals.emplace_back("namespace",
                       Value::new_function("namespace", [](Interpreter& in, CallArgs& args, SourcePos pos) {
                         return dict_function(in, args, pos, true);
                       }));
  globals.emplace_back(
      "raise_exception", Value::new_function("raise_exception", [](Interpreter& in, CallArgs& args, SourcePos pos) {
        const ArgBinder bound(in, "raise_exception", args, {"message"}, pos);
        const std::string message = to_str(bound.get_or(0, Value::from_string("")), &in.budget());
        throw make_error("chat template raised an exception at ", pos.line, ":", pos.column, ": ", message);
        return Value::none();
      }));
  globals.emplace_back("strftime_now", Value::new_function("strftime_now", strftime_now_function));
  return globals;
}

}  // namespace anvil::tokenizer::jinja
