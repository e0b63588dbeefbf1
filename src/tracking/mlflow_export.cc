#include "recforge/tracking/mlflow_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "recforge/core/error.h"

namespace recforge::tracking {
namespace {

void WriteText(const fs::path& path, const std::string& content) {
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw IoError(fmt::format("{}: cannot write", path.string()));
}

// A metric value as Python's repr(float) writes it (MLflow's file store does
// "%s %s %s" % (timestamp, value, step)): shortest round-trip digits, "1.0" not "1".
std::string PythonFloat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

std::string FileUri(const fs::path& path) { return "file://" + fs::absolute(path).lexically_normal().string(); }

// The tags MLflow's UI reads, then the run's own tags (mapped keys).
std::map<std::string, std::string> RunTags(const Run& run) {
  std::map<std::string, std::string> tags;
  for (const auto& [key, value] : run.tags) tags[MlflowKey(key)] = value;
  tags["mlflow.runName"] = run.name;
  tags["mlflow.user"] = run.user;
  tags["mlflow.source.name"] = run.command;
  tags["mlflow.source.type"] = "LOCAL";
  if (!run.parent_id.empty()) tags["mlflow.parentRunId"] = run.parent_id;
  if (!run.status_reason.empty()) tags["recforge.status_reason"] = run.status_reason;
  if (!run.git_commit.empty()) tags["mlflow.source.git.commit"] = run.git_commit;
  return tags;
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<Experiment> SelectExperiments(Store& store, const std::string& experiment) {
  if (experiment.empty()) return store.ListExperiments();
  auto found = store.FindExperiment(experiment);
  if (!found) throw NotFound(fmt::format("experiment '{}' does not exist", experiment));
  return {*found};
}

}  // namespace

int MlflowStatus(RunStatus status) {
  switch (status) {
    case RunStatus::kRunning:
      return 1;
    case RunStatus::kFinished:
      return 3;
    case RunStatus::kFailed:
      return 4;
    case RunStatus::kKilled:
      return 5;
  }
  return 4;
}

std::string MlflowKey(std::string_view key) {
  std::string mapped;
  for (char c : key) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '@') {
      mapped += "_at_";
    } else if (std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == ' ' || c == '/') {
      mapped += c;
    } else {
      mapped += '_';
    }
  }
  // A normalised relative path: no empty, "." or ".." segments.
  std::string out;
  std::size_t begin = 0;
  while (begin <= mapped.size()) {
    std::size_t end = mapped.find('/', begin);
    if (end == std::string::npos) end = mapped.size();
    std::string segment = mapped.substr(begin, end - begin);
    begin = end + 1;
    if (segment.empty()) continue;
    if (segment == "." || segment == "..") segment = "_";
    if (!out.empty()) out += '/';
    out += segment;
  }
  return out.empty() ? std::string("_") : out;
}

std::string YamlString(std::string_view text) {
  static const std::set<std::string> kReserved = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"};
  bool plain = !text.empty() && text.size() < 1024;
  if (plain) {
    unsigned char first = static_cast<unsigned char>(text.front());
    plain = std::isalpha(first) || first == '_' || first == '/' || std::isdigit(first);
  }
  bool numeric_looking = true;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || c == '@')) plain = false;
    if (!(std::isdigit(u) || c == '.' || c == '_' || c == '+' || c == '-' || c == 'e' || c == 'E' || c == ':')) {
      numeric_looking = false;
    }
  }
  if (plain && numeric_looking) plain = false;  // '0', '1.5', '1e5', '12:30' would read back as numbers
  if (plain) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (kReserved.count(lower)) plain = false;
  }
  if (plain) return std::string(text);
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    if (c == '\n') {
      out += ' ';  // run names and users are one line; keep the document valid
      continue;
    }
    out += c;
  }
  return out + "'";
}

