// Python arithmetic (+ - * / // % **) and printf-style `str % args` for templates.
#include <cmath>
#include <cstdio>

#include "interpreter.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

const char* op_symbol(BinaryOp op) {
  static constexpr const char* kSymbols[] = {"+", "-", "*", "/", "//", "%", "**"};
  return kSymbols[static_cast<int>(op)];
}

[[noreturn]] void unsupported_operands(Interpreter& interpreter, BinaryOp op, const Value& left, const Value& right,
                                       SourcePos pos) {
  interpreter.fail(pos, std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" + type_name(left) +
                            "' and '" + type_name(right) + "'");
}

Value integer_arithmetic(Interpreter& interpreter, BinaryOp op, int64_t a, int64_t b, SourcePos pos) {
  int64_t result = 0;
  bool overflow = false;
  switch (op) {
    case BinaryOp::Add:
      overflow = __builtin_add_overflow(a, b, &result);
      break;
    case BinaryOp::Subtract:
      overflow = __builtin_sub_overflow(a, b, &result);
      break;
    case BinaryOp::Multiply:
      overflow = __builtin_mul_overflow(a, b, &result);
      break;
    case BinaryOp::Divide:
      if (b == 0) interpreter.fail(pos, "division by zero");
      return Value::from_float(static_cast<double>(a) / static_cast<double>(b));
    case BinaryOp::FloorDivide:
    case BinaryOp::Modulo: {
      if (b == 0) interpreter.fail(pos, "integer division or modulo by zero");
      if (a == INT64_MIN && b == -1) interpreter.fail(pos, "integer overflow");
      int64_t quotient = a / b;
      int64_t remainder = a % b;
      if (remainder != 0 && ((remainder < 0) != (b < 0))) {
        quotient -= 1;
        remainder += b;
      }
      return Value::from_int(op == BinaryOp::FloorDivide ? quotient : remainder);
    }
    case BinaryOp::Power: {
      if (b < 0) {
        if (a == 0) interpreter.fail(pos, "0.0 cannot be raised to a negative power");
        return Value::from_float(std::pow(static_cast<double>(a), static_cast<double>(b)));
      }
      // Exponentiation by squaring; the base only squares when another factor follows, so its
      // overflow implies the result's.
      result = 1;
      int64_t base = a;
      for (int64_t e = b; e > 0 && !overflow; e >>= 1) {
        if ((e & 1) != 0) overflow = __builtin_mul_overflow(result, base, &result);
        if (e > 1 && !overflow) overflow = __builtin_mul_overflow(base, base, &base);
      }
      break;
    }
  }
  if (overflow) interpreter.fail(pos, "integer overflow in '" + std::string(op_symbol(op)) + "'");
  return Value::from_int(result);
}

Value float_arithmetic(Interpreter& interpreter, BinaryOp op, double a, double b, SourcePos pos) {
  switch (op) {
    case BinaryOp::Add:
      return Value::from_float(a + b);
    case BinaryOp::Subtract:
      return Value::from_float(a - b);
    case BinaryOp::Multiply:
      return Value::from_float(a * b);
    case BinaryOp::Divide:
      if (b == 0.0) interpreter.fail(pos, "float division by zero");
      return Value::from_float(a / b);
    case BinaryOp::FloorDivide:
    case BinaryOp::Modulo: {
      if (b == 0.0) interpreter.fail(pos, "float floor division or modulo by zero");
      // CPython's float_divmod.
      double mod = std::fmod(a, b);
      double div = (a - mod) / b;
      if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) {
          mod += b;
          div -= 1.0;
        }
      } else {
        mod = std::copysign(0.0, b);
      }
      double floor_div = 0.0;
      if (div != 0.0) {
        floor_div = std::floor(div);
        if (div - floor_div > 0.5) floor_div += 1.0;
      } else {
        floor_div = std::copysign(0.0, a / b);
      }
      return Value::from_float(op == BinaryOp::FloorDivide ? floor_div : mod);
    }
    case BinaryOp::Power:
      if (a == 0.0 && b < 0) interpreter.fail(pos, "0.0 cannot be raised to a negative power");
      if (a < 0 && std::floor(b) != b) interpreter.fail(pos, "unsupported: complex result of a fractional power");
      return Value::from_float(std::pow(a, b));
  }
  return Value::none();
}

