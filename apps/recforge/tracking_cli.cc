#include "tracking_cli.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "recforge/core/error.h"
#include "recforge/core/file_io.h"

namespace recforge::cli {

void AddTrackingUriOption(CLI::App* cmd, std::string& uri) {
  cmd->add_option("--tracking-uri", uri,
                  "Tracking store: a .db file, a directory (mlruns.db + artifacts/) or sqlite:///path.db "
                  "(default: $RECFORGE_TRACKING_URI, else ./mlruns.db)");
}

void AddTrackingOptions(CLI::App* cmd, TrackingArgs& args) {
  AddTrackingUriOption(cmd, args.uri);
  cmd->add_option("--experiment", args.experiment, "Experiment to record the run under");
  cmd->add_option("--run-name", args.run_name, "Name of the recorded run (default: generated)");
  cmd->add_option("--tag", args.tags, "Run tag KEY=VALUE (repeatable)");
  cmd->add_flag("--no-track", args.no_track, "Do not record a run in the tracking store");
}

std::map<std::string, std::string> ParseTagOptions(const std::vector<std::string>& tags) {
  std::map<std::string, std::string> out;
  for (const auto& tag : tags) {
    std::size_t eq = tag.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw InvalidArgument(fmt::format("--tag '{}' is not KEY=VALUE", tag));
    }
    out[tag.substr(0, eq)] = tag.substr(eq + 1);
  }
  return out;
}

std::string CommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string raw = buffer.str();
  std::string out;
  std::size_t begin = 0;
  while (begin < raw.size()) {
    std::size_t end = raw.find('\0', begin);
    if (end == std::string::npos) end = raw.size();
    std::string arg = raw.substr(begin, end - begin);
    begin = end + 1;
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                     "-_./=:,@+%") == std::string::npos;
    if (plain) {
      out += arg;
    } else {
      out += '\'';
      for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

std::string ConfigId(const std::string& canonical_config) {
  Sha256 hasher;
  hasher.Update(canonical_config);
  return hasher.HexDigest().substr(0, 16);
}

std::map<std::string, std::string> FlattenParams(const nlohmann::json& value, const std::string& prefix) {
  std::map<std::string, std::string> out;
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      auto nested = FlattenParams(child, prefix.empty() ? key : prefix + "." + key);
      out.insert(nested.begin(), nested.end());
    }
  } else if (value.is_string()) {
    out[prefix] = value.get<std::string>();
  } else if (value.is_null()) {
    out[prefix] = "";
  } else {
    out[prefix] = value.dump();
  }
  return out;
}

// ---- TrackedRun ---------------------------------------------------------------------

TrackedRun::TrackedRun(const tracking::TrackingLocation& location, const tracking::RunStart& start)
    : location_(location), recorder_(std::make_unique<tracking::RunRecorder>(location, start)) {}

TrackedRun::~TrackedRun() = default;

std::string TrackedRun::run_id() const { return recorder_ ? recorder_->run_id() : std::string(); }

tracking::Store* TrackedRun::store() { return recorder_ ? &recorder_->store() : nullptr; }

void TrackedRun::Params(const std::map<std::string, std::string>& params) {
  if (recorder_ && !params.empty()) recorder_->store().LogParams(recorder_->run_id(), params);
}

void TrackedRun::Metric(const std::string& key, double value, std::int64_t step) {
  if (recorder_ && std::isfinite(value)) recorder_->store().LogMetric(recorder_->run_id(), key, value, step);
}

void TrackedRun::Metrics(const std::map<std::string, double>& metrics, std::int64_t step) {
  if (!recorder_) return;
  std::vector<tracking::Metric> rows;
  for (const auto& [key, value] : metrics) {
    if (!std::isfinite(value)) continue;  // undefined metrics (no rated rows, ...) are left out
    tracking::Metric metric;
    metric.key = key;
    metric.value = value;
    metric.step = step;
    rows.push_back(metric);
  }
  if (!rows.empty()) recorder_->store().LogMetrics(recorder_->run_id(), rows);
}

