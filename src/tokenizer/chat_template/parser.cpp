#include "parser.h"

#include <algorithm>
#include <initializer_list>

#include "anvil/core/error.h"
#include "builtins.h"
#include "lexer.h"

namespace anvil::tokenizer::jinja {
namespace {

constexpr int kMaxParseDepth = 256;  // nesting of blocks and expressions

// Tags jinja2 knows that this subset does not implement.
constexpr std::string_view kUnsupportedTags[] = {"block",      "extends", "include",   "import", "from",
                                                 "autoescape", "trans",   "pluralize", "do",     "endblock"};

bool in_list(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

class Parser {
 public:
  Parser(const SourceMap& map, std::vector<Token> tokens) : map_(map), tokens_(std::move(tokens)) {}

  Template run() {
    Template result;
    result.body = subparse({});
    return result;
  }

 private:
  // ---- token stream ----
  const Token& current() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  Token next() {
    Token token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return token;
  }
  static bool is_op(const Token& token, std::string_view op) {
    return token.type == TokenType::Operator && token.text == op;
  }
  static bool is_name(const Token& token, std::string_view name) {
    return token.type == TokenType::Name && token.text == name;
  }
  SourcePos where(const Token& token) const { return map_.position(token.offset); }

  [[noreturn]] void fail_at(size_t offset, const std::string& message) const {
    const SourcePos at = map_.position(offset);
    throw make_error("chat template syntax error at ", at.line, ":", at.column, ": ", message);
  }
  [[noreturn]] void fail(const std::string& message) const { fail_at(current().offset, message); }

  static std::string describe(const Token& token) {
    switch (token.type) {
      case TokenType::End:
        return "end of template";
      case TokenType::VariableEnd:
        return "end of print statement";
      case TokenType::BlockEnd:
        return "end of statement block";
      case TokenType::Data:
        return "template data";
      default:
        return "'" + token.text + "'";
    }
  }

  void expect_op(std::string_view op) {
    if (!is_op(current(), op)) fail("expected '" + std::string(op) + "', got " + describe(current()));
    next();
  }
  std::string expect_name() {
    if (current().type != TokenType::Name) fail("expected a name, got " + describe(current()));
    return next().text;
  }
  void expect_name(std::string_view name) {
    if (!is_name(current(), name)) fail("expected '" + std::string(name) + "', got " + describe(current()));
    next();
  }
  void expect_block_end() {
    if (current().type != TokenType::BlockEnd) fail("expected end of statement block, got " + describe(current()));
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& parser) : parser_(parser) {
      if (++parser_.depth_ > kMaxParseDepth) parser_.fail("template nested too deeply");
    }
    ~DepthGuard() { --parser_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    Parser& parser_;
  };

  ExprPtr make_expr(ExprKind kind, const Token& at) const {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->pos = where(at);
    return expr;
  }
  StmtPtr make_stmt(StmtKind kind, const Token& at) const {
    auto stmt = std::make_unique<Stmt>();
    stmt->kind = kind;
    stmt->pos = where(at);
    return stmt;
  }

  // ---- statements ----

  // Parses until a block tag whose name is in `end_names` (left as the current token).
  Body subparse(std::initializer_list<std::string_view> end_names, const Token* opener = nullptr) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& token = current();
      if (token.type == TokenType::End) {
        if (end_names.size() == 0) return body;
        fail_at(opener->offset, "unclosed '" + opener->text + "' (expected '{% end" + opener->text +
                                    " %}' before the end of the template)");
      }
      if (token.type == TokenType::Data) {
        auto stmt = make_stmt(StmtKind::Data, token);
        stmt->text = next().text;
        body.push_back(std::move(stmt));
      } else if (token.type == TokenType::VariableBegin) {
        auto stmt = make_stmt(StmtKind::Print, token);
        next();
        stmt->expr = parse_tuple(false, true, {}, false);
        if (current().type != TokenType::VariableEnd)
          fail("expected end of print statement, got " + describe(current()));
        next();
        body.push_back(std::move(stmt));
      } else if (token.type == TokenType::BlockBegin) {
        next();
        if (current().type != TokenType::Name) fail("expected a statement name, got " + describe(current()));
        if (in_list(current().text, end_names)) return body;
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(token));
      }
    }
  }

