// recforge models register | list | show | alias | delete-alias | promote
//
// The model registry on top of the tracking store: a registered model is a named
// sequence of versions, each one a run's "model" artifact (checksummed), and aliases
// ("staging", "production") point at versions. `promote` moves an alias behind a metric
// gate so a CI job can run it and trust the exit code (0 promoted, 1 refused).
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <variant>

#include "cli_common.h"
#include "tracking_cli.h"
#include "recforge/core/error.h"
#include "recforge/tracking/store.h"

namespace recforge::cli {
namespace {

using tracking::ModelVersion;
using tracking::RegisteredModel;
using tracking::Store;
using tracking::TrackingLocation;

// ---- formatting helpers ------------------------------------------------------------

std::string FormatTime(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", fmt::gmtime(seconds));
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, units[unit]);
}

std::string FormatValue(double value) { return fmt::format("{:.6g}", value); }

std::string JoinAliases(const std::map<std::string, std::int64_t>& aliases) {
  std::string out;
  for (const auto& [alias, version] : aliases) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{}={}", alias, version);
  }
  return out.empty() ? "-" : out;
}

std::string AliasList(const std::map<std::string, std::int64_t>& aliases) {
  std::string out;
  for (const auto& [alias, version] : aliases) out += (out.empty() ? "" : ", ") + alias;
  return out.empty() ? "none" : out;
}

// Prints rows as left-aligned columns separated by two spaces (the last column is not
// padded, so lines carry no trailing blanks).
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t col = 0; col < row.size(); ++col) widths[col] = std::max(widths[col], row[col].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t col = 0; col < row.size(); ++col) {
      line += col + 1 == row.size() ? row[col] : fmt::format("{:<{}}  ", row[col], widths[col]);
    }
    std::cout << line << "\n";
  }
}

// ---- store access --------------------------------------------------------------------

struct StoreArgs {
  std::string tracking_uri;
  bool json = false;
};

void AddStoreOptions(CLI::App* cmd, StoreArgs& args) {
  AddTrackingUriOption(cmd, args.tracking_uri);
  cmd->add_flag("--json", args.json, "Print JSON on stdout");
}

std::unique_ptr<Store> OpenStore(const StoreArgs& args) {
  return std::make_unique<Store>(TrackingLocation::Resolve(args.tracking_uri));
}

const ModelVersion& FindVersion(const RegisteredModel& model, std::int64_t version) {
  for (const auto& entry : model.versions) {
    if (entry.version == version) return entry;
  }
  throw NotFound(fmt::format("model '{}' has no version {} (versions 1..{})", model.name, version,
                             model.versions.empty() ? 0 : model.versions.back().version));
}

// The metrics of the run behind a version; empty when the run was deleted since (the
// version keeps its stored file, so it stays usable).
std::map<std::string, double> RunMetrics(Store& store, const std::string& run_id) {
  tracking::RunQuery query;
  query.filter = fmt::format("attributes.run_id = '{}'", run_id);
  query.limit = 1;
  auto runs = store.ListRuns(query);
  if (runs.empty()) return {};
  return runs.front().metrics;
}

// The metrics shown in tables: the usual ranking and rating headlines at 10, in this
// order, when the run has them; otherwise the run's first few metrics.
std::string HeadlineMetrics(const std::map<std::string, double>& metrics) {
  static const char* kHeadline[] = {"ndcg@10", "recall@10", "map@10", "precision@10", "hit_rate@10",
                                    "mrr@10",  "auc",       "rmse",   "mae"};
  std::string out;
  for (const char* key : kHeadline) {
    auto it = metrics.find(key);
    if (it != metrics.end()) out += fmt::format("{}{}={}", out.empty() ? "" : " ", key, FormatValue(it->second));
  }
  if (out.empty()) {
    int shown = 0;
    for (const auto& [key, value] : metrics) {
      if (shown++ == 3) break;
      out += fmt::format("{}{}={}", out.empty() ? "" : " ", key, FormatValue(value));
    }
  }
  return out.empty() ? "-" : out;
}

nlohmann::json VersionJson(const ModelVersion& version) {
  return {{"name", version.name},
          {"version", version.version},
          {"run_id", version.run_id},
          {"artifact_path", version.artifact_path},
          {"sha256", version.sha256},
          {"size", version.size},
          {"created_ms", version.created_ms},
          {"description", version.description},
          {"aliases", version.aliases}};
}