void TrackedRun::Tags(const std::map<std::string, std::string>& tags) {
  if (recorder_ && !tags.empty()) recorder_->store().SetTags(recorder_->run_id(), tags);
}

void TrackedRun::Artifact(const std::filesystem::path& source, const std::string& name, const std::string& kind) {
  if (recorder_) recorder_->store().LogArtifact(recorder_->run_id(), source, name, kind);
}

std::string TrackedRun::ArtifactText(const std::string& content, const std::string& name,
                                     const std::string& kind) {
  Sha256 hasher;
  hasher.Update(content);
  std::string sha = hasher.HexDigest();
  if (!recorder_) return sha;
  // A private scratch file: LogArtifact copies it into the run's artifact folder.
  fs::path scratch = fs::temp_directory_path() /
                     fmt::format("recforge-{}-{}", recorder_->run_id(), fs::path(name).filename().string());
  WriteFileAtomic(scratch, content);
  try {
    recorder_->store().LogArtifact(recorder_->run_id(), scratch, name, kind);
  } catch (...) {
    std::error_code ignored;
    fs::remove(scratch, ignored);
    throw;
  }
  std::error_code ignored;
  fs::remove(scratch, ignored);
  return sha;
}

void TrackedRun::Lineage(const std::string& direction, const std::string& kind, const std::string& hash,
                         const std::string& path) {
  if (recorder_ && !hash.empty()) recorder_->store().LogLineage(recorder_->run_id(), direction, kind, hash, path);
}

void TrackedRun::Dataset(const tracking::DatasetRecord& record) {
  if (recorder_ && !record.hash.empty()) recorder_->store().RecordDataset(record);
}

void TrackedRun::Finish() {
  if (recorder_) recorder_->Finish();
}

void TrackedRun::Fail(const std::string& reason) {
  if (recorder_) recorder_->Fail(reason);
}

// ---- RunTracked ---------------------------------------------------------------------

int RunTracked(const TrackingArgs& args, const std::string& default_experiment,
               const std::function<int(TrackedRun&)>& body) {
  if (args.no_track) {
    TrackedRun disabled;
    return body(disabled);
  }
  tracking::RunStart start;
  start.experiment = args.experiment.empty() ? default_experiment : args.experiment;
  start.name = args.run_name;
  start.command = CommandLine();
  start.tags = ParseTagOptions(args.tags);
  // The store names an unnamed run after its "command" tag ("train-2026-11-23-181502").
  static const std::map<std::string, std::string> kCommandOfExperiment = {
      {"preprocessing", "prepare"}, {"training", "train"}, {"evaluation", "evaluate"}, {"baselines", "baselines"}};
  if (auto found = kCommandOfExperiment.find(default_experiment); found != kCommandOfExperiment.end()) {
    start.tags.emplace("command", found->second);
  }
  tracking::RunRecorder::InstallInterruptHandlers();
  TrackedRun run(tracking::TrackingLocation::Resolve(args.uri), start);
  int code = 0;
  try {
    code = body(run);
  } catch (const std::exception& error) {
    // The run keeps the message the user sees; the error still reaches RunGuarded. An
    // interrupt is left to the recorder's destructor, which ends the run KILLED.
    if (!tracking::RunRecorder::Interrupted()) {
      try {
        run.Fail(error.what());
      } catch (...) {
      }
    }
    throw;
  }
  if (tracking::RunRecorder::Interrupted()) return code == 0 ? 130 : code;  // the recorder ends it KILLED
  if (code == 0) {
    run.Finish();
  } else {
    run.Fail(fmt::format("exit code {}", code));
  }
  return code;
}

std::string ResolveModelArgument(const std::string& text, const std::string& uri) {
  if (!tracking::IsRegistryReference(text)) return text;
  tracking::Store store(tracking::TrackingLocation::Resolve(uri));
  tracking::ModelVersion version = store.ResolveModel(text);
  store.VerifyModelVersion(version);
  return version.artifact_path;
}

}  // namespace recforge::cli