ExportSummary ExportMlflow(Store& store, const fs::path& output, const std::string& experiment) {
  ExportSummary summary;
  std::vector<Experiment> experiments = SelectExperiments(store, experiment);
  std::error_code error;
  fs::create_directories(output, error);
  if (error) throw IoError(fmt::format("{}: cannot create directory: {}", output.string(), error.message()));
  for (const auto& exp : experiments) {
    const std::string exp_id = std::to_string(exp.id);
    const fs::path exp_dir = output / exp_id;
    fs::remove_all(exp_dir, error);
    RunQuery query;
    query.experiment = exp.name;
    query.order_by = "attributes.start_ms";
    std::vector<Run> runs = store.ListRuns(query);
    std::int64_t last_update = exp.created_ms;
    for (const auto& run : runs) last_update = std::max({last_update, run.start_ms, run.end_ms});
    WriteText(exp_dir / "meta.yaml",
              fmt::format("artifact_location: {}\n"
                          "creation_time: {}\n"
                          "experiment_id: {}\n"
                          "last_update_time: {}\n"
                          "lifecycle_stage: active\n"
                          "name: {}\n",
                          YamlString(FileUri(exp_dir)), exp.created_ms, YamlString(exp_id), last_update,
                          YamlString(exp.name)));
    ++summary.experiments;
    for (const auto& run : runs) {
      const fs::path run_dir = exp_dir / run.id;
      const fs::path artifact_dir = run_dir / "artifacts";
      WriteText(run_dir / "meta.yaml",
                fmt::format("artifact_uri: {}\n"
                            "end_time: {}\n"
                            "entry_point_name: ''\n"
                            "experiment_id: {}\n"
                            "lifecycle_stage: active\n"
                            "run_id: {}\n"
                            "run_name: {}\n"
                            "run_uuid: {}\n"
                            "source_name: ''\n"
                            "source_type: 4\n"
                            "source_version: ''\n"
                            "start_time: {}\n"
                            "status: {}\n"
                            "tags: []\n"
                            "user_id: {}\n",
                            YamlString(FileUri(artifact_dir)),
                            run.end_ms > 0 ? std::to_string(run.end_ms) : std::string("null"), YamlString(exp_id),
                            YamlString(run.id), YamlString(run.name), YamlString(run.id), run.start_ms,
                            MlflowStatus(run.status), YamlString(run.user)));
      fs::create_directories(artifact_dir, error);
      fs::create_directories(run_dir / "metrics", error);
      fs::create_directories(run_dir / "params", error);
      for (const auto& key : store.MetricKeys(run.id)) {
        std::string lines;
        for (const auto& point : store.MetricHistory(run.id, key)) {
          lines += fmt::format("{} {} {}\n", point.timestamp_ms, PythonFloat(point.value), point.step);
        }
        WriteText(run_dir / "metrics" / MlflowKey(key), lines);
      }
      for (const auto& [key, value] : run.params) WriteText(run_dir / "params" / MlflowKey(key), value);
      for (const auto& [key, value] : RunTags(run)) WriteText(run_dir / "tags" / key, value);
      const fs::path source_dir = store.location().artifacts / run.id;
      for (const auto& artifact : store.Artifacts(run.id)) {
        fs::path target = artifact_dir / fs::path(artifact.path).relative_path().lexically_normal();
        fs::create_directories(target.parent_path(), error);
        fs::copy_file(source_dir / artifact.path, target, fs::copy_options::overwrite_existing, error);
        if (error) {
          throw IoError(fmt::format("{}: cannot copy artifact to {}: {}", (source_dir / artifact.path).string(),
                                    target.string(), error.message()));
        }
        ++summary.artifacts;
      }
      ++summary.runs;
    }
  }
  return summary;
}

std::size_t ExportRunsCsv(Store& store, const fs::path& output, const std::string& experiment) {
  std::vector<Run> runs;
  for (const auto& exp : SelectExperiments(store, experiment)) {
    RunQuery query;
    query.experiment = exp.name;
    query.order_by = "attributes.start_ms";
    for (auto& run : store.ListRuns(query)) runs.push_back(std::move(run));
  }
  std::set<std::string> params, metrics, tags;
  for (const auto& run : runs) {
    for (const auto& entry : run.params) params.insert(entry.first);
    for (const auto& entry : run.metrics) metrics.insert(entry.first);
    for (const auto& entry : run.tags) tags.insert(entry.first);
  }
  std::string text = "run_id,experiment,name,status,parent_id,start_ms,end_ms,duration_seconds";
  for (const auto& key : params) text += "," + CsvField("params." + key);
  for (const auto& key : metrics) text += "," + CsvField("metrics." + key);
  for (const auto& key : tags) text += "," + CsvField("tags." + key);
  text += "\n";
  for (const auto& run : runs) {
    text += fmt::format("{},{},{},{},{},{},{},{}", run.id, CsvField(run.experiment), CsvField(run.name),
                        Name(run.status), run.parent_id, run.start_ms, run.end_ms, run.duration_seconds());
    for (const auto& key : params) {
      auto found = run.params.find(key);
      text += "," + (found == run.params.end() ? std::string() : CsvField(found->second));
    }
    for (const auto& key : metrics) {
      auto found = run.metrics.find(key);
      text += "," + (found == run.metrics.end() ? std::string() : fmt::format("{}", found->second));
    }
    for (const auto& key : tags) {
      auto found = run.tags.find(key);
      text += "," + (found == run.tags.end() ? std::string() : CsvField(found->second));
    }
    text += "\n";
  }
  if (output.has_parent_path()) {
    std::error_code error;
    fs::create_directories(output.parent_path(), error);
  }
  WriteText(output, text);
  return runs.size();
}

}  // namespace recforge::tracking
