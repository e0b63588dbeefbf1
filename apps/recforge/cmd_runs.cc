// recforge runs list|show|compare|delete|export, recforge experiments list|create|rename
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <set>

#include "cli_common.h"
#include "recforge/core/error.h"
#include "recforge/tracking/mlflow_export.h"
#include "tracking_cli.h"

namespace recforge::cli {
namespace {

using tracking::Run;
using tracking::Store;
using tracking::TrackingLocation;

std::unique_ptr<Store> OpenStore(const std::string& uri) {
  return std::make_unique<Store>(TrackingLocation::Resolve(uri));
}

std::string FormatTime(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &local);
  return buffer;
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0)) return "-";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto total = static_cast<long long>(seconds);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (value != 0 && (std::fabs(value) >= 1e6 || std::fabs(value) < 1e-3)) return fmt::format("{:.4g}", value);
  if (value == std::floor(value)) return fmt::format("{:.0f}", value);
  return fmt::format("{:.4f}", value);
}

// Left-aligned text table with two spaces between columns.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

bool StdoutIsColourTerminal() { return isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr; }

nlohmann::json RunJson(const Run& run) {
  return {{"run_id", run.id},
          {"experiment", run.experiment},
          {"experiment_id", run.experiment_id},
          {"name", run.name},
          {"status", std::string(tracking::Name(run.status))},
          {"status_reason", run.status_reason},
          {"start_ms", run.start_ms},
          {"end_ms", run.end_ms},
          {"duration_seconds", run.duration_seconds()},
          {"parent_id", run.parent_id},
          {"user", run.user},
          {"host", run.host},
          {"pid", run.pid},
          {"command", run.command},
          {"recforge_version", run.recforge_version},
          {"git_commit", run.git_commit},
          {"params", run.params},
          {"metrics", run.metrics},
          {"tags", run.tags}};
}

nlohmann::json EdgeJson(const tracking::LineageEdge& edge) {
  return {{"run_id", edge.run_id}, {"direction", edge.direction}, {"kind", edge.kind}, {"hash", edge.hash},
          {"path", edge.path}};
}

// ---- runs list ----------------------------------------------------------------------

// The metric columns of the list: the headline ones present, else the first keys.
std::vector<std::string> KeyMetrics(const std::vector<Run>& runs) {
  std::set<std::string> present;
  for (const auto& run : runs) {
    for (const auto& entry : run.metrics) present.insert(entry.first);
  }
  std::vector<std::string> keys;
  for (const char* key : {"ndcg@10", "recall@10", "rmse", "loss", "val_ndcg@10"}) {
    if (present.count(key) && keys.size() < 3) keys.push_back(key);
  }
  if (keys.empty()) {
    for (const auto& key : present) {
      if (keys.size() >= 3) break;
      keys.push_back(key);
    }
  }
  return keys;
}

void AddRunsList(CLI::App* runs, CommandBody& selected) {
  struct Args {
    std::string uri, experiment, filter, order_by;
    std::size_t limit = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = runs->add_subcommand("list", "List runs (newest first)");
  AddTrackingUriOption(cmd, args->uri);
  cmd->add_option("--experiment,-e", args->experiment, "Only runs of this experiment (name or id)");
  cmd->add_option("--filter", args->filter,
                  "e.g. \"metrics.ndcg@10 > 0.3 and params.family = 'ials'\" (metrics|params|tags|attributes)");
  cmd->add_option("--order-by", args->order_by, "e.g. \"metrics.ndcg@10 desc\" (default: start time, newest first)");
  cmd->add_option("--limit,-n", args->limit, "At most N runs (0 = all)")->capture_default_str();
  cmd->add_flag("--json", args->json, "JSON array on stdout");
  cmd->callback([args, &selected] {
    selected = [args] {
      auto store = OpenStore(args->uri);
      tracking::RunQuery query;
      if (!args->experiment.empty()) {
        auto experiment = store->FindExperiment(args->experiment);
        if (!experiment) throw NotFound(fmt::format("experiment '{}' does not exist", args->experiment));
        query.experiment = experiment->name;
      }
      query.filter = args->filter;
      query.order_by = args->order_by;
      query.limit = args->limit;
      std::vector<Run> runs = store->ListRuns(query);
      if (args->json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& run : runs) out.push_back(RunJson(run));
        PrintJson(out);
        return 0;
      }
      if (runs.empty()) {
        std::cout << "no runs\n";
        return 0;
      }
      std::vector<std::string> metrics = KeyMetrics(runs);
      std::vector<std::vector<std::string>> rows;
      std::vector<std::string> header = {"id", "experiment", "name", "status", "start", "duration"};
      header.insert(header.end(), metrics.begin(), metrics.end());
      rows.push_back(header);
      for (const auto& run : runs) {
        std::vector<std::string> row = {run.id.substr(0, 8) + (run.parent_id.empty() ? "" : " ^"),
                                        run.experiment,
                                        run.name,
                                        std::string(tracking::Name(run.status)),
                                        FormatTime(run.start_ms),
                                        FormatDuration(run.duration_seconds())};
        for (const auto& key : metrics) {
          auto found = run.metrics.find(key);
          row.push_back(found == run.metrics.end() ? "-" : FormatNumber(found->second));
        }
        rows.push_back(row);
      }
      std::cout << FormatTable(rows);
      return 0;
    };
  });
}

