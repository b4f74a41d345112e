#pragma once
// Evaluates a parsed template. Scoping follows jinja2: every loop iteration, macro call and
// block (with, set-block, call, generation) gets a child scope; `set` writes to the innermost
// scope; `if` opens none; macros see the scope they were defined in.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "anvil/tokenizer/chat_template.h"
#include "ast.h"
#include "value.h"

namespace anvil::tokenizer::jinja {

class Scope;
using ScopePtr = std::shared_ptr<Scope>;

class Scope {
 public:
  explicit Scope(ScopePtr parent) : parent_(std::move(parent)) {}
  // The variable `name` here or in an enclosing scope, or null.
  [[nodiscard]] const Value* find(const std::string& name) const;
  // Binds `name` in this scope.
  void set(const std::string& name, Value value);

 private:
  ScopePtr parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};

class Interpreter {
 public:
  explicit Interpreter(const ChatTemplateOptions& options);

  // Renders `tmpl` with the members of the `context` dict as variables.
  std::string render(const Template& tmpl, const Value& context);

  Value eval(const Expr& expr, const ScopePtr& scope);
  // Calls a function value (macro, builtin or bound method).
  Value call(const Value& callee, CallArgs& args, SourcePos pos);

  [[noreturn]] void fail(SourcePos pos, const std::string& message) const;
  // Fails unless a string or list of `bytes` fits the output limit.
  void check_size(size_t bytes, SourcePos pos) const;
  // Fails if `value` is Undefined, with jinja2's message ("'x' is undefined").
  void require_defined(const Value& value, SourcePos pos) const;
  Budget& budget() { return budget_; }
  // jinja2's getattr (methods first for str/dict/list, then dict items) and getitem
  // (items first, then attributes); missing ones are Undefined, Undefined objects fail.
  Value get_attr(const Value& object, const std::string& name, SourcePos pos);
  Value get_item(const Value& object, const Value& key, SourcePos pos);
  // Python's `item in container`.
  bool contains(const Value& container, const Value& item, SourcePos pos);
  [[nodiscard]] const ChatTemplateOptions& options() const { return options_; }

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, const ScopePtr& scope);
  Flow exec_stmt(const Stmt& stmt, const ScopePtr& scope);
  Flow exec_for(const Stmt& stmt, const ScopePtr& scope);
  void exec_set(const Stmt& stmt, const ScopePtr& scope);
  void exec_set_block(const Stmt& stmt, const ScopePtr& scope);
  void exec_macro(const Stmt& stmt, const ScopePtr& scope);
  void exec_call_block(const Stmt& stmt, const ScopePtr& scope);
  // Renders `body` in a child scope of `scope` and returns the text.
  std::string capture(const Body& body, const ScopePtr& scope);
  Value make_macro(const Stmt& stmt, const ScopePtr& scope, std::string name);
  Value call_macro(const Stmt& stmt, const std::weak_ptr<Scope>& closure, CallArgs& args, SourcePos pos);
  void assign(const std::vector<std::string>& names, const Value& value, Scope& scope, SourcePos pos);
  void set_namespace_attr(const Stmt& stmt, const Value& value, const ScopePtr& scope);
  std::vector<Value> iterate(const Value& value, SourcePos pos);
  void emit(const std::string& text, SourcePos pos);

  Value eval_call(const Expr& expr, const ScopePtr& scope);
  CallArgs eval_args(const Expr& expr, size_t first_arg, const ScopePtr& scope);
  Value eval_compare(const Expr& expr, const ScopePtr& scope);
  Value eval_binary(const Expr& expr, const ScopePtr& scope);
  Value eval_slice(const Expr& expr, const ScopePtr& scope);

  struct DepthGuard {
    DepthGuard(Interpreter& interpreter, SourcePos pos);
    ~DepthGuard() { --interpreter_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    Interpreter& interpreter_;
  };

  const ChatTemplateOptions& options_;
  Budget budget_;
  int depth_ = 0;
  std::string* out_ = nullptr;
  const Value* block_operand_ = nullptr;  // the input of a {% filter %} / {% set %} block's filter chain
};

// Python arithmetic on two values (+ - * / // % **); fails like Python on bad operand types.
Value binary_arithmetic(Interpreter& interpreter, BinaryOp op, const Value& left, const Value& right, SourcePos pos);
// Python's `format % args` for %s %r %d %i %f %x %% and %(name)s (args: a value, tuple or dict).
std::string percent_format(Interpreter& interpreter, const std::string& format, const Value& args, SourcePos pos);

}  // namespace anvil::tokenizer::jinja
