#include "run_filter.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "recforge/core/error.h"

namespace recforge::tracking::detail {

namespace {

constexpr std::string_view kAttributes[] = {"status",   "name",     "experiment", "run_id",       "parent_id",
                                            "start_ms", "end_ms",   "duration",   "heartbeat_ms", "user",
                                            "host",     "pid"};
constexpr std::string_view kNumericAttributes[] = {"start_ms", "end_ms", "duration", "heartbeat_ms", "pid"};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::optional<double> ParseNumber(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::string copy(text);
  char* end = nullptr;
  double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || std::isspace(static_cast<unsigned char>(copy.front()))) {
    return std::nullopt;
  }
  return value;
}

std::string AttributeList() {
  std::string list;
  for (auto name : kAttributes) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kLike, kILike };

std::string_view OpText(Op op) {
  switch (op) {
    case Op::kEq: return "=";
    case Op::kNe: return "!=";
    case Op::kLt: return "<";
    case Op::kLe: return "<=";
    case Op::kGt: return ">";
    case Op::kGe: return ">=";
    case Op::kLike: return "like";
    case Op::kILike: return "ilike";
  }
  return "?";
}

// ---- tokenizer

struct Token {
  enum class Kind { kWord, kNumber, kString, kOp, kLParen, kRParen, kEnd };
  Kind kind = Kind::kEnd;
  std::string text;       // word / op / unquoted string content / number source
  std::size_t position = 0;  // 0-based offset in the filter
};

bool IsKeyChar(char c) {
  return !std::isspace(static_cast<unsigned char>(c)) && std::string_view("=!<>()'\"`,").find(c) == std::string_view::npos;
}

[[noreturn]] void SyntaxError(std::string_view filter, std::size_t position, const std::string& what) {
  throw InvalidArgument(fmt::format("filter '{}': {} at column {}", filter, what, position + 1));
}

// Reads a quoted string starting at text[pos] (the quote); doubled quotes escape.
std::string ReadQuoted(std::string_view filter, std::size_t& pos) {
  char quote = filter[pos];
  std::size_t start = pos;
  std::string out;
  ++pos;
  while (true) {
    if (pos >= filter.size()) SyntaxError(filter, start, fmt::format("unterminated {}quoted text", quote));
    if (filter[pos] == quote) {
      if (pos + 1 < filter.size() && filter[pos + 1] == quote) {
        out.push_back(quote);
        pos += 2;
        continue;
      }
      ++pos;
      return out;
    }
    out.push_back(filter[pos++]);
  }
}

std::vector<Token> Tokenize(std::string_view filter) {
  std::vector<Token> tokens;
  std::size_t pos = 0;
  while (pos < filter.size()) {
    char c = filter[pos];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++pos;
      continue;
    }
    Token token;
    token.position = pos;
    if (c == '(' || c == ')') {
      token.kind = c == '(' ? Token::Kind::kLParen : Token::Kind::kRParen;
      token.text = std::string(1, c);
      ++pos;
    } else if (c == '\'' || c == '"') {
      token.kind = Token::Kind::kString;
      token.text = ReadQuoted(filter, pos);
    } else if (c == '=' || c == '!' || c == '<' || c == '>') {
      token.kind = Token::Kind::kOp;
      if (pos + 1 < filter.size() && filter[pos + 1] == '=') {
        token.text = std::string(filter.substr(pos, 2));
        pos += 2;
      } else if (c == '<' && pos + 1 < filter.size() && filter[pos + 1] == '>') {
        token.text = "!=";
        pos += 2;
      } else if (c == '!') {
        SyntaxError(filter, pos, "'!' must be followed by '=' (did you mean '!='?)");
      } else {
        token.text = std::string(1, c);
        if (c == '=' && pos + 1 < filter.size() && filter[pos + 1] == '=') ++pos;
        ++pos;
      }
      if (token.text == "==") token.text = "=";
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') {
      token.kind = Token::Kind::kNumber;
      std::size_t end = pos + 1;
      while (end < filter.size() && IsKeyChar(filter[end])) ++end;
      token.text = std::string(filter.substr(pos, end - pos));
      if (!ParseNumber(token.text)) SyntaxError(filter, pos, fmt::format("'{}' is not a number", token.text));
      pos = end;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      token.kind = Token::Kind::kWord;
      std::size_t end = pos;
      while (end < filter.size() && (std::isalnum(static_cast<unsigned char>(filter[end])) || filter[end] == '_')) ++end;
      token.text = std::string(filter.substr(pos, end - pos));
      pos = end;
      if (pos < filter.size() && filter[pos] == '.') {
        // prefix.KEY: the key runs to the next operator / space / paren, or is quoted.
        ++pos;
        token.text += '.';
        if (pos < filter.size() && (filter[pos] == '`' || filter[pos] == '"' || filter[pos] == '\'')) {
          token.text += ReadQuoted(filter, pos);
        } else {
          while (pos < filter.size() && IsKeyChar(filter[pos])) token.text.push_back(filter[pos++]);
        }
      }
    } else {
      SyntaxError(filter, pos, fmt::format("unexpected character '{}'", c));
    }
    tokens.push_back(std::move(token));
  }
  Token end;
  end.kind = Token::Kind::kEnd;
  end.position = filter.size();
  tokens.push_back(end);
  return tokens;
}