// ---- runs show ----------------------------------------------------------------------

// The runs connected to `start` by content hashes: its ancestors (runs that wrote what
// it read, recursively) and descendants (runs that read what it wrote, recursively),
// but not the other descendants of its ancestors.
struct LineageGraph {
  std::vector<Run> runs;  // oldest first
  std::map<std::string, std::vector<tracking::LineageEdge>> edges;
  std::vector<tracking::ModelVersion> versions;
};

LineageGraph WalkLineage(Store& store, const Run& start) {
  LineageGraph graph;
  std::map<std::string, Run> found;
  found[start.id] = start;
  for (const char* direction : {"input", "output"}) {
    const bool upstream = std::string(direction) == "input";
    std::deque<std::string> queue = {start.id};
    std::set<std::string> visited = {start.id};
    while (!queue.empty()) {
      std::string id = queue.front();
      queue.pop_front();
      for (const auto& edge : store.Lineage(id)) {
        if (edge.direction != direction) continue;
        for (const auto& next : upstream ? store.RunsWriting(edge.hash) : store.RunsReading(edge.hash)) {
          if (!visited.insert(next).second) continue;
          queue.push_back(next);
          if (!found.count(next)) found[next] = store.GetRun(next);
        }
      }
    }
  }
  for (auto& [id, run] : found) {
    graph.edges[id] = store.Lineage(id);
    graph.runs.push_back(run);
  }
  std::sort(graph.runs.begin(), graph.runs.end(),
            [](const Run& a, const Run& b) { return a.start_ms != b.start_ms ? a.start_ms < b.start_ms : a.id < b.id; });
  for (const auto& model : store.ListModels()) {
    for (const auto& version : model.versions) {
      if (found.count(version.run_id)) graph.versions.push_back(version);
    }
  }
  return graph;
}

nlohmann::json LineageJson(Store& store, const LineageGraph& graph) {
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& run : graph.runs) {
    nlohmann::json inputs = nlohmann::json::array(), outputs = nlohmann::json::array();
    for (const auto& edge : graph.edges.at(run.id)) {
      nlohmann::json entry = EdgeJson(edge);
      if (auto dataset = store.FindDataset(edge.hash)) {
        entry["dataset"] = {{"kind", dataset->kind}, {"path", dataset->path}, {"counts", dataset->counts}};
      }
      (edge.direction == "input" ? inputs : outputs).push_back(entry);
    }
    runs.push_back({{"run_id", run.id}, {"experiment", run.experiment}, {"name", run.name},
                    {"status", std::string(tracking::Name(run.status))}, {"start_ms", run.start_ms},
                    {"inputs", inputs}, {"outputs", outputs}});
  }
  nlohmann::json versions = nlohmann::json::array();
  for (const auto& version : graph.versions) {
    versions.push_back({{"name", version.name}, {"version", version.version}, {"run_id", version.run_id},
                        {"sha256", version.sha256}, {"aliases", version.aliases}});
  }
  return {{"runs", runs}, {"model_versions", versions}};
}

