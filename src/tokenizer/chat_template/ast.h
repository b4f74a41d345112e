#pragma once
// The parsed form of a template: expressions and statements, each with its line:column.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "value.h"

namespace anvil::tokenizer::jinja {

enum class ExprKind {
  Literal,      // literal
  Name,         // name
  List,         // children: items
  Tuple,        // children: items
  Dict,         // children: key, value, key, value...
  GetAttr,      // children[0].name
  GetItem,      // children[0][children[1]]
  Slice,        // children[0][children[1]:children[2]:children[3]], any bound may be null
  Call,         // children[0](children[1..], keyword_args)
  Filter,       // children[0] | name(children[1..], keyword_args); children[0] null in {% filter %}
  Test,         // children[0] is name(children[1..], keyword_args)
  Not,          // not children[0]
  Negate,       // -children[0]
  Plus,         // +children[0]
  Binary,       // children[0] binary_op children[1]
  And,          // children[0] and children[1]
  Or,           // children[0] or children[1]
  Concat,       // children[0] ~ children[1] ~ ...
  Compare,      // children[0] compare_ops[0] children[1] compare_ops[1] children[2]...
  Conditional,  // children[1] if children[0] else children[2] (children[2] may be null)
};

enum class BinaryOp { Add, Subtract, Multiply, Divide, FloorDivide, Modulo, Power };
enum class CompareOp { Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual, In, NotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::Literal;
  SourcePos pos;
  std::string name;
  Value literal;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> keyword_args;
  BinaryOp binary_op = BinaryOp::Add;
  std::vector<CompareOp> compare_ops;
};

enum class StmtKind {
  Data,         // text
  Print,        // {{ expr }}
  If,           // exprs: conditions of if/elif...; bodies: one per condition, then else if has_else
  For,          // names: targets; expr: iterable; condition: filter; bodies: body, else
  Set,          // names: targets (several unpack a sequence); text: namespace attribute; expr: value
  SetBlock,     // names[0] (or namespace names[0].text) = rendered bodies[0], piped through expr
  Macro,        // text: name; names: parameters; exprs: defaults of the last parameters; bodies[0]
  CallBlock,    // expr: the call; names/exprs: caller()'s parameters and defaults; bodies[0]: caller()
  FilterBlock,  // expr: the filter chain (innermost operand null); bodies[0]
  With,         // names = exprs, then bodies[0]
  Generation,   // {% generation %}: bodies[0] rendered as is
  Break,
  Continue,
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  StmtKind kind = StmtKind::Data;
  SourcePos pos;
  std::string text;
  std::vector<std::string> names;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
  bool has_else = false;
};

struct Template {
  Body body;
};

}  // namespace anvil::tokenizer::jinja