Value repeat(Interpreter& interpreter, const Value& sequence, int64_t times, SourcePos pos) {
  times = std::max<int64_t>(times, 0);
  if (sequence.is_string()) {
    const size_t unit = sequence.text.size();
    if (unit != 0 && static_cast<uint64_t>(times) > interpreter.options().max_output_bytes / unit) {
      interpreter.check_size(interpreter.options().max_output_bytes + 1, pos);
    }
    std::string out;
    out.reserve(unit * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += sequence.text;
    return Value::from_string(std::move(out));
  }
  const size_t unit = sequence.list->items.size();
  if (unit != 0 && static_cast<uint64_t>(times) > interpreter.options().max_output_bytes / unit) {
    interpreter.check_size(interpreter.options().max_output_bytes + 1, pos);
  }
  interpreter.budget().charge(static_cast<int64_t>(unit) * times);
  Value out = Value::new_list({}, sequence.list->is_tuple);
  for (int64_t i = 0; i < times; ++i) {
    out.list->items.insert(out.list->items.end(), sequence.list->items.begin(), sequence.list->items.end());
  }
  return out;
}

Value concatenate(Interpreter& interpreter, const Value& left, const Value& right, SourcePos pos) {
  if (left.is_string()) {
    interpreter.check_size(left.text.size() + right.text.size(), pos);
    return Value::from_string(left.text + right.text);
  }
  interpreter.budget().charge(static_cast<int64_t>(left.list->items.size() + right.list->items.size()));
  Value out = Value::new_list(left.list->items, left.list->is_tuple);
  out.list->items.insert(out.list->items.end(), right.list->items.begin(), right.list->items.end());
  return out;
}

}  // namespace

Value binary_arithmetic(Interpreter& interpreter, BinaryOp op, const Value& left, const Value& right, SourcePos pos) {
  interpreter.require_defined(left, pos);
  interpreter.require_defined(right, pos);
  if (left.is_number() && right.is_number()) {
    if (left.is_integral() && right.is_integral()) {
      return integer_arithmetic(interpreter, op, left.as_int(), right.as_int(), pos);
    }
    return float_arithmetic(interpreter, op, left.as_double(), right.as_double(), pos);
  }
  if (op == BinaryOp::Add) {
    if ((left.is_string() && right.is_string()) ||
        (left.is_sequence() && right.is_sequence() && left.list->is_tuple == right.list->is_tuple)) {
      return concatenate(interpreter, left, right, pos);
    }
  }
  if (op == BinaryOp::Multiply) {
    if ((left.is_string() || left.is_sequence()) && right.is_integral()) {
      return repeat(interpreter, left, right.as_int(), pos);
    }
    if (left.is_integral() && (right.is_string() || right.is_sequence())) {
      return repeat(interpreter, right, left.as_int(), pos);
    }
  }
  if (op == BinaryOp::Modulo && left.is_string()) {
    return Value::from_string(percent_format(interpreter, left.text, right, pos));
  }
  unsupported_operands(interpreter, op, left, right, pos);
}

std::string percent_format(Interpreter& interpreter, const std::string& format, const Value& args, SourcePos pos) {
  std::vector<Value> positional;
  if (args.is_list() && args.list->is_tuple) {
    positional = args.list->items;
  } else if (!args.is_dict()) {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) interpreter.fail(pos, "incomplete format");
    const Value* arg = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos || !args.is_dict()) interpreter.fail(pos, "format requires a mapping");
      arg = args.dict->find(format.substr(i + 1, close - i - 1));
      if (arg == nullptr) interpreter.fail(pos, "format key " + format.substr(i + 1, close - i - 1) + " not found");
      i = close + 1;
    }
    int precision = -1;
    if (i < format.size() && format[i] == '.') {
      precision = 0;
      while (++i < format.size() && format[i] >= '0' && format[i] <= '9') {
        precision = std::min(precision * 10 + (format[i] - '0'), 100);
      }
    }
    if (i >= format.size()) interpreter.fail(pos, "incomplete format");
    const char type = format[i];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (next_arg >= positional.size()) interpreter.fail(pos, "not enough arguments for format string");
      arg = &positional[next_arg++];
    }
    if (type == 's') {
      out += to_str(*arg, &interpreter.budget());
    } else if (type == 'r') {
      out += repr(*arg, &interpreter.budget());
    } else if ((type == 'd' || type == 'i' || type == 'x' || type == 'f') && arg->is_number()) {
      char buffer[512];
      if (type == 'f') {
        std::snprintf(buffer, sizeof buffer, "%.*f", precision < 0 ? 6 : precision, arg->as_double());
      } else {
        const auto value = arg->kind == Kind::Float ? static_cast<long long>(std::trunc(arg->real))
                                                    : static_cast<long long>(arg->as_int());
        std::snprintf(buffer, sizeof buffer, type == 'x' ? "%llx" : "%lld", value);
      }
      out += buffer;
    } else {
      interpreter.fail(pos, std::string("unsupported format conversion '%") + type + "' for " + type_name(*arg));
    }
    interpreter.check_size(out.size(), pos);
  }
  // Python treats any non-tuple argument with __getitem__ (list, dict) as a mapping: no leftovers check.
  const bool mapping_like = args.is_dict() || (args.is_list() && !args.list->is_tuple);
  if (next_arg < positional.size() && !mapping_like) {
    interpreter.fail(pos, "not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace anvil::tokenizer::jinja
