// Expression evaluation: names, literals, attribute/item access, slicing, calls, filters,
// tests, comparisons and the boolean operators, with Python semantics.
#include <algorithm>

#include "anvil/core/error.h"
#include "builtins.h"
#include "interpreter.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

// Python slice bounds for a sequence of `length` (PySlice_AdjustIndices).
void adjust_bound(int64_t& bound, int64_t length, int64_t step) {
  if (bound < 0) {
    bound += length;
    if (bound < 0) bound = step < 0 ? -1 : 0;
  } else if (bound >= length) {
    bound = step < 0 ? length - 1 : length;
  }
}

std::vector<int64_t> slice_indices(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                   int64_t step) {
  int64_t first = start.value_or(step < 0 ? length - 1 : 0);
  int64_t last = stop.value_or(step < 0 ? -1 : length);
  if (start) adjust_bound(first, length, step);
  if (stop) adjust_bound(last, length, step);
  std::vector<int64_t> indices;
  for (int64_t i = first; step > 0 ? i < last : i > last; i += step) indices.push_back(i);
  return indices;
}

std::string no_attribute(const Value& object, const std::string& name) {
  return "'" + type_name(object) + " object' has no attribute '" + name + "'";
}

}  // namespace

Value Interpreter::eval(const Expr& expr, const ScopePtr& scope) {
  DepthGuard guard(*this, expr.pos);
  budget_.charge();
  switch (expr.kind) {
    case ExprKind::Literal:
      return expr.literal;
    case ExprKind::Name: {
      const Value* value = scope->find(expr.name);
      return value != nullptr ? *value : Value::undefined("'" + expr.name + "' is undefined");
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      Value list = Value::new_list({}, expr.kind == ExprKind::Tuple);
      for (const ExprPtr& child : expr.children) list.list->items.push_back(eval(*child, scope));
      return list;
    }
    case ExprKind::Dict: {
      Value dict = Value::new_dict();
      for (size_t i = 0; i + 1 < expr.children.size(); i += 2) {
        const Value key = eval(*expr.children[i], scope);
        if (!key.is_string()) fail(expr.children[i]->pos, "unsupported construct: dict keys must be strings");
        dict.dict->set(key.text, eval(*expr.children[i + 1], scope));
      }
      return dict;
    }
    case ExprKind::GetAttr:
      return get_attr(eval(*expr.children[0], scope), expr.name, expr.pos);
    case ExprKind::GetItem:
      return get_item(eval(*expr.children[0], scope), eval(*expr.children[1], scope), expr.pos);
    case ExprKind::Slice:
      return eval_slice(expr, scope);
    case ExprKind::Call:
      return eval_call(expr, scope);
    case ExprKind::Filter: {
      const Value operand = expr.children[0] ? eval(*expr.children[0], scope)
                                             : (block_operand_ != nullptr ? *block_operand_ : Value::undefined());
      CallArgs args = eval_args(expr, 1, scope);
      return apply_filter(*this, expr.name, operand, args, expr.pos);
    }
    case ExprKind::Test: {
      const Value operand = eval(*expr.children[0], scope);
      CallArgs args = eval_args(expr, 1, scope);
      return Value::from_bool(apply_test(*this, expr.name, operand, args, expr.pos));
    }
    case ExprKind::Not:
      return Value::from_bool(!truthy(eval(*expr.children[0], scope)));
    case ExprKind::Negate:
    case ExprKind::Plus: {
      const Value operand = eval(*expr.children[0], scope);
      require_defined(operand, expr.pos);
      if (!operand.is_number()) {
        fail(expr.pos, "bad operand type for unary " + std::string(expr.kind == ExprKind::Negate ? "-" : "+") + ": '" +
                           type_name(operand) + "'");
      }
      if (expr.kind == ExprKind::Plus) return operand.kind == Kind::Bool ? Value::from_int(operand.as_int()) : operand;
      if (operand.kind == Kind::Float) return Value::from_float(-operand.real);
      if (operand.as_int() == INT64_MIN) fail(expr.pos, "integer overflow");
      return Value::from_int(-operand.as_int());
    }
    case ExprKind::Binary:
      return eval_binary(expr, scope);
    case ExprKind::And: {
      Value left = eval(*expr.children[0], scope);
      return truthy(left) ? eval(*expr.children[1], scope) : left;
    }
    case ExprKind::Or: {
      Value left = eval(*expr.children[0], scope);
      return truthy(left) ? left : eval(*expr.children[1], scope);
    }
    case ExprKind::Concat: {
      std::string joined;
      for (const ExprPtr& child : expr.children) {
        joined += to_str(eval(*child, scope), &budget_);
        check_size(joined.size(), expr.pos);
      }
      return Value::from_string(std::move(joined));
    }
    case ExprKind::Compare:
      return eval_compare(expr, scope);
    case ExprKind::Conditional:
      if (truthy(eval(*expr.children[0], scope))) return eval(*expr.children[1], scope);
      return expr.children[2] ? eval(*expr.children[2], scope)
                              : Value::undefined("the conditional expression had no else branch");
  }
  return Value::undefined();
}

