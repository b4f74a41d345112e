#pragma once
// The values a Jinja template computes with, modelled on the Python objects jinja2 sees:
// Undefined, None, bool, int, float, str, list/tuple, dict (insertion ordered), namespace
// and callables. Lists and dicts are shared by reference, as in Python.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace anvil::tokenizer::jinja {

class Interpreter;
struct Value;

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

// A position in the template text, for error messages.
struct SourcePos {
  int line = 0;
  int column = 0;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;  // only changes how it prints: (1, 2) instead of [1, 2]
  // The lazy result of select/map/unique/reverse/items in jinja2 (a Python generator): always
  // true, no len(), not subscriptable, not JSON serialisable; iterating it works.
  bool is_generator = false;
};

struct DictData {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order
  bool is_namespace = false;                           // namespace(): the one object `set ns.x` may change

  [[nodiscard]] const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct FunctionData {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&, SourcePos)> call;
};

struct Value {
  Kind kind = Kind::Undefined;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;  // String: the UTF-8 text; Undefined: what was missing, for error messages
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<const FunctionData> function;

  static Value undefined(std::string hint = {});
  static Value none();
  static Value from_bool(bool value);
  static Value from_int(int64_t value);
  static Value from_float(double value);
  static Value from_string(std::string value);
  static Value new_list(std::vector<Value> items = {}, bool is_tuple = false);
  static Value new_generator(std::vector<Value> items);
  static Value new_dict();
  static Value new_function(std::string name, std::function<Value(Interpreter&, CallArgs&, SourcePos)> call);

  [[nodiscard]] bool is_undefined() const { return kind == Kind::Undefined; }
  [[nodiscard]] bool is_none() const { return kind == Kind::None; }
  [[nodiscard]] bool is_string() const { return kind == Kind::String; }
  [[nodiscard]] bool is_list() const { return kind == Kind::List; }
  [[nodiscard]] bool is_generator() const { return kind == Kind::List && list->is_generator; }
  // A real list or tuple (not a generator).
  [[nodiscard]] bool is_sequence() const { return kind == Kind::List && !list->is_generator; }
  [[nodiscard]] bool is_dict() const { return kind == Kind::Dict && !dict->is_namespace; }
  [[nodiscard]] bool is_namespace() const { return kind == Kind::Dict && dict->is_namespace; }
  // int or bool (Python's bool is an int).
  [[nodiscard]] bool is_integral() const { return kind == Kind::Int || kind == Kind::Bool; }
  [[nodiscard]] bool is_number() const { return is_integral() || kind == Kind::Float; }
  [[nodiscard]] int64_t as_int() const { return kind == Kind::Bool ? int64_t{boolean} : integer; }
  [[nodiscard]] double as_double() const { return kind == Kind::Float ? real : static_cast<double>(as_int()); }
};

// Bounds the deep operations (printing, comparing, serialising) on values an untrusted template
// built: every element visited costs a step, and the text produced may not exceed max_bytes.
// Throws anvil::Error when exhausted. A null Budget* means unbounded (trusted callers).
struct Budget {
  int64_t steps_left = 0;
  size_t max_bytes = 0;

  void charge(int64_t steps = 1);
  void check_size(size_t bytes) const;
};

// Python's type name, as in its error messages: 'str', 'int', 'list', 'dict', 'NoneType'...
std::string type_name(const Value& value);
// Python truthiness; Undefined is false.
bool truthy(const Value& value);
// Python str(): strings as is, None as "None", containers as their repr; Undefined is "".
std::string to_str(const Value& value, Budget* budget = nullptr);
// Python repr(): quoted strings, [..], (..), {'k': v}.
std::string repr(const Value& value, Budget* budget = nullptr);
// Python's repr of a float: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string float_repr(double value);
// Python ==. Undefined equals only Undefined.
bool equals(const Value& a, const Value& b, Budget* budget = nullptr);
// Python's ordering for <, <=, >, >=: numbers, strings, lists/tuples; nullopt when not comparable.
std::optional<int> compare(const Value& a, const Value& b, Budget* budget = nullptr);

// Converts parsed JSON (object order kept) to a Value.
Value from_json(const nlohmann::ordered_json& json);

// json.dumps options, as transformers' tojson filter passes them.
struct JsonFormat {
  bool has_indent = false;  // indent=None means one line
  std::string indent;       // the text for one level
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// Python json.dumps(value, ...); throws anvil::Error for values JSON cannot hold (Undefined, callables).
std::string dump_json(const Value& value, const JsonFormat& format, Budget* budget = nullptr);

}  // namespace anvil::tokenizer::jinja
