#include "interpreter.h"

#include <algorithm>
#include <optional>

#include "anvil/core/error.h"
#include "builtins.h"
#include "text.h"

namespace anvil::tokenizer::jinja {
namespace {

constexpr int64_t kMaxNamespaceNodes = 1'000'000;  // elements reachable from a value stored in a namespace
constexpr int kMaxNamespaceDepth = 200;            // its nesting (printing it recurses that deep)

// Whether `value` reaches the namespace `target` (storing it there would make a cycle), or
// nullopt when the value is too large or deep to tell; `nodes` counts the elements visited.
std::optional<bool> reaches(const Value& value, const DictData* target, int depth, int64_t& nodes) {
  if (++nodes > kMaxNamespaceNodes || depth > kMaxNamespaceDepth) return std::nullopt;
  if (value.kind == Kind::Dict && value.dict.get() == target) return true;
  std::vector<const Value*> children;
  if (value.kind == Kind::Dict) {
    for (const auto& entry : value.dict->entries) children.push_back(&entry.second);
  } else if (value.kind == Kind::List) {
    for (const Value& item : value.list->items) children.push_back(&item);
  }
  for (const Value* child : children) {
    const std::optional<bool> found = reaches(*child, target, depth + 1, nodes);
    if (!found || *found) return found;
  }
  return false;
}

// jinja2's `loop` variable for iteration `i` of `items`.
Value loop_info(const std::vector<Value>& items, int64_t i) {
  const auto length = static_cast<int64_t>(items.size());
  Value loop = Value::new_dict();
  DictData& info = *loop.dict;
  info.set("index", Value::from_int(i + 1));
  info.set("index0", Value::from_int(i));
  info.set("revindex", Value::from_int(length - i));
  info.set("revindex0", Value::from_int(length - i - 1));
  info.set("first", Value::from_bool(i == 0));
  info.set("last", Value::from_bool(i == length - 1));
  info.set("length", Value::from_int(length));
  info.set("depth", Value::from_int(1));
  info.set("depth0", Value::from_int(0));
  if (i > 0) info.set("previtem", items[static_cast<size_t>(i - 1)]);
  if (i + 1 < length) info.set("nextitem", items[static_cast<size_t>(i + 1)]);
  info.set("cycle", Value::new_function("cycle", [i](Interpreter& interpreter, CallArgs& args, SourcePos pos) {
             if (args.positional.empty()) interpreter.fail(pos, "no items for cycling given");
             return args.positional[static_cast<size_t>(i) % args.positional.size()];
           }));
  return loop;
}

}  // namespace

const Value* Scope::find(const std::string& name) const {
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_.get()) {
    for (const auto& var : scope->vars_) {
      if (var.first == name) return &var.second;
    }
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& var : vars_) {
    if (var.first == name) {
      var.second = std::move(value);
      return;
    }
  }
  vars_.emplace_back(name, std::move(value));
}

Interpreter::DepthGuard::DepthGuard(Interpreter& interpreter, SourcePos pos) : interpreter_(interpreter) {
  if (++interpreter_.depth_ > interpreter_.options_.max_depth) {
    --interpreter_.depth_;
    interpreter_.fail(pos, "template nested deeper than " + std::to_string(interpreter_.options_.max_depth) +
                               " levels (expressions, blocks and macro calls)");
  }
}

Interpreter::Interpreter(const ChatTemplateOptions& options) : options_(options) {
  budget_.steps_left = options.max_steps;
  budget_.max_bytes = options.max_output_bytes;
}

std::string Interpreter::render(const Template& tmpl, const Value& context) {
  auto globals = std::make_shared<Scope>(nullptr);
  for (auto& [name, function] : global_functions()) globals->set(name, std::move(function));
  auto top = std::make_shared<Scope>(globals);
  for (const auto& [name, value] : context.dict->entries) top->set(name, value);
  std::string out;
  out_ = &out;
  exec(tmpl.body, top);
  out_ = nullptr;
  return out;
}

void Interpreter::fail(SourcePos pos, const std::string& message) const {
  throw make_error("chat template error at ", pos.line, ":", pos.column, ": ", message);
}

void Interpreter::check_size(size_t bytes, SourcePos pos) const {
  if (bytes > options_.max_output_bytes) {
    fail(pos, "result larger than the limit of " + std::to_string(options_.max_output_bytes) + " bytes");
  }
}

void Interpreter::require_defined(const Value& value, SourcePos pos) const {
  if (value.is_undefined()) fail(pos, value.text.empty() ? "value is undefined" : value.text);
}

void Interpreter::emit(const std::string& text, SourcePos pos) {
  check_size(out_->size() + text.size(), pos);
  out_->append(text);
}