bool IsKeyword(const Token& token, std::string_view word) {
  return token.kind == Token::Kind::kWord && Lower(token.text) == word;
}

}  // namespace

// ---- columns and values

bool RunColumn::numeric_only() const {
  if (source == Source::kMetric) return true;
  if (source != Source::kAttribute) return false;
  return std::find(std::begin(kNumericAttributes), std::end(kNumericAttributes), key) != std::end(kNumericAttributes);
}

std::string RunColumn::display() const {
  switch (source) {
    case Source::kMetric: return "metrics." + key;
    case Source::kParam: return "params." + key;
    case Source::kTag: return "tags." + key;
    case Source::kAttribute: return "attributes." + key;
  }
  return key;
}

RunColumn ParseColumn(std::string_view text, bool bare_is_attribute, std::string_view context, std::size_t position) {
  auto dot = text.find('.');
  RunColumn column;
  std::string prefix = Lower(text.substr(0, dot == std::string_view::npos ? text.size() : dot));
  std::string key = dot == std::string_view::npos ? std::string() : std::string(text.substr(dot + 1));
  if (dot == std::string_view::npos) {
    if (!bare_is_attribute) {
      throw InvalidArgument(fmt::format(
          "{}: expected metrics.KEY, params.KEY, tags.KEY or attributes.NAME at column {}, found '{}'", context,
          position + 1, text));
    }
    key = prefix;
    prefix = "attributes";
  }
  if (prefix == "metrics" || prefix == "metric") {
    column.source = RunColumn::Source::kMetric;
    key = Lower(key);
  } else if (prefix == "params" || prefix == "param" || prefix == "parameters") {
    column.source = RunColumn::Source::kParam;
  } else if (prefix == "tags" || prefix == "tag") {
    column.source = RunColumn::Source::kTag;
  } else if (prefix == "attributes" || prefix == "attribute" || prefix == "attr") {
    column.source = RunColumn::Source::kAttribute;
    key = Lower(key);
    if (key == "id") key = "run_id";
    if (std::find(std::begin(kAttributes), std::end(kAttributes), key) == std::end(kAttributes)) {
      throw InvalidArgument(fmt::format("{}: unknown attribute '{}' at column {} (allowed: {})", context, key,
                                        position + 1, AttributeList()));
    }
  } else {
    throw InvalidArgument(fmt::format(
        "{}: unknown column '{}' at column {} (use metrics.KEY, params.KEY, tags.KEY or attributes.NAME)", context,
        text, position + 1));
  }
  if (key.empty()) {
    throw InvalidArgument(fmt::format("{}: '{}' names no key at column {}", context, text, position + 1));
  }
  column.key = std::move(key);
  return column;
}