CallArgs Interpreter::eval_args(const Expr& expr, size_t first_arg, const ScopePtr& scope) {
  CallArgs args;
  for (size_t i = first_arg; i < expr.children.size(); ++i) args.positional.push_back(eval(*expr.children[i], scope));
  for (const auto& [name, value] : expr.keyword_args) args.keyword.emplace_back(name, eval(*value, scope));
  return args;
}

Value Interpreter::eval_call(const Expr& expr, const ScopePtr& scope) {
  const Value callee = eval(*expr.children[0], scope);
  CallArgs args = eval_args(expr, 1, scope);
  return call(callee, args, expr.pos);
}

Value Interpreter::eval_binary(const Expr& expr, const ScopePtr& scope) {
  const Value left = eval(*expr.children[0], scope);
  const Value right = eval(*expr.children[1], scope);
  return binary_arithmetic(*this, expr.binary_op, left, right, expr.pos);
}

Value Interpreter::eval_compare(const Expr& expr, const ScopePtr& scope) {
  Value left = eval(*expr.children[0], scope);
  for (size_t i = 0; i < expr.compare_ops.size(); ++i) {
    Value right = eval(*expr.children[i + 1], scope);
    const CompareOp op = expr.compare_ops[i];
    bool result = false;
    if (op == CompareOp::Equal || op == CompareOp::NotEqual) {
      result = equals(left, right, &budget_) == (op == CompareOp::Equal);
    } else if (op == CompareOp::In || op == CompareOp::NotIn) {
      result = contains(right, left, expr.pos) == (op == CompareOp::In);
    } else {
      require_defined(left, expr.pos);
      require_defined(right, expr.pos);
      const std::optional<int> order = compare(left, right, &budget_);
      static constexpr const char* kNames[] = {"==", "!=", "<", "<=", ">", ">="};
      if (!order) {
        fail(expr.pos, std::string("'") + kNames[static_cast<int>(op)] + "' not supported between instances of '" +
                           type_name(left) + "' and '" + type_name(right) + "'");
      }
      result = op == CompareOp::Less        ? *order < 0
               : op == CompareOp::LessEqual ? *order <= 0
               : op == CompareOp::Greater   ? *order > 0
                                            : *order >= 0;
    }
    if (!result) return Value::from_bool(false);
    left = std::move(right);
  }
  return Value::from_bool(true);
}

