#pragma once
// Filters, tests, methods of str/dict/list and global functions available to templates.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "value.h"

namespace anvil::tokenizer::jinja {

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

// `value | name(args)`.
Value apply_filter(Interpreter& interpreter, std::string_view name, const Value& value, CallArgs& args, SourcePos pos);
// `value is name(args)`.
bool apply_test(Interpreter& interpreter, std::string_view name, const Value& value, CallArgs& args, SourcePos pos);

// The bound method `receiver.name` (str, dict and list methods jinja2's immutable sandbox
// allows), or nullopt when the receiver has no such method.
std::optional<Value> bound_method(const Value& receiver, const std::string& name);

// range, dict, namespace, raise_exception, strftime_now: (name, function) pairs.
std::vector<std::pair<std::string, Value>> global_functions();

// Binds call arguments to parameter names, Python style: positional first, then keywords.
// Throws (naming `function`) on unknown keywords, duplicates or too many arguments.
class ArgBinder {
 public:
  ArgBinder(Interpreter& interpreter, std::string_view function, CallArgs& args,
            std::initializer_list<std::string_view> parameters, SourcePos pos);
  // The argument for parameter `index`, or nullopt when not passed.
  [[nodiscard]] const std::optional<Value>& get(size_t index) const { return values_[index]; }
  [[nodiscard]] Value get_or(size_t index, const Value& fallback) const;
  // Parameter `index` as an int / string / bool, with a fallback when absent.
  [[nodiscard]] int64_t get_int(size_t index, int64_t fallback) const;
  [[nodiscard]] std::string get_string(size_t index, const std::string& fallback) const;
  [[nodiscard]] bool get_bool(size_t index, bool fallback) const;

 private:
  Interpreter& interpreter_;
  std::string function_;
  SourcePos pos_;
  std::vector<std::optional<Value>> values_;
};

}  // namespace anvil::tokenizer::jinja