std::optional<RunValue> ValueOf(const Run& run, const RunColumn& column) {
  auto text_value = [](const std::string& text) {
    RunValue value;
    value.text = text;
    value.number = ParseNumber(text);
    return value;
  };
  auto number_value = [](double number) {
    RunValue value;
    value.number = number;
    value.text = fmt::format("{}", number);
    return value;
  };
  auto pure_text = [](const std::string& text) {
    RunValue value;
    value.text = text;
    return value;
  };
  switch (column.source) {
    case RunColumn::Source::kMetric: {
      auto it = run.metrics.find(column.key);
      if (it == run.metrics.end()) return std::nullopt;
      return number_value(it->second);
    }
    case RunColumn::Source::kParam: {
      auto it = run.params.find(column.key);
      if (it == run.params.end()) return std::nullopt;
      return text_value(it->second);
    }
    case RunColumn::Source::kTag: {
      auto it = run.tags.find(column.key);
      if (it == run.tags.end()) return std::nullopt;
      return text_value(it->second);
    }
    case RunColumn::Source::kAttribute: break;
  }
  const std::string& key = column.key;
  if (key == "status") return pure_text(std::string(Name(run.status)));
  if (key == "name") return pure_text(run.name);
  if (key == "experiment") return pure_text(run.experiment);
  if (key == "run_id") return pure_text(run.id);
  if (key == "parent_id") return pure_text(run.parent_id);
  if (key == "user") return pure_text(run.user);
  if (key == "host") return pure_text(run.host);
  if (key == "start_ms") return number_value(static_cast<double>(run.start_ms));
  if (key == "end_ms") {
    if (run.end_ms == 0) return std::nullopt;
    return number_value(static_cast<double>(run.end_ms));
  }
  if (key == "heartbeat_ms") return number_value(static_cast<double>(run.heartbeat_ms));
  if (key == "pid") return number_value(static_cast<double>(run.pid));
  if (key == "duration") return number_value(run.duration_seconds());
  return std::nullopt;
}