// Aliases are plain names: not empty, no '@' or '/' (they would read as references),
// no blanks, and not all digits (they would read as version numbers).
void CheckAliasName(const std::string& alias) {
  bool all_digits = !alias.empty() && std::all_of(alias.begin(), alias.end(), [](unsigned char c) {
    return std::isdigit(c) != 0;
  });
  bool bad_char = std::any_of(alias.begin(), alias.end(), [](unsigned char c) {
    return c == '@' || c == '/' || std::isspace(c) != 0;
  });
  if (alias.empty() || all_digits || bad_char) {
    throw InvalidArgument(fmt::format("alias '{}' is not a valid name (letters, digits, '-', '_', '.'; not all "
                                      "digits; no '@', '/' or blanks)",
                                      alias));
  }
}

// ---- the promotion gate ----------------------------------------------------------------
//
//   condition := "metrics." KEY  OP  REFERENCE
//   OP        := ">=" | ">" | "<=" | "<"
//   REFERENCE := NUMBER | ALIAS          (an alias of the same model, e.g. production)
// The candidate passes when `candidate OP reference` holds: >= / > for higher-is-better
// metrics (ndcg@10), <= / < for lower-is-better ones (rmse).

enum class GateOp { kGreaterEqual, kGreater, kLessEqual, kLess };

std::string_view OpText(GateOp op) {
  switch (op) {
    case GateOp::kGreaterEqual: return ">=";
    case GateOp::kGreater: return ">";
    case GateOp::kLessEqual: return "<=";
    case GateOp::kLess: return "<";
  }
  return "?";
}

bool Holds(double candidate, GateOp op, double reference) {
  switch (op) {
    case GateOp::kGreaterEqual: return candidate >= reference;
    case GateOp::kGreater: return candidate > reference;
    case GateOp::kLessEqual: return candidate <= reference;
    case GateOp::kLess: return candidate < reference;
  }
  return false;
}

struct GateCondition {
  std::string metric;  // lower-case key without "metrics."
  GateOp op = GateOp::kGreaterEqual;
  std::variant<double, std::string> reference;  // a threshold or an alias name
};

// A hand-written scanner over the three parts; every error names what was expected and
// where (1-based character position), e.g. `--if "metrics.ndcg@10 => production"`.
class ConditionParser {
 public:
  explicit ConditionParser(std::string_view text) : text_(text) {}

  GateCondition Parse() {
    GateCondition condition;
    std::size_t start = SkipBlanks();
    std::string lhs = Word();
    if (lhs.empty()) Fail(start, "expected 'metrics.KEY'");
    constexpr std::string_view kPrefix = "metrics.";
    if (lhs.size() <= kPrefix.size() || lhs.compare(0, kPrefix.size(), kPrefix) != 0) {
      Fail(start, fmt::format("expected 'metrics.KEY', got '{}'", lhs));
    }
    condition.metric = lhs.substr(kPrefix.size());
    std::transform(condition.metric.begin(), condition.metric.end(), condition.metric.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });

    std::size_t op_start = SkipBlanks();
    std::string op;
    while (pos_ < text_.size() && IsOpChar(text_[pos_])) op += text_[pos_++];
    if (op == ">=") condition.op = GateOp::kGreaterEqual;
    else if (op == ">") condition.op = GateOp::kGreater;
    else if (op == "<=") condition.op = GateOp::kLessEqual;
    else if (op == "<") condition.op = GateOp::kLess;
    else if (op.empty()) Fail(op_start, "expected an operator (>=, >, <=, <)");
    else Fail(op_start, fmt::format("unsupported operator '{}' (use >=, >, <=, <)", op));