  // Parses the body of a block statement until one of `end_names`; consumes the final end tag.
  Body parse_body(const Token& opener, std::initializer_list<std::string_view> end_names) {
    expect_block_end();
    Body body = subparse(end_names, &opener);
    return body;
  }
  void consume_end_tag() {
    next();
    expect_block_end();
  }

  StmtPtr parse_statement() {
    const Token tag = current();
    const std::string& name = tag.text;
    if (name == "for") return parse_for();
    if (name == "if") return parse_if();
    if (name == "set") return parse_set();
    if (name == "macro") return parse_macro();
    if (name == "call") return parse_call_block();
    if (name == "filter") return parse_filter_block();
    if (name == "with") return parse_with();
    if (name == "generation") return parse_simple_block(StmtKind::Generation, "endgeneration");
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail("'" + name + "' outside of a loop");
      next();
      expect_block_end();
      return make_stmt(name == "break" ? StmtKind::Break : StmtKind::Continue, tag);
    }
    if (name.rfind("end", 0) == 0 || name == "else" || name == "elif") fail("unexpected '{% " + name + " %}'");
    for (std::string_view unsupported : kUnsupportedTags) {
      if (name == unsupported) fail("unsupported construct '{% " + name + " %}'");
    }
    fail("unknown tag '" + name + "'");
  }

  StmtPtr parse_for() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::For, tag);
    stmt->names = parse_targets({"in"});
    expect_name("in");
    stmt->expr = parse_tuple(false, false, {"recursive"}, false);
    if (is_name(current(), "if")) {
      next();
      stmt->condition = parse_expression(true);
    }
    if (is_name(current(), "recursive")) fail("unsupported construct 'recursive' loops");
    ++loop_depth_;
    stmt->bodies.push_back(parse_body(tag, {"endfor", "else"}));
    --loop_depth_;
    if (is_name(current(), "else")) {
      next();
      stmt->has_else = true;
      stmt->bodies.push_back(parse_body(tag, {"endfor"}));
    }
    consume_end_tag();
    return stmt;
  }

  StmtPtr parse_if() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::If, tag);
    while (true) {
      stmt->exprs.push_back(parse_tuple(false, false, {}, false));
      stmt->bodies.push_back(parse_body(tag, {"elif", "else", "endif"}));
      const std::string which = current().text;
      next();
      if (which == "elif") continue;
      if (which == "else") {
        stmt->has_else = true;
        stmt->bodies.push_back(parse_body(tag, {"endif"}));
        next();
      }
      expect_block_end();
      return stmt;
    }
  }

  StmtPtr parse_set() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::Set, tag);
    stmt->names = parse_targets({}, &stmt->text);
    if (is_op(current(), "=")) {
      next();
      stmt->expr = parse_tuple(false, true, {}, false);
      expect_block_end();
      return stmt;
    }
    if (stmt->names.size() != 1) fail("a block set needs a single target");
    stmt->kind = StmtKind::SetBlock;
    if (is_op(current(), "|")) stmt->expr = parse_filters(nullptr, false);
    stmt->bodies.push_back(parse_body(tag, {"endset"}));
    consume_end_tag();
    return stmt;
  }

  // Assignment targets: `a`, `a, b`, `(a, b)`, or with `namespace_attr` set, `ns.attr`.
  std::vector<std::string> parse_targets(std::initializer_list<std::string_view> end_names,
                                         std::string* namespace_attr = nullptr) {
    std::vector<std::string> names;
    const bool parenthesized = is_op(current(), "(");
    if (parenthesized) next();
    while (true) {
      names.push_back(expect_name());
      if (namespace_attr != nullptr && names.size() == 1 && is_op(current(), ".")) {
        next();
        *namespace_attr = expect_name();
        return names;
      }
      if (!is_op(current(), ",")) break;
      next();
      if (current().type == TokenType::BlockEnd || is_op(current(), "=") || is_op(current(), ")")) break;
      if (current().type == TokenType::Name && in_list(current().text, end_names)) break;
    }
    if (parenthesized) expect_op(")");
    return names;
  }

  // `(a, b=default)`: names into `names`, defaults (for the last parameters) into `defaults`.
  void parse_signature(std::vector<std::string>& names, std::vector<ExprPtr>& defaults) {
    expect_op("(");
    while (!is_op(current(), ")")) {
      if (!names.empty()) expect_op(",");
      if (is_op(current(), ")")) break;
      names.push_back(expect_name());
      if (is_op(current(), "=")) {
        next();
        defaults.push_back(parse_expression(true));
      } else if (!defaults.empty()) {
        fail("non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::Macro, tag);
    stmt->text = expect_name();
    parse_signature(stmt->names, stmt->exprs);
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    stmt->bodies.push_back(parse_body(tag, {"endmacro"}));
    loop_depth_ = saved_loop_depth;
    consume_end_tag();
    return stmt;
  }

  StmtPtr parse_call_block() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::CallBlock, tag);
    if (is_op(current(), "(")) parse_signature(stmt->names, stmt->exprs);
    stmt->expr = parse_expression(true);
    if (stmt->expr->kind != ExprKind::Call) fail_at(tag.offset, "{% call %} expects a macro call");
    stmt->bodies.push_back(parse_body(tag, {"endcall"}));
    consume_end_tag();
    return stmt;
  }

  StmtPtr parse_filter_block() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::FilterBlock, tag);
    stmt->expr = parse_filters(nullptr, true);
    stmt->bodies.push_back(parse_body(tag, {"endfilter"}));
    consume_end_tag();
    return stmt;
  }

  StmtPtr parse_with() {
    const Token tag = next();
    auto stmt = make_stmt(StmtKind::With, tag);
    while (current().type != TokenType::BlockEnd) {
      if (!stmt->names.empty()) expect_op(",");
      stmt->names.push_back(expect_name());
      expect_op("=");
      stmt->exprs.push_back(parse_expression(true));
    }
    stmt->bodies.push_back(parse_body(tag, {"endwith"}));
    consume_end_tag();
    return stmt;
  }

  StmtPtr parse_simple_block(StmtKind kind, std::string_view end_name) {
    const Token tag = next();
    auto stmt = make_stmt(kind, tag);
    stmt->bodies.push_back(parse_body(tag, {end_name}));
    consume_end_tag();
    return stmt;
  }

  // ---- expressions ----

  bool is_tuple_end(std::initializer_list<std::string_view> end_names) const {
    const Token& token = current();
    if (token.type == TokenType::VariableEnd || token.type == TokenType::BlockEnd || is_op(token, ")")) return true;
    return token.type == TokenType::Name && in_list(token.text, end_names);
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<std::string_view> end_names,
                      bool explicit_parentheses) {
    const Token start = current();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(end_names)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (!is_op(current(), ",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail("expected an expression, got " + describe(current()));
    }
    auto tuple = make_expr(ExprKind::Tuple, start);
    tuple->children = std::move(items);
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    if (!with_condexpr) return parse_or();
    const Token start = current();
    ExprPtr expr = parse_or();
    while (is_name(current(), "if")) {
      next();
      auto conditional = make_expr(ExprKind::Conditional, start);
      conditional->children.push_back(parse_or());
      conditional->children.push_back(std::move(expr));
      if (is_name(current(), "else")) {
        next();
        conditional->children.push_back(parse_expression(true));
      } else {
        conditional->children.push_back(nullptr);
      }
      expr = std::move(conditional);
    }
    return expr;
  }

  ExprPtr binary_node(ExprKind kind, const Token& at, ExprPtr left, ExprPtr right) const {
    auto node = make_expr(kind, at);
    node->children.push_back(std::move(left));
    node->children.push_back(std::move(right));
    return node;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name(current(), "or")) {
      const Token op = next();
      left = binary_node(ExprKind::Or, op, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name(current(), "and")) {
      const Token op = next();
      left = binary_node(ExprKind::And, op, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (!is_name(current(), "not")) return parse_compare();
    DepthGuard guard(*this);
    auto node = make_expr(ExprKind::Not, next());
    node->children.push_back(parse_not());
    return node;
  }

  ExprPtr parse_compare() {
    const Token start = current();
    ExprPtr first = parse_math1();
    std::vector<CompareOp> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& token = current();
      std::optional<CompareOp> op;
      if (token.type == TokenType::Operator) {
        static constexpr std::pair<std::string_view, CompareOp> kOps[] = {
            {"==", CompareOp::Equal},     {"!=", CompareOp::NotEqual}, {"<", CompareOp::Less},
            {"<=", CompareOp::LessEqual}, {">", CompareOp::Greater},   {">=", CompareOp::GreaterEqual}};
        for (const auto& [text, value] : kOps) {
          if (token.text == text) op = value;
        }
      }
      if (op) {
        next();
      } else if (is_name(token, "in")) {
        next();
        op = CompareOp::In;
      } else if (is_name(token, "not") && is_name(look(), "in")) {
        next();
        next();
        op = CompareOp::NotIn;
      } else {
        break;
      }
      ops.push_back(*op);
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto node = make_expr(ExprKind::Compare, start);
    node->children.push_back(std::move(first));
    for (auto& operand : operands) node->children.push_back(std::move(operand));
    node->compare_ops = std::move(ops);
    return node;
  }

  ExprPtr binary_op_node(const Token& at, BinaryOp op, ExprPtr left, ExprPtr right) const {
    auto node = binary_node(ExprKind::Binary, at, std::move(left), std::move(right));
    node->binary_op = op;
    return node;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op(current(), "+") || is_op(current(), "-")) {
      const Token op = next();
      left = binary_op_node(op, op.text == "+" ? BinaryOp::Add : BinaryOp::Subtract, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Token start = current();
    ExprPtr first = parse_math2();
    if (!is_op(current(), "~")) return first;
    auto node = make_expr(ExprKind::Concat, start);
    node->children.push_back(std::move(first));
    while (is_op(current(), "~")) {
      next();
      node->children.push_back(parse_math2());
    }
    return node;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (true) {
      const Token& token = current();
      BinaryOp op;
      if (is_op(token, "*")) {
        op = BinaryOp::Multiply;
      } else if (is_op(token, "/")) {
        op = BinaryOp::Divide;
      } else if (is_op(token, "//")) {
        op = BinaryOp::FloorDivide;
      } else if (is_op(token, "%")) {
        op = BinaryOp::Modulo;
      } else {
        return left;
      }
      const Token at = next();
      left = binary_op_node(at, op, std::move(left), parse_pow());
    }
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op(current(), "**")) {
      const Token op = next();
      left = binary_op_node(op, BinaryOp::Power, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op(current(), "-") || is_op(current(), "+")) {
      const Token op = next();
      node = make_expr(op.text == "-" ? ExprKind::Negate : ExprKind::Plus, op);
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token token = current();
    switch (token.type) {
      case TokenType::Name: {
        next();
        if (in_list(token.text, {"true", "True", "false", "False"})) {
          auto node = make_expr(ExprKind::Literal, token);
          node->literal = Value::from_bool(token.text == "true" || token.text == "True");
          return node;
        }
        if (token.text == "none" || token.text == "None") {
          auto node = make_expr(ExprKind::Literal, token);
          node->literal = Value::none();
          return node;
        }
        auto node = make_expr(ExprKind::Name, token);
        node->name = token.text;
        return node;
      }
      case TokenType::String: {
        auto node = make_expr(ExprKind::Literal, token);
        std::string value = next().text;
        while (current().type == TokenType::String) value += next().text;
        node->literal = Value::from_string(std::move(value));
        return node;
      }
      case TokenType::Integer:
      case TokenType::Float: {
        auto node = make_expr(ExprKind::Literal, token);
        node->literal =
            token.type == TokenType::Integer ? Value::from_int(token.integer) : Value::from_float(token.real);
        next();
        return node;
      }
      default:
        break;
    }
    if (is_op(token, "(")) {
      next();
      ExprPtr inner = parse_tuple(false, true, {}, true);
      expect_op(")");
      return inner;
    }
    if (is_op(token, "[")) return parse_list();
    if (is_op(token, "{")) return parse_dict();
    fail("unexpected " + describe(token));
  }

  ExprPtr parse_list() {
    auto node = make_expr(ExprKind::List, next());
    while (!is_op(current(), "]")) {
      if (!node->children.empty()) expect_op(",");
      if (is_op(current(), "]")) break;
      node->children.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  ExprPtr parse_dict() {
    auto node = make_expr(ExprKind::Dict, next());
    while (!is_op(current(), "}")) {
      if (!node->children.empty()) expect_op(",");
      if (is_op(current(), "}")) break;
      node->children.push_back(parse_expression(true));
      expect_op(":");
      node->children.push_back(parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(current(), ".") || is_op(current(), "[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op(current(), "(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op(current(), "|")) {
        node = parse_filters(std::move(node), false);
      } else if (is_name(current(), "is")) {
        node = parse_test(std::move(node));
      } else if (is_op(current(), "(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token token = next();
    if (token.text == ".") {
      const Token attr = next();
      if (attr.type == TokenType::Name) {
        auto getattr = make_expr(ExprKind::GetAttr, token);
        getattr->name = attr.text;
        getattr->children.push_back(std::move(node));
        return getattr;
      }
      if (attr.type != TokenType::Integer) fail_at(attr.offset, "expected name or number after '.'");
      auto getitem = make_expr(ExprKind::GetItem, token);
      getitem->children.push_back(std::move(node));
      auto index = make_expr(ExprKind::Literal, attr);
      index->literal = Value::from_int(attr.integer);
      getitem->children.push_back(std::move(index));
      return getitem;
    }
    ExprPtr subscript = parse_subscribed(token, std::move(node));
    if (is_op(current(), ",")) fail("unsupported construct: tuple subscripts");
    expect_op("]");
    return subscript;
  }

  ExprPtr parse_subscribed(const Token& bracket, ExprPtr target) {
    ExprPtr start;
    if (!is_op(current(), ":")) {
      start = parse_expression(true);
      if (!is_op(current(), ":")) {
        auto getitem = make_expr(ExprKind::GetItem, bracket);
        getitem->children.push_back(std::move(target));
        getitem->children.push_back(std::move(start));
        return getitem;
      }
    }
    next();  // the first ':'
    auto slice = make_expr(ExprKind::Slice, bracket);
    slice->children.push_back(std::move(target));
    slice->children.push_back(std::move(start));
    auto bound_ends = [&] { return is_op(current(), "]") || is_op(current(), ",") || is_op(current(), ":"); };
    slice->children.push_back(bound_ends() ? nullptr : parse_expression(true));
    ExprPtr step;
    if (is_op(current(), ":")) {
      next();
      if (!is_op(current(), "]") && !is_op(current(), ",")) step = parse_expression(true);
    }
    slice->children.push_back(std::move(step));
    return slice;
  }

  // `(a, b, key=c)` into node->children (after any first child) and node->keyword_args.
  void parse_call_args(Expr& node) {
    expect_op("(");
    bool require_comma = false;
    while (!is_op(current(), ")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(current(), ")")) break;
      }
      if (is_op(current(), "*") || is_op(current(), "**")) fail("unsupported construct: *args / **kwargs in calls");
      if (current().type == TokenType::Name && is_op(look(), "=")) {
        std::string key = next().text;
        next();
        node.keyword_args.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!node.keyword_args.empty()) fail("positional argument follows keyword argument");
        node.children.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto call = make_expr(ExprKind::Call, current());
    call->children.push_back(std::move(callee));
    parse_call_args(*call);
    return call;
  }

  // `| name(args)` repeated; with start_inline the first filter has no leading '|'.
  ExprPtr parse_filters(ExprPtr node, bool start_inline) {
    while (is_op(current(), "|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Token name = current();
      auto filter = make_expr(ExprKind::Filter, name);
      filter->name = expect_name();
      if (is_op(current(), ".")) fail("unsupported construct: dotted filter names");
      if (!is_known_filter(filter->name)) fail_at(name.offset, "unknown filter '" + filter->name + "'");
      filter->children.push_back(std::move(node));
      if (is_op(current(), "(")) parse_call_args(*filter);
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const Token is_token = next();
    bool negated = false;
    if (is_name(current(), "not")) {
      next();
      negated = true;
    }
    const Token name = current();
    auto test = make_expr(ExprKind::Test, is_token);
    test->name = expect_name();
    if (!is_known_test(test->name)) fail_at(name.offset, "unknown test '" + test->name + "'");
    test->children.push_back(std::move(node));
    const Token& arg = current();
    if (is_op(arg, "(")) {
      parse_call_args(*test);
    } else if ((arg.type == TokenType::Name || arg.type == TokenType::String || arg.type == TokenType::Integer ||
                arg.type == TokenType::Float || is_op(arg, "[") || is_op(arg, "{")) &&
               !(arg.type == TokenType::Name && in_list(arg.text, {"else", "or", "and"}))) {
      if (is_name(arg, "is")) fail("you cannot chain multiple tests with 'is'");
      test->children.push_back(parse_postfix(parse_primary()));
    }
    if (!negated) return test;
    auto not_node = make_expr(ExprKind::Not, is_token);
    not_node->children.push_back(std::move(test));
    return not_node;
  }

  const SourceMap& map_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Template parse_template(std::string_view source) {
  const SourceMap map(normalize_source(source));
  return Parser(map, tokenize(map)).run();
}

}  // namespace anvil::tokenizer::jinja