std::string FormatLineage(Store& store, const LineageGraph& graph, const std::string& current) {
  std::string out = "lineage (oldest first; > this run):\n";
  for (const auto& run : graph.runs) {
    out += fmt::format("{} run {}  {}/{}  {}\n", run.id == current ? ">" : " ", run.id.substr(0, 8), run.experiment,
                       run.name, tracking::Name(run.status));
    for (const char* direction : {"input", "output"}) {
      for (const auto& edge : graph.edges.at(run.id)) {
        if (edge.direction != direction) continue;
        std::string detail = edge.path;
        if (auto dataset = store.FindDataset(edge.hash)) {
          if (detail.empty()) detail = dataset->path;
          if (dataset->counts.contains("interactions") && !dataset->counts["interactions"].is_null()) {
            detail += fmt::format(" ({} interactions)", dataset->counts["interactions"].dump());
          }
        }
        out += fmt::format("      {:<3} {:<13} {}  {}\n", edge.direction == "input" ? "in" : "out", edge.kind,
                           edge.hash.substr(0, 12), detail);
      }
    }
  }
  for (const auto& version : graph.versions) {
    std::string aliases;
    for (const auto& alias : version.aliases) aliases += (aliases.empty() ? " @" : ", @") + alias;
    out += fmt::format("  registered {}/{}{}  from run {}\n", version.name, version.version, aliases,
                       version.run_id.substr(0, 8));
  }
  return out;
}