    std::size_t rhs_start = SkipBlanks();
    std::string rhs;
    if (pos_ < text_.size() && (text_[pos_] == '\'' || text_[pos_] == '"')) {
      char quote = text_[pos_++];
      std::size_t close = text_.find(quote, pos_);
      if (close == std::string_view::npos) Fail(rhs_start, "unterminated quote");
      rhs = std::string(text_.substr(pos_, close - pos_));
      pos_ = close + 1;
    } else {
      rhs = Word();
    }
    if (rhs.empty()) Fail(rhs_start, "expected a number or an alias after the operator");
    if (auto number = ParseNumber(rhs)) {
      condition.reference = *number;
    } else if (std::isdigit(static_cast<unsigned char>(rhs[0])) || rhs[0] == '-' || rhs[0] == '+' ||
               rhs[0] == '.') {
      Fail(rhs_start, fmt::format("'{}' is not a number", rhs));
    } else if (rhs.compare(0, kPrefix.size(), kPrefix) == 0) {
      Fail(rhs_start, "the right-hand side is a number or an alias (e.g. production), not a metric");
    } else {
      condition.reference = rhs;
    }
    std::size_t rest = SkipBlanks();
    if (rest < text_.size()) Fail(rest, fmt::format("unexpected '{}' after the condition", text_.substr(rest)));
    return condition;
  }

 private:
  static bool IsOpChar(char c) { return c == '<' || c == '>' || c == '=' || c == '!'; }

  std::size_t SkipBlanks() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return pos_;
  }

  // A run of characters up to a blank or an operator character.
  std::string Word() {
    std::size_t start = pos_;
    while (pos_ < text_.size() && !std::isspace(static_cast<unsigned char>(text_[pos_])) && !IsOpChar(text_[pos_])) {
      ++pos_;
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  static std::optional<double> ParseNumber(const std::string& word) {
    double value = 0;
    const char* begin = word.data();
    const char* end = word.data() + word.size();
    if (begin != end && *begin == '+') ++begin;  // from_chars rejects a leading '+'
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    return value;
  }

  [[noreturn]] void Fail(std::size_t at, const std::string& problem) const {
    throw InvalidArgument(fmt::format("--if \"{}\": {} at character {}", text_, problem, at + 1));
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// ---- register --------------------------------------------------------------------------

struct RegisterArgs : StoreArgs {
  std::string run, name, description;
};

int RunRegister(const RegisterArgs& args) {
  auto store = OpenStore(args);
  // Accept a unique run-id prefix like every other command that takes a run.
  const std::string run_id = store->GetRun(args.run).id;
  ModelVersion version = store->RegisterModel(args.name, run_id, args.description);
  if (args.json) {
    PrintJson(VersionJson(version));
  } else {
    std::cout << fmt::format("registered {} version {}\n", version.name, version.version);
  }
  return 0;
}

// ---- list ------------------------------------------------------------------------------

int RunList(const StoreArgs& args) {
  auto store = OpenStore(args);
  auto models = store->ListModels();
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& model : models) {
      out.push_back({{"name", model.name},
                     {"latest_version", model.versions.empty() ? 0 : model.versions.back().version},
                     {"versions", model.versions.size()},
                     {"aliases", model.aliases},
                     {"created_ms", model.created_ms}});
    }
    PrintJson(out);
    return 0;
  }
  if (models.empty()) {
    std::cout << fmt::format("no registered models in {}\n", store->location().database.string());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "LATEST", "VERSIONS", "ALIASES"}};
  for (const auto& model : models) {
    rows.push_back({model.name, model.versions.empty() ? "-" : std::to_string(model.versions.back().version),
                    std::to_string(model.versions.size()), JoinAliases(model.aliases)});
  }
  PrintTable(rows);
  return 0;
}

// ---- show ------------------------------------------------------------------------------

struct ShowArgs : StoreArgs {
  std::string reference;
  bool verify = false;
};