bool Interpreter::contains(const Value& container, const Value& item, SourcePos pos) {
  switch (container.kind) {
    case Kind::Undefined:
      return false;
    case Kind::String:
      if (!item.is_string()) {
        require_defined(item, pos);
        fail(pos, "'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.text.find(item.text) != std::string::npos;
    case Kind::List:
      return std::any_of(container.list->items.begin(), container.list->items.end(),
                         [&](const Value& element) { return equals(element, item, &budget_); });
    case Kind::Dict:
      if (container.dict->is_namespace) break;
      if (item.kind == Kind::Dict || (item.kind == Kind::List && !item.list->is_tuple)) {
        fail(pos, "unhashable type: '" + type_name(item) + "'");
      }
      return item.is_string() && container.dict->find(item.text) != nullptr;
    default:
      break;
  }
  fail(pos, "argument of type '" + type_name(container) + "' is not iterable");
}

Value Interpreter::get_attr(const Value& object, const std::string& name, SourcePos pos) {
  require_defined(object, pos);
  if (object.kind == Kind::Dict) {
    if (!object.dict->is_namespace) {
      if (std::optional<Value> method = bound_method(object, name)) return *method;
    }
    const Value* value = object.dict->find(name);
    return value != nullptr ? *value : Value::undefined(no_attribute(object, name));
  }
  if (std::optional<Value> method = bound_method(object, name)) return *method;
  return Value::undefined(no_attribute(object, name));
}

Value Interpreter::get_item(const Value& object, const Value& key, SourcePos pos) {
  require_defined(object, pos);
  if (object.kind == Kind::Dict) {
    if (key.is_string()) {
      if (const Value* value = object.dict->find(key.text)) return *value;
      return get_attr(object, key.text, pos);
    }
    return Value::undefined("'dict object' has no item " + repr(key));
  }
  if ((object.is_sequence() || object.kind == Kind::String) && key.is_integral()) {
    const bool is_list = object.kind == Kind::List;
    std::u32string chars;
    if (!is_list) chars = text::decode(object.text);
    const auto length = static_cast<int64_t>(is_list ? object.list->items.size() : chars.size());
    int64_t index = key.as_int();
    if (index < 0) index += length;
    if (index < 0 || index >= length) return Value::undefined(type_name(object) + " index out of range");
    if (is_list) return object.list->items[static_cast<size_t>(index)];
    std::string one;
    text::append_utf8(one, chars[static_cast<size_t>(index)]);
    return Value::from_string(std::move(one));
  }
  if (key.is_string()) return get_attr(object, key.text, pos);
  return Value::undefined("'" + type_name(object) + " object' has no item " + repr(key));
}

Value Interpreter::eval_slice(const Expr& expr, const ScopePtr& scope) {
  const Value object = eval(*expr.children[0], scope);
  std::optional<int64_t> bounds[3];
  for (size_t i = 0; i < 3; ++i) {
    if (!expr.children[i + 1]) continue;
    const Value bound = eval(*expr.children[i + 1], scope);
    if (bound.is_none()) continue;
    if (!bound.is_integral()) fail(expr.pos, "slice indices must be integers or None, not " + type_name(bound));
    bounds[i] = bound.as_int();
  }
  require_defined(object, expr.pos);
  const int64_t step = bounds[2].value_or(1);
  if (step == 0) fail(expr.pos, "slice step cannot be zero");
  if (object.is_sequence()) {
    Value out = Value::new_list({}, object.list->is_tuple);
    const auto& items = object.list->items;
    for (int64_t i : slice_indices(static_cast<int64_t>(items.size()), bounds[0], bounds[1], step)) {
      out.list->items.push_back(items[static_cast<size_t>(i)]);
    }
    return out;
  }
  if (object.kind == Kind::String) {
    const std::u32string chars = text::decode(object.text);
    std::u32string out;
    for (int64_t i : slice_indices(static_cast<int64_t>(chars.size()), bounds[0], bounds[1], step)) {
      out.push_back(chars[static_cast<size_t>(i)]);
    }
    return Value::from_string(text::encode(out));
  }
  if (object.is_dict()) fail(expr.pos, "unhashable type: 'slice'");
  fail(expr.pos, "'" + type_name(object) + "' object is not subscriptable");
}

}  // namespace anvil::tokenizer::jinja