void AddRunsShow(CLI::App* runs, CommandBody& selected) {
  struct Args {
    std::string uri, id;
    bool lineage = false, json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = runs->add_subcommand("show", "Params, metrics (with history), tags, artifacts of one run");
  cmd->add_option("run", args->id, "Run id or unique prefix (>= 6 characters)")->required();
  AddTrackingUriOption(cmd, args->uri);
  cmd->add_flag("--lineage", args->lineage, "Walk raw files -> dataset -> split -> model -> evaluation -> registry");
  cmd->add_flag("--json", args->json, "JSON on stdout");
  cmd->callback([args, &selected] {
    selected = [args] {
      auto store = OpenStore(args->uri);
      Run run = store->GetRun(args->id);
      nlohmann::json history = nlohmann::json::object();
      for (const auto& key : store->MetricKeys(run.id)) {
        auto points = store->MetricHistory(run.id, key);
        if (points.empty()) continue;
        double low = points[0].value, high = points[0].value;
        nlohmann::json list = nlohmann::json::array();
        for (const auto& point : points) {
          low = std::min(low, point.value);
          high = std::max(high, point.value);
          list.push_back({{"step", point.step}, {"value", point.value}, {"timestamp_ms", point.timestamp_ms}});
        }
        history[key] = {{"count", points.size()}, {"first_step", points.front().step},
                        {"last_step", points.back().step}, {"min", low}, {"max", high},
                        {"last", points.back().value}, {"points", list}};
      }
      auto artifacts = store->Artifacts(run.id);
      auto edges = store->Lineage(run.id);
      std::optional<LineageGraph> graph;
      if (args->lineage) graph = WalkLineage(*store, run);
      if (args->json) {
        nlohmann::json out = RunJson(run);
        out["metric_history"] = history;
        out["artifacts"] = nlohmann::json::array();
        for (const auto& artifact : artifacts) {
          out["artifacts"].push_back({{"path", artifact.path}, {"kind", artifact.kind}, {"size", artifact.size},
                                      {"sha256", artifact.sha256},
                                      {"location", (store->location().artifacts / run.id / artifact.path).string()}});
        }
        out["edges"] = nlohmann::json::array();
        for (const auto& edge : edges) out["edges"].push_back(EdgeJson(edge));
        if (graph) out["lineage"] = LineageJson(*store, *graph);
        PrintJson(out);
        return 0;
      }
      std::string text = fmt::format("run {}  {}\n", run.id, run.name);
      std::vector<std::vector<std::string>> rows = {
          {"  experiment", fmt::format("{} (id {})", run.experiment, run.experiment_id)},
          {"  status", std::string(tracking::Name(run.status)) +
                           (run.status_reason.empty() ? "" : ": " + run.status_reason)},
          {"  start", FormatTime(run.start_ms)},
          {"  end", FormatTime(run.end_ms)},
          {"  duration", FormatDuration(run.duration_seconds())},
          {"  command", run.command},
          {"  user", fmt::format("{}@{} (pid {})", run.user, run.host, run.pid)},
          {"  recforge", fmt::format("{} ({})", run.recforge_version, run.git_commit)}};
      if (!run.parent_id.empty()) rows.push_back({"  parent", run.parent_id});
      text += FormatTable(rows);
      auto section = [&](const std::string& title, const std::vector<std::vector<std::string>>& body) {
        text += title + (body.empty() ? " (none)\n" : ":\n");
        if (!body.empty()) text += FormatTable(body);
      };
      rows.clear();
      for (const auto& [key, value] : run.params) rows.push_back({"  " + key, value});
      section("params", rows);
      rows.clear();
      for (const auto& [key, value] : run.metrics) {
        std::string summary;
        if (history.contains(key) && history[key]["count"].get<std::size_t>() > 1) {
          const auto& h = history[key];
          summary = fmt::format("history: {} points, steps {}..{}, min {}, max {}", h["count"].get<std::size_t>(),
                                h["first_step"].get<std::int64_t>(), h["last_step"].get<std::int64_t>(),
                                FormatNumber(h["min"].get<double>()), FormatNumber(h["max"].get<double>()));
        }
        rows.push_back({"  " + key, FormatNumber(value), summary});
      }
      section("metrics", rows);
      rows.clear();
      for (const auto& [key, value] : run.tags) rows.push_back({"  " + key, value});
      section("tags", rows);
      rows.clear();
      for (const auto& artifact : artifacts) {
        rows.push_back({"  " + artifact.path, artifact.kind, fmt::format("{} bytes", artifact.size),
                        artifact.sha256.substr(0, 12)});
      }
      section("artifacts", rows);
      if (graph) {
        text += FormatLineage(*store, *graph, run.id);
      } else if (!edges.empty()) {
        rows.clear();
        for (const auto& edge : edges) {
          rows.push_back({"  " + std::string(edge.direction == "input" ? "in" : "out"), edge.kind,
                          edge.hash.substr(0, 12), edge.path});
        }
        section("lineage edges (--lineage walks them)", rows);
      }
      std::cout << text;
      return 0;
    };
  });
}

// ---- runs compare -------------------------------------------------------------------

void AddRunsCompare(CLI::App* runs, CommandBody& selected) {
  struct Args {
    std::string uri;
    std::vector<std::string> ids;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = runs->add_subcommand("compare", "Params and metrics of runs side by side (* = differs)");
  cmd->add_option("runs", args->ids, "Two or more run ids (or unique prefixes)")->required()->expected(2, 1000);
  AddTrackingUriOption(cmd, args->uri);
  cmd->add_flag("--json", args->json, "JSON on stdout");
  cmd->callback([args, &selected] {
    selected = [args] {
      if (args->ids.size() < 2) throw InvalidArgument("runs compare needs at least two run ids");
      auto store = OpenStore(args->uri);
      std::vector<Run> runs;
      for (const auto& id : args->ids) runs.push_back(store->GetRun(id));
      std::set<std::string> param_keys, metric_keys;
      for (const auto& run : runs) {
        for (const auto& entry : run.params) param_keys.insert(entry.first);
        for (const auto& entry : run.metrics) metric_keys.insert(entry.first);
      }
      auto param_values = [&](const std::string& key) {
        std::vector<std::optional<std::string>> values;
        for (const auto& run : runs) {
          auto found = run.params.find(key);
          values.push_back(found == run.params.end() ? std::nullopt : std::optional<std::string>(found->second));
        }
        return values;
      };
      auto metric_values = [&](const std::string& key) {
        std::vector<std::optional<double>> values;
        for (const auto& run : runs) {
          auto found = run.metrics.find(key);
          values.push_back(found == run.metrics.end() ? std::nullopt : std::optional<double>(found->second));
        }
        return values;
      };
      auto differs = [](const auto& values) {
        return std::any_of(values.begin(), values.end(), [&](const auto& value) { return value != values[0]; });
      };
      if (args->json) {
        nlohmann::json out = {{"runs", nlohmann::json::array()},
                              {"params", nlohmann::json::object()},
                              {"metrics", nlohmann::json::object()}};
        for (const auto& run : runs) out["runs"].push_back(RunJson(run));
        for (const auto& key : param_keys) {
          auto values = param_values(key);
          nlohmann::json list = nlohmann::json::array();
          for (const auto& value : values) list.push_back(value ? nlohmann::json(*value) : nlohmann::json());
          out["params"][key] = {{"values", list}, {"differs", differs(values)}};
        }
        for (const auto& key : metric_keys) {
          auto values = metric_values(key);
          nlohmann::json list = nlohmann::json::array();
          for (const auto& value : values) list.push_back(value ? nlohmann::json(*value) : nlohmann::json());
          out["metrics"][key] = {{"values", list}, {"differs", differs(values)}};
        }
        PrintJson(out);
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      std::vector<bool> highlighted;
      auto add = [&](std::vector<std::string> row, bool differ) {
        row.insert(row.begin(), differ ? "*" : " ");
        rows.push_back(std::move(row));
        highlighted.push_back(differ);
      };
      std::vector<std::string> header = {""};
      for (const auto& run : runs) header.push_back(run.id.substr(0, 8));
      add(header, false);
      std::vector<std::string> names = {"name"}, experiments = {"experiment"}, statuses = {"status"},
                               durations = {"duration"};
      for (const auto& run : runs) {
        names.push_back(run.name);
        experiments.push_back(run.experiment);
        statuses.push_back(std::string(tracking::Name(run.status)));
        durations.push_back(FormatDuration(run.duration_seconds()));
      }
      auto differ_text = [](const std::vector<std::string>& row) {
        return std::any_of(row.begin() + 1, row.end(), [&](const std::string& v) { return v != row[1]; });
      };
      add(names, differ_text(names));
      add(experiments, differ_text(experiments));
      add(statuses, differ_text(statuses));
      add(durations, false);
      for (const auto& key : param_keys) {
        auto values = param_values(key);
        std::vector<std::string> row = {"params." + key};
        for (const auto& value : values) row.push_back(value ? *value : "-");
        add(row, differs(values));
      }
      for (const auto& key : metric_keys) {
        auto values = metric_values(key);
        std::vector<std::string> row = {"metrics." + key};
        for (const auto& value : values) row.push_back(value ? FormatNumber(*value) : "-");
        add(row, differs(values));
      }
      // Long values (canonical specs, command lines) would push the other runs off
      // screen; --json has them whole.
      for (auto& row : rows) {
        for (std::size_t c = 2; c < row.size(); ++c) {
          if (row[c].size() > 40) row[c] = row[c].substr(0, 37) + "...";
        }
      }
      std::string table = FormatTable(rows);
      if (!StdoutIsColourTerminal()) {
        std::cout << table;
        return 0;
      }
      std::size_t line_index = 0, begin = 0;
      while (begin < table.size()) {
        std::size_t end = table.find('\n', begin);
        std::string line = table.substr(begin, end - begin);
        begin = end + 1;
        if (line_index == 0) {
          std::cout << "\033[1m" << line << "\033[0m\n";
        } else if (highlighted[line_index]) {
          std::cout << "\033[33m" << line << "\033[0m\n";
        } else {
          std::cout << line << "\n";
        }
        ++line_index;
      }
      return 0;
    };
  });
}

// ---- runs delete --------------------------------------------------------------------

void AddRunsDelete(CLI::App* runs, CommandBody& selected) {
  struct Args {
    std::string uri;
    std::vector<std::string> ids;
    bool yes = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = runs->add_subcommand("delete", "Delete runs, their rows and their artifacts");
  cmd->add_option("runs", args->ids, "Run ids (or unique prefixes)")->required();
  AddTrackingUriOption(cmd, args->uri);
  cmd->add_flag("--yes,-y", args->yes, "Do not ask for confirmation");
  cmd->callback([args, &selected] {
    selected = [args] {
      auto store = OpenStore(args->uri);
      std::vector<Run> runs;  // every id resolves before anything is deleted
      for (const auto& id : args->ids) runs.push_back(store->GetRun(id));
      if (!args->yes) {
        if (!isatty(STDIN_FILENO)) {
          throw InvalidArgument("runs delete: pass --yes to delete without a confirmation prompt");
        }
        std::cerr << fmt::format("delete {} run(s) and their artifacts?", runs.size());
        for (const auto& run : runs) std::cerr << " " << run.id.substr(0, 8) << " (" << run.name << ")";
        std::cerr << " [y/N] " << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "yes") {
          std::cerr << "nothing deleted\n";
          return 1;
        }
      }
      for (const auto& run : runs) {
        store->DeleteRun(run.id);
        std::cout << "deleted " << run.id << "\n";
      }
      return 0;
    };
  });
}

// ---- runs export --------------------------------------------------------------------

void AddRunsExport(CLI::App* runs, CommandBody& selected) {
  struct Args {
    std::string uri, format = "mlflow", output, experiment;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = runs->add_subcommand("export", "Export runs to MLflow's file-store layout or one CSV table");
  cmd->add_option("--format", args->format, "mlflow (a directory for `mlflow ui --backend-store-uri`) | csv")
      ->check(CLI::IsMember({"mlflow", "csv"}))
      ->capture_default_str();
  cmd->add_option("--output,-o", args->output, "Directory (mlflow) or file (csv) to write")->required();
  cmd->add_option("--experiment,-e", args->experiment, "Only this experiment (name or id)");
  AddTrackingUriOption(cmd, args->uri);
  cmd->callback([args, &selected] {
    selected = [args] {
      auto store = OpenStore(args->uri);
      if (args->format == "csv") {
        std::size_t n = tracking::ExportRunsCsv(*store, args->output, args->experiment);
        std::cerr << fmt::format("wrote {} runs to {}\n", n, args->output);
        return 0;
      }
      auto summary = tracking::ExportMlflow(*store, args->output, args->experiment);
      std::cerr << fmt::format("wrote {} experiments, {} runs, {} artifacts to {}\n", summary.experiments,
                               summary.runs, summary.artifacts, args->output);
      return 0;
    };
  });
}

// ---- experiments --------------------------------------------------------------------

void AddExperiments(CLI::App& app, CommandBody& selected) {
  CLI::App* experiments = app.add_subcommand("experiments", "List, create and rename experiments");
  experiments->require_subcommand(1);
  {
    struct Args {
      std::string uri;
      bool json = false;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = experiments->add_subcommand("list", "Experiments with their run counts");
    AddTrackingUriOption(cmd, args->uri);
    cmd->add_flag("--json", args->json, "JSON on stdout");
    cmd->callback([args, &selected] {
      selected = [args] {
        auto store = OpenStore(args->uri);
        auto list = store->ListExperiments();
        if (args->json) {
          nlohmann::json out = nlohmann::json::array();
          for (const auto& e : list) {
            out.push_back({{"id", e.id}, {"name", e.name}, {"created_ms", e.created_ms}, {"runs", e.run_count}});
          }
          PrintJson(out);
          return 0;
        }
        std::vector<std::vector<std::string>> rows = {{"id", "name", "runs", "created"}};
        for (const auto& e : list) {
          rows.push_back({std::to_string(e.id), e.name, std::to_string(e.run_count), FormatTime(e.created_ms)});
        }
        std::cout << FormatTable(rows);
        return 0;
      };
    });
  }
  {
    struct Args {
      std::string uri, name;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = experiments->add_subcommand("create", "Create an experiment");
    cmd->add_option("name", args->name, "Experiment name")->required();
    AddTrackingUriOption(cmd, args->uri);
    cmd->callback([args, &selected] {
      selected = [args] {
        auto store = OpenStore(args->uri);
        auto experiment = store->CreateExperiment(args->name);
        std::cout << fmt::format("created experiment {} (id {})\n", experiment.name, experiment.id);
        return 0;
      };
    });
  }
  {
    struct Args {
      std::string uri, from, to;
    };
    auto args = std::make_shared<Args>();
    CLI::App* cmd = experiments->add_subcommand("rename", "Rename an experiment");
    cmd->add_option("old", args->from, "Current name")->required();
    cmd->add_option("new", args->to, "New name")->required();
    AddTrackingUriOption(cmd, args->uri);
    cmd->callback([args, &selected] {
      selected = [args] {
        auto store = OpenStore(args->uri);
        store->RenameExperiment(args->from, args->to);
        std::cout << fmt::format("renamed experiment {} to {}\n", args->from, args->to);
        return 0;
      };
    });
  }
}

}  // namespace

void RegisterRunsCommands(CLI::App& app, GlobalOptions&, CommandBody& selected) {
  CLI::App* runs = app.add_subcommand("runs", "Tracked runs: list, show, compare, delete, export");
  runs->require_subcommand(1);
  AddRunsList(runs, selected);
  AddRunsShow(runs, selected);
  AddRunsCompare(runs, selected);
  AddRunsDelete(runs, selected);
  AddRunsExport(runs, selected);
  AddExperiments(app, selected);
}

}  // namespace recforge::cli