int RunShow(const ShowArgs& args) {
  auto store = OpenStore(args);
  // NAME shows every version; NAME@ALIAS or NAME/N shows the one it resolves to.
  const bool is_reference = tracking::IsRegistryReference(args.reference);
  std::optional<ModelVersion> resolved;
  if (is_reference) resolved = store->ResolveModel(args.reference);
  RegisteredModel model = store->GetModel(is_reference ? resolved->name : args.reference);
  std::vector<ModelVersion> versions;
  for (const auto& version : model.versions) {
    if (!resolved || version.version == resolved->version) versions.push_back(version);
  }

  // --verify re-hashes each stored file; a mismatch is reported per version and makes
  // the command fail (exit 1) after printing everything.
  std::map<std::int64_t, std::string> problems;
  if (args.verify) {
    for (const auto& version : versions) {
      try {
        store->VerifyModelVersion(version);
      } catch (const Error& error) {  // FormatError (checksum) or IoError (file gone)
        problems[version.version] = error.what();
      }
    }
  }

  if (args.json) {
    nlohmann::json out = {{"name", model.name}, {"created_ms", model.created_ms}, {"aliases", model.aliases}};
    if (resolved) {
      out["reference"] = args.reference;
      out["resolved_version"] = resolved->version;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& version : versions) {
      nlohmann::json entry = VersionJson(version);
      entry["metrics"] = RunMetrics(*store, version.run_id);
      if (args.verify) {
        auto it = problems.find(version.version);
        entry["verified"] = it == problems.end();
        if (it != problems.end()) entry["verify_error"] = it->second;
      }
      list.push_back(std::move(entry));
    }
    out["versions"] = std::move(list);
    PrintJson(out);
  } else {
    std::cout << fmt::format("model {} (created {}, {} version{})\n", model.name, FormatTime(model.created_ms),
                             model.versions.size(), model.versions.size() == 1 ? "" : "s");
    if (resolved) std::cout << fmt::format("{} -> version {}\n", args.reference, resolved->version);
    std::cout << fmt::format("aliases: {}\n", JoinAliases(model.aliases));
    std::vector<std::vector<std::string>> rows = {
        {"VERSION", "RUN", "SHA256", "SIZE", "CREATED", "ALIASES", "METRICS"}};
    for (const auto& version : versions) {
      std::string aliases;
      for (const auto& alias : version.aliases) aliases += (aliases.empty() ? "" : ",") + alias;
      std::string metrics = HeadlineMetrics(RunMetrics(*store, version.run_id));
      if (args.verify) metrics += problems.count(version.version) ? "  [CHECKSUM MISMATCH]" : "  [ok]";
      rows.push_back({std::to_string(version.version), version.run_id.substr(0, 12), version.sha256.substr(0, 12),
                      FormatSize(version.size), FormatTime(version.created_ms), aliases.empty() ? "-" : aliases,
                      metrics});
    }
    PrintTable(rows);
    for (const auto& version : versions) {
      if (!version.description.empty()) std::cout << fmt::format("v{}: {}\n", version.version, version.description);
    }
  }
  for (const auto& [version, problem] : problems) {
    std::fprintf(stderr, "recforge: error: %s version %lld: %s\n", model.name.c_str(),
                 static_cast<long long>(version), problem.c_str());
  }
  return problems.empty() ? 0 : 1;
}

// ---- alias / delete-alias ----------------------------------------------------------------

struct AliasArgs : StoreArgs {
  std::string name, alias;
  std::int64_t version = 0;
};

int RunAlias(const AliasArgs& args) {
  CheckAliasName(args.alias);
  auto store = OpenStore(args);
  RegisteredModel model = store->GetModel(args.name);
  FindVersion(model, args.version);  // a clear NotFound before touching anything
  auto previous = model.aliases.find(args.alias);
  store->SetAlias(args.name, args.alias, args.version);
  if (args.json) {
    PrintJson({{"name", args.name},
               {"alias", args.alias},
               {"version", args.version},
               {"previous_version", previous == model.aliases.end() ? nlohmann::json() : nlohmann::json(previous->second)}});
  } else if (previous != model.aliases.end() && previous->second != args.version) {
    std::cout << fmt::format("{}@{} -> version {} (was version {})\n", args.name, args.alias, args.version,
                             previous->second);
  } else {
    std::cout << fmt::format("{}@{} -> version {}\n", args.name, args.alias, args.version);
  }
  return 0;
}

int RunDeleteAlias(const AliasArgs& args) {
  auto store = OpenStore(args);
  RegisteredModel model = store->GetModel(args.name);
  auto it = model.aliases.find(args.alias);
  if (it == model.aliases.end()) {
    throw NotFound(fmt::format("model '{}' has no alias '{}' (aliases: {})", args.name, args.alias,
                               AliasList(model.aliases)));
  }
  store->DeleteAlias(args.name, args.alias);
  if (args.json) {
    PrintJson({{"name", args.name}, {"alias", args.alias}, {"deleted", true}, {"previous_version", it->second}});
  } else {
    std::cout << fmt::format("deleted {}@{} (was version {})\n", args.name, args.alias, it->second);
  }
  return 0;
}

// ---- promote ---------------------------------------------------------------------------

struct PromoteArgs : StoreArgs {
  std::string name, from = "staging", to = "production", condition;
  bool dry_run = false;
};