bool LikeMatch(std::string_view text, std::string_view pattern, bool ignore_case) {
  auto same = [ignore_case](char a, char b) {
    if (!ignore_case) return a == b;
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  // Iterative wildcard match with backtracking to the last '%'.
  std::size_t t = 0, p = 0;
  std::size_t star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star = p++;
      star_text = t;
    } else if (p < pattern.size() && (pattern[p] == '_' || same(pattern[p], text[t]))) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

// ---- parser

struct RunFilter::Node {
  enum class Kind { kCompare, kAnd, kOr };
  Kind kind = Kind::kCompare;
  RunColumn column;
  Op op = Op::kEq;
  bool literal_is_number = false;
  double number = 0;
  std::string text;
  std::shared_ptr<const Node> left, right;
};

namespace {

using NodePtr = std::shared_ptr<const RunFilter::Node>;

class Parser {
 public:
  Parser(std::string_view filter, std::vector<Token> tokens) : filter_(filter), tokens_(std::move(tokens)) {}

  NodePtr ParseAll() {
    auto node = ParseOr();
    if (Peek().kind != Token::Kind::kEnd) {
      const Token& token = Peek();
      SyntaxError(filter_, token.position,
                  token.kind == Token::Kind::kRParen ? std::string("unbalanced ')'")
                                                     : fmt::format("expected 'and', 'or' or the end, found '{}'", token.text));
    }
    return node;
  }

 private:
  const Token& Peek() const { return tokens_[index_]; }
  const Token& Next() { return tokens_[index_++]; }

  NodePtr Combine(RunFilter::Node::Kind kind, NodePtr left, NodePtr right) {
    auto node = std::make_shared<RunFilter::Node>();
    node->kind = kind;
    node->left = std::move(left);
    node->right = std::move(right);
    return node;
  }

  NodePtr ParseOr() {
    auto node = ParseAnd();
    while (IsKeyword(Peek(), "or")) {
      Next();
      node = Combine(RunFilter::Node::Kind::kOr, node, ParseAnd());
    }
    return node;
  }

  NodePtr ParseAnd() {
    auto node = ParsePrimary();
    while (IsKeyword(Peek(), "and")) {
      Next();
      node = Combine(RunFilter::Node::Kind::kAnd, node, ParsePrimary());
    }
    return node;
  }

  NodePtr ParsePrimary() {
    const Token& token = Peek();
    if (token.kind == Token::Kind::kLParen) {
      Next();
      auto node = ParseOr();
      if (Peek().kind != Token::Kind::kRParen) {
        SyntaxError(filter_, Peek().position,
                    fmt::format("expected ')' to close the '(' at column {}", token.position + 1));
      }
      Next();
      return node;
    }
    return ParseTerm();
  }

  NodePtr ParseTerm() {
    const Token& column_token = Next();
    if (column_token.kind == Token::Kind::kEnd) SyntaxError(filter_, column_token.position, "expected a condition");
    if (column_token.kind != Token::Kind::kWord) {
      SyntaxError(filter_, column_token.position,
                  fmt::format("expected metrics.KEY, params.KEY, tags.KEY or attributes.NAME, found '{}'",
                              column_token.text));
    }
    auto node = std::make_shared<RunFilter::Node>();
    node->column = ParseColumn(column_token.text, false, fmt::format("filter '{}'", filter_), column_token.position);

    const Token& op = Next();
    if (op.kind == Token::Kind::kOp) {
      static const std::pair<std::string_view, Op> kOps[] = {{"=", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt},
                                                             {"<=", Op::kLe}, {">", Op::kGt}, {">=", Op::kGe}};
      for (const auto& [text, value] : kOps) {
        if (op.text == text) node->op = value;
      }
    } else if (IsKeyword(op, "like")) {
      node->op = Op::kLike;
    } else if (IsKeyword(op, "ilike")) {
      node->op = Op::kILike;
    } else {
      SyntaxError(filter_, op.position,
                  fmt::format("expected an operator (=, !=, <, <=, >, >=, like) after '{}', found '{}'",
                              column_token.text, op.kind == Token::Kind::kEnd ? "the end" : op.text));
    }

    const Token& value = Next();
    if (value.kind == Token::Kind::kNumber) {
      node->literal_is_number = true;
      node->number = *ParseNumber(value.text);
      node->text = value.text;
    } else if (value.kind == Token::Kind::kString) {
      node->text = value.text;
    } else {
      SyntaxError(filter_, value.position,
                  fmt::format("expected a number or 'quoted text' after '{} {}', found '{}'", column_token.text,
                              OpText(node->op), value.kind == Token::Kind::kEnd ? "the end" : value.text));
    }

    bool like = node->op == Op::kLike || node->op == Op::kILike;
    if (like && (node->literal_is_number || node->column.numeric_only())) {
      SyntaxError(filter_, op.position,
                  fmt::format("'{}' needs a text column and a 'quoted pattern' ({} is {})", OpText(node->op),
                              node->column.display(), node->column.numeric_only() ? "numeric" : "compared to a number"));
    }
    if (node->column.numeric_only() && !node->literal_is_number) {
      auto number = ParseNumber(node->text);
      if (!number) {
        SyntaxError(filter_, value.position,
                    fmt::format("{} is numeric; '{}' is not a number", node->column.display(), node->text));
      }
      node->literal_is_number = true;
      node->number = *number;
    }
    if (node->column.source == RunColumn::Source::kAttribute && node->column.key == "status") {
      node->text = Upper(node->text);
      if (!like) ParseRunStatus(node->text);  // throws InvalidArgument listing the statuses
    }
    return node;
  }

  std::string_view filter_;
  std::vector<Token> tokens_;
  std::size_t index_ = 0;
};

template <class T>
bool Compare(const T& a, const T& b, Op op) {
  switch (op) {
    case Op::kEq: return a == b;
    case Op::kNe: return a != b;
    case Op::kLt: return a < b;
    case Op::kLe: return a <= b;
    case Op::kGt: return a > b;
    case Op::kGe: return a >= b;
    case Op::kLike:
    case Op::kILike: return false;
  }
  return false;
}

bool Evaluate(const RunFilter::Node& node, const Run& run) {
  switch (node.kind) {
    case RunFilter::Node::Kind::kAnd: return Evaluate(*node.left, run) && Evaluate(*node.right, run);
    case RunFilter::Node::Kind::kOr: return Evaluate(*node.left, run) || Evaluate(*node.right, run);
    case RunFilter::Node::Kind::kCompare: break;
  }
  auto value = ValueOf(run, node.column);
  if (!value) return false;
  if (node.op == Op::kLike || node.op == Op::kILike) return LikeMatch(value->text, node.text, node.op == Op::kILike);
  if (node.literal_is_number && value->number) {
    if (std::isnan(*value->number)) return node.op == Op::kNe;
    return Compare(*value->number, node.number, node.op);
  }
  return Compare(value->text, node.text, node.op);
}

}  // namespace

RunFilter RunFilter::Parse(std::string_view text) {
  RunFilter filter;
  bool blank = std::all_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
  if (blank) return filter;
  Parser parser(text, Tokenize(text));
  filter.root_ = parser.ParseAll();
  return filter;
}

bool RunFilter::Matches(const Run& run) const { return root_ == nullptr || Evaluate(*root_, run); }

// ---- order by

std::vector<OrderKey> ParseOrderBy(std::string_view text) {
  std::vector<OrderKey> keys;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    std::size_t item_start = start;
    start = comma + 1;
    auto first = item.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
      if (comma == text.size() && keys.empty() && item_start == 0) break;  // empty order_by
      throw InvalidArgument(fmt::format("order_by '{}': empty item at column {}", text, item_start + 1));
    }
    auto last = item.find_last_not_of(" \t\r\n");
    item = item.substr(first, last - first + 1);
    std::size_t column_position = item_start + first;
    OrderKey key;
    auto space = item.find_last_of(" \t");
    if (space != std::string_view::npos) {
      std::string direction = Lower(item.substr(space + 1));
      if (direction == "desc") {
        key.descending = true;
      } else if (direction != "asc") {
        throw InvalidArgument(fmt::format("order_by '{}': expected 'asc' or 'desc' at column {}, found '{}'", text,
                                          item_start + first + space + 2, item.substr(space + 1)));
      }
      item = item.substr(0, item.find_last_not_of(" \t", space) + 1);
    }
    if (item.find_first_of(" \t") != std::string_view::npos) {
      throw InvalidArgument(fmt::format("order_by '{}': unexpected text in '{}' at column {}", text, item,
                                        column_position + 1));
    }
    key.column = ParseColumn(item, true, fmt::format("order_by '{}'", text), column_position);
    keys.push_back(std::move(key));
    if (comma == text.size()) break;
  }
  return keys;
}

void SortRuns(std::vector<Run>& runs, const std::vector<OrderKey>& keys) {
  auto three_way = [](const RunValue& a, const RunValue& b) -> int {
    if (a.number && b.number) {
      double x = *a.number, y = *b.number;
      if (std::isnan(x) || std::isnan(y)) return std::isnan(x) == std::isnan(y) ? 0 : (std::isnan(x) ? 1 : -1);
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    return a.text.compare(b.text) < 0 ? -1 : (a.text == b.text ? 0 : 1);
  };
  std::stable_sort(runs.begin(), runs.end(), [&](const Run& a, const Run& b) {
    for (const auto& key : keys) {
      auto va = ValueOf(a, key.column);
      auto vb = ValueOf(b, key.column);
      if (!va && !vb) continue;
      if (!va) return false;  // missing last
      if (!vb) return true;
      int order = three_way(*va, *vb);
      if (order != 0) return key.descending ? order > 0 : order < 0;
    }
    if (a.start_ms != b.start_ms) return a.start_ms > b.start_ms;
    return a.id < b.id;
  });
}

}  // namespace recforge::tracking::detail