// ---- statements ----

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec_stmt(*stmt, scope);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& stmt, const ScopePtr& scope) {
  DepthGuard guard(*this, stmt.pos);
  budget_.charge();
  switch (stmt.kind) {
    case StmtKind::Data:
      emit(stmt.text, stmt.pos);
      return Flow::Normal;
    case StmtKind::Print:
      emit(to_str(eval(*stmt.expr, scope), &budget_), stmt.pos);
      return Flow::Normal;
    case StmtKind::If:
      for (size_t i = 0; i < stmt.exprs.size(); ++i) {
        if (truthy(eval(*stmt.exprs[i], scope))) return exec(stmt.bodies[i], scope);
      }
      return stmt.has_else ? exec(stmt.bodies.back(), scope) : Flow::Normal;
    case StmtKind::For:
      return exec_for(stmt, scope);
    case StmtKind::Set:
      exec_set(stmt, scope);
      return Flow::Normal;
    case StmtKind::SetBlock:
      exec_set_block(stmt, scope);
      return Flow::Normal;
    case StmtKind::Macro:
      exec_macro(stmt, scope);
      return Flow::Normal;
    case StmtKind::CallBlock:
      exec_call_block(stmt, scope);
      return Flow::Normal;
    case StmtKind::FilterBlock: {
      const Value text = Value::from_string(capture(stmt.bodies[0], scope));
      block_operand_ = &text;
      const Value filtered = eval(*stmt.expr, scope);
      block_operand_ = nullptr;
      emit(to_str(filtered, &budget_), stmt.pos);
      return Flow::Normal;
    }
    case StmtKind::With: {
      auto inner = std::make_shared<Scope>(scope);
      for (size_t i = 0; i < stmt.names.size(); ++i) inner->set(stmt.names[i], eval(*stmt.exprs[i], scope));
      return exec(stmt.bodies[0], inner);
    }
    case StmtKind::Generation:
      return exec(stmt.bodies[0], std::make_shared<Scope>(scope));
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

std::vector<Value> Interpreter::iterate(const Value& value, SourcePos pos) {
  switch (value.kind) {
    case Kind::Undefined:
      return {};
    case Kind::List:
      return value.list->items;
    case Kind::Dict: {
      if (value.dict->is_namespace) break;
      std::vector<Value> keys;
      for (const auto& entry : value.dict->entries) keys.push_back(Value::from_string(entry.first));
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      for (char32_t c : text::decode(value.text)) {
        std::string one;
        text::append_utf8(one, c);
        chars.push_back(Value::from_string(std::move(one)));
      }
      return chars;
    }
    default:
      break;
  }
  fail(pos, "'" + type_name(value) + "' object is not iterable");
}

void Interpreter::assign(const std::vector<std::string>& names, const Value& value, Scope& scope, SourcePos pos) {
  if (names.size() == 1) {
    scope.set(names[0], value);
    return;
  }
  const std::vector<Value> items = iterate(value, pos);
  if (items.size() != names.size()) {
    fail(pos, (items.size() > names.size() ? "too many values to unpack (expected "
                                           : "not enough values to unpack "
                                             "(expected ") +
                  std::to_string(names.size()) + ", got " + std::to_string(items.size()) + ")");
  }
  for (size_t i = 0; i < names.size(); ++i) scope.set(names[i], items[i]);
}

Interpreter::Flow Interpreter::exec_for(const Stmt& stmt, const ScopePtr& scope) {
  std::vector<Value> items = iterate(eval(*stmt.expr, scope), stmt.pos);
  if (stmt.condition) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      budget_.charge();
      auto probe = std::make_shared<Scope>(scope);
      assign(stmt.names, item, *probe, stmt.pos);
      if (truthy(eval(*stmt.condition, probe))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  const auto length = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < length; ++i) {
    budget_.charge();
    auto inner = std::make_shared<Scope>(scope);
    assign(stmt.names, items[static_cast<size_t>(i)], *inner, stmt.pos);
    inner->set("loop", loop_info(items, i));
    if (exec(stmt.bodies[0], inner) == Flow::Break) break;
  }
  if (length == 0 && stmt.has_else) exec(stmt.bodies[1], std::make_shared<Scope>(scope));
  return Flow::Normal;
}

void Interpreter::set_namespace_attr(const Stmt& stmt, const Value& value, const ScopePtr& scope) {
  const Value* target = scope->find(stmt.names[0]);
  if (target == nullptr || !target->is_namespace()) {
    fail(stmt.pos, "cannot assign attribute on non-namespace object '" + stmt.names[0] + "'");
  }
  int64_t nodes = 0;
  const std::optional<bool> cycle = reaches(value, target->dict.get(), 0, nodes);
  if (!cycle) fail(stmt.pos, "value stored in a namespace is too large or too deeply nested");
  if (*cycle) fail(stmt.pos, "cannot store a namespace inside itself");
  budget_.charge(nodes);
  target->dict->set(stmt.text, value);
}

void Interpreter::exec_set(const Stmt& stmt, const ScopePtr& scope) {
  const Value value = eval(*stmt.expr, scope);
  if (!stmt.text.empty()) return set_namespace_attr(stmt, value, scope);
  assign(stmt.names, value, *scope, stmt.pos);
}

std::string Interpreter::capture(const Body& body, const ScopePtr& scope) {
  std::string captured;
  std::string* saved = out_;
  out_ = &captured;
  try {
    exec(body, std::make_shared<Scope>(scope));
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return captured;
}

void Interpreter::exec_set_block(const Stmt& stmt, const ScopePtr& scope) {
  Value value = Value::from_string(capture(stmt.bodies[0], scope));
  if (stmt.expr) {
    block_operand_ = &value;
    Value filtered = eval(*stmt.expr, scope);
    block_operand_ = nullptr;
    value = std::move(filtered);
  }
  if (!stmt.text.empty()) return set_namespace_attr(stmt, value, scope);
  scope->set(stmt.names[0], value);
}

// ---- macros ----

Value Interpreter::make_macro(const Stmt& stmt, const ScopePtr& scope, std::string name) {
  std::weak_ptr<Scope> closure = scope;
  const Stmt* definition = &stmt;
  return Value::new_function(std::move(name),
                             [definition, closure](Interpreter& interpreter, CallArgs& args, SourcePos pos) {
                               return interpreter.call_macro(*definition, closure, args, pos);
                             });
}

void Interpreter::exec_macro(const Stmt& stmt, const ScopePtr& scope) {
  scope->set(stmt.text, make_macro(stmt, scope, stmt.text));
}

Value Interpreter::call_macro(const Stmt& stmt, const std::weak_ptr<Scope>& closure, CallArgs& args, SourcePos pos) {
  const ScopePtr parent = closure.lock();
  if (!parent) fail(pos, "macro '" + stmt.text + "' called after its scope ended");
  auto scope = std::make_shared<Scope>(parent);
  const size_t count = stmt.names.size();
  const size_t first_default = count - stmt.exprs.size();
  std::vector<bool> bound(count, false);
  Value varargs = Value::new_list();
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < count) {
      scope->set(stmt.names[i], args.positional[i]);
      bound[i] = true;
    } else {
      varargs.list->items.push_back(args.positional[i]);
    }
  }
  Value kwargs = Value::new_dict();
  for (auto& [key, value] : args.keyword) {
    const auto it = std::find(stmt.names.begin(), stmt.names.end(), key);
    if (it == stmt.names.end()) {
      if (key == "caller") {
        scope->set("caller", value);
      } else {
        kwargs.dict->set(key, value);
      }
      continue;
    }
    const auto index = static_cast<size_t>(it - stmt.names.begin());
    if (bound[index]) fail(pos, "macro '" + stmt.text + "' got multiple values for argument '" + key + "'");
    scope->set(key, value);
    bound[index] = true;
  }
  for (size_t i = 0; i < count; ++i) {
    if (bound[i]) continue;
    scope->set(stmt.names[i], i >= first_default ? eval(*stmt.exprs[i - first_default], scope)
                                                 : Value::undefined("parameter '" + stmt.names[i] + "' was not given"));
  }
  scope->set("varargs", std::move(varargs));
  scope->set("kwargs", std::move(kwargs));
  std::string result;
  std::string* saved = out_;
  out_ = &result;
  try {
    exec(stmt.bodies[0], scope);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return Value::from_string(std::move(result));
}

void Interpreter::exec_call_block(const Stmt& stmt, const ScopePtr& scope) {
  Value caller = make_macro(stmt, scope, "caller");
  const Expr& call = *stmt.expr;
  const Value callee = eval(*call.children[0], scope);
  CallArgs args = eval_args(call, 1, scope);
  args.keyword.emplace_back("caller", std::move(caller));
  emit(to_str(this->call(callee, args, call.pos), &budget_), stmt.pos);
}

Value Interpreter::call(const Value& callee, CallArgs& args, SourcePos pos) {
  if (callee.kind == Kind::Function) return callee.function->call(*this, args, pos);
  require_defined(callee, pos);
  fail(pos, "'" + type_name(callee) + "' object is not callable");
}

}  // namespace anvil::tokenizer::jinja