int RunPromote(const PromoteArgs& args) {
  // Usage problems first (exit 2), before the store is even opened.
  CheckAliasName(args.from);
  CheckAliasName(args.to);
  if (args.from == args.to) throw InvalidArgument(fmt::format("--from and --to are both '{}'", args.from));
  std::optional<GateCondition> condition;
  if (!args.condition.empty()) condition = ConditionParser(args.condition).Parse();

  auto store = OpenStore(args);
  RegisteredModel model = store->GetModel(args.name);
  auto from = model.aliases.find(args.from);
  if (from == model.aliases.end()) {
    throw NotFound(fmt::format("model '{}' has no alias '{}' to promote from (aliases: {})", args.name, args.from,
                               AliasList(model.aliases)));
  }
  if (condition) {
    if (const auto* alias = std::get_if<std::string>(&condition->reference);
        alias && *alias != args.to && !model.aliases.count(*alias)) {
      throw InvalidArgument(fmt::format("--if: model '{}' has no alias '{}' to compare with (aliases: {})",
                                        args.name, *alias, AliasList(model.aliases)));
    }
  }
  const ModelVersion& candidate = FindVersion(model, from->second);
  auto to = model.aliases.find(args.to);
  std::optional<std::int64_t> current;
  if (to != model.aliases.end()) current = to->second;

  nlohmann::json report = {{"name", args.name},
                           {"from", args.from},
                           {"to", args.to},
                           {"condition", args.condition.empty() ? nlohmann::json() : nlohmann::json(args.condition)},
                           {"dry_run", args.dry_run},
                           {"candidate", {{"version", candidate.version}, {"run_id", candidate.run_id}}},
                           {"current", current ? nlohmann::json(*current) : nlohmann::json()}};
  bool pass = true;
  std::string reason;
  const std::string who = fmt::format("{} version {} ({})", args.name, candidate.version, args.from);

  if (current && *current == candidate.version) {
    reason = fmt::format("{}@{} is already version {}", args.name, args.to, candidate.version);
  } else if (!condition) {
    reason = "no --if condition: promoted unconditionally";
  } else {
    const std::string& key = condition->metric;
    auto candidate_metrics = RunMetrics(*store, candidate.run_id);
    auto candidate_value = candidate_metrics.find(key);
    report["metric"] = key;
    report["operator"] = OpText(condition->op);
    if (candidate_value == candidate_metrics.end()) {
      pass = false;
      reason = fmt::format("{} has no metric '{}' (run {})", who, key, candidate.run_id);
    } else {
      report["candidate"]["value"] = candidate_value->second;
      std::optional<double> reference_value;
      std::string reference_label;
      if (const double* threshold = std::get_if<double>(&condition->reference)) {
        reference_value = *threshold;
        reference_label = "threshold";
        report["reference"] = {{"kind", "number"}, {"value", *threshold}};
      } else {
        const std::string& alias = std::get<std::string>(condition->reference);
        auto holder = model.aliases.find(alias);
        if (holder == model.aliases.end()) {  // only possible for --to (checked above)
          report["reference"] = {{"kind", "alias"}, {"alias", alias}, {"version", nullptr}, {"value", nullptr}};
          reason = fmt::format("{} {} = {}; {} has no holder yet, nothing to beat", who, key,
                               FormatValue(candidate_value->second), alias);
        } else {
          const ModelVersion& reference = FindVersion(model, holder->second);
          auto reference_metrics = RunMetrics(*store, reference.run_id);
          auto value = reference_metrics.find(key);
          report["reference"] = {{"kind", "alias"},
                                 {"alias", alias},
                                 {"version", reference.version},
                                 {"run_id", reference.run_id},
                                 {"value", value == reference_metrics.end() ? nlohmann::json() : nlohmann::json(value->second)}};
          reference_label = fmt::format("{}, version {}", alias, reference.version);
          if (value == reference_metrics.end()) {
            pass = false;
            reason = fmt::format("{}@{} (version {}, run {}) has no metric '{}' to compare with; refusing (use a "
                                 "number, e.g. --if \"metrics.{} {} 0.2\")",
                                 args.name, alias, reference.version, reference.run_id, key, key,
                                 OpText(condition->op));
          } else {
            reference_value = value->second;
          }
        }
      }
      if (reference_value) {
        pass = Holds(candidate_value->second, condition->op, *reference_value);
        reason = fmt::format("{} {} = {} {} {} ({})", who, key, FormatValue(candidate_value->second),
                             pass ? OpText(condition->op) : fmt::format("is not {}", OpText(condition->op)),
                             FormatValue(*reference_value), reference_label);
      }
    }
  }

  std::string decision;
  if (!pass) {
    decision = "refused";
  } else if (current && *current == candidate.version) {
    decision = "unchanged";
  } else if (args.dry_run) {
    decision = "would_promote";
  } else {
    store->SetAlias(args.name, args.to, candidate.version);
    decision = "promoted";
  }
  report["decision"] = decision;
  report["passed"] = pass;
  report["reason"] = reason;

  if (args.json) {
    PrintJson(report);
  } else {
    const std::string current_text = current ? fmt::format("version {}", *current) : "no version";
    if (decision == "promoted") {
      std::cout << fmt::format("promoted {}@{} -> version {} (was {}): {}\n", args.name, args.to, candidate.version,
                               current_text, reason);
    } else if (decision == "would_promote") {
      std::cout << fmt::format("dry run: would promote {}@{} -> version {} (now {}): {}\n", args.name, args.to,
                               candidate.version, current_text, reason);
    } else if (decision == "unchanged") {
      std::cout << fmt::format("unchanged: {}\n", reason);
    } else {
      std::cout << fmt::format("refused: {}; {}@{} stays on {}\n", reason, args.name, args.to, current_text);
    }
  }
  return pass ? 0 : 1;
}

// Stores the body to run when the subcommand is selected (the args outlive parsing).
template <typename Args, typename Body>
void OnSelect(CLI::App* cmd, std::shared_ptr<Args> args, CommandBody& selected, Body body) {
  cmd->callback([args, &selected, body] { selected = [args, body] { return body(*args); }; });
}

}  // namespace

void RegisterRegistryCommands(CLI::App& app, GlobalOptions&, CommandBody& selected) {
  CLI::App* models = app.get_subcommand("models");
  models->description("Model families and the model registry (versions, aliases, promotion)");

  {
    auto args = std::make_shared<RegisterArgs>();
    CLI::App* cmd = models->add_subcommand("register", "Register a run's model artifact as the next version of NAME");
    cmd->add_option("--run", args->run, "Run id (or a unique prefix of 6+ characters)")->required();
    cmd->add_option("--name", args->name, "Registered model name (created on first use)")->required();
    cmd->add_option("--description", args->description, "Free text stored with the version");
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunRegister);
  }
  {
    auto args = std::make_shared<StoreArgs>();
    CLI::App* cmd = models->add_subcommand("list", "Registered models: latest version and aliases");
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunList);
  }
  {
    auto args = std::make_shared<ShowArgs>();
    CLI::App* cmd = models->add_subcommand("show", "Versions of a registered model (or the one NAME@ALIAS / NAME/N is)");
    cmd->add_option("model", args->reference, "NAME, NAME@ALIAS or NAME/VERSION")->required();
    cmd->add_flag("--verify", args->verify, "Re-hash each stored model file; exit 1 on a checksum mismatch");
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunShow);
  }
  {
    auto args = std::make_shared<AliasArgs>();
    CLI::App* cmd = models->add_subcommand("alias", "Point ALIAS of model NAME at a version (moves it if set)");
    cmd->add_option("name", args->name, "Registered model name")->required();
    cmd->add_option("alias", args->alias, "Alias, e.g. staging or production")->required();
    cmd->add_option("--version", args->version, "Version number")->required()->check(CLI::PositiveNumber);
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunAlias);
  }
  {
    auto args = std::make_shared<AliasArgs>();
    CLI::App* cmd = models->add_subcommand("delete-alias", "Remove ALIAS from model NAME");
    cmd->add_option("name", args->name, "Registered model name")->required();
    cmd->add_option("alias", args->alias, "Alias to remove")->required();
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunDeleteAlias);
  }
  {
    auto args = std::make_shared<PromoteArgs>();
    CLI::App* cmd = models->add_subcommand(
        "promote",
        "Move alias --to onto the version holding --from if the --if gate passes (exit 0 promoted, 1 refused)");
    cmd->add_option("name", args->name, "Registered model name")->required();
    cmd->add_option("--from", args->from, "Alias holding the candidate")->capture_default_str();
    cmd->add_option("--to", args->to, "Alias to move onto the candidate")->capture_default_str();
    cmd->add_option("--if", args->condition,
                    "Gate: \"metrics.KEY OP REF\", OP one of >= > <= <, REF a number or an alias "
                    "(e.g. \"metrics.ndcg@10 >= production\", \"metrics.rmse <= 0.9\")");
    cmd->add_flag("--dry-run", args->dry_run, "Decide and print, but do not move the alias");
    AddStoreOptions(cmd, *args);
    OnSelect(cmd, args, selected, RunPromote);
  }
}

}  // namespace recforge::cli
