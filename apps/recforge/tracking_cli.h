// Experiment tracking from the CLI: the shared options (--tracking-uri, --experiment,
// --run-name, --tag, --no-track) and the helper that wraps a command body in a tracked
// run (RunRecorder: started before the body, FINISHED after it, FAILED with the error
// message when it throws or returns non-zero, KILLED on SIGINT / SIGTERM).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "recforge/tracking/recorder.h"
#include "recforge/tracking/store.h"

namespace recforge::cli {

struct TrackingArgs {
  std::string uri;         // --tracking-uri (else RECFORGE_TRACKING_URI, else ./mlruns.db)
  std::string experiment;  // --experiment (else the command's default experiment)
  std::string run_name;    // --run-name
  std::vector<std::string> tags;  // --tag k=v, repeatable
  bool no_track = false;   // --no-track
};

// --tracking-uri, --experiment, --run-name, --tag, --no-track.
void AddTrackingOptions(CLI::App* cmd, TrackingArgs& args);
// Only --tracking-uri (commands that read the store: runs, experiments, recommend).
void AddTrackingUriOption(CLI::App* cmd, std::string& uri);

// "k=v" strings -> map; throws InvalidArgument naming the bad entry.
std::map<std::string, std::string> ParseTagOptions(const std::vector<std::string>& tags);

// The command line of this process (from /proc/self/cmdline), shell-quoted where needed.
std::string CommandLine();

// First 16 hex characters of sha256(text): the config id of a canonical config.
std::string ConfigId(const std::string& canonical_config);

// Flattens a JSON object to "a.b" -> text (strings unquoted, others dumped).
std::map<std::string, std::string> FlattenParams(const nlohmann::json& value, const std::string& prefix = "");

// A command's run, or nothing when --no-track: every method is a no-op when disabled,
// so command bodies log unconditionally.
class TrackedRun {
 public:
  TrackedRun() = default;  // disabled
  TrackedRun(const tracking::TrackingLocation& location, const tracking::RunStart& start);
  ~TrackedRun();
  TrackedRun(const TrackedRun&) = delete;
  TrackedRun& operator=(const TrackedRun&) = delete;

  bool enabled() const { return recorder_ != nullptr; }
  std::string run_id() const;
  tracking::Store* store();  // nullptr when disabled
  const tracking::TrackingLocation& location() const { return location_; }

  void Params(const std::map<std::string, std::string>& params);
  void Param(const std::string& key, const std::string& value) { Params({{key, value}}); }
  void Metric(const std::string& key, double value, std::int64_t step = 0);  // NaN skipped
  void Metrics(const std::map<std::string, double>& metrics, std::int64_t step = 0);
  void Tags(const std::map<std::string, std::string>& tags);
  void Artifact(const std::filesystem::path& source, const std::string& name, const std::string& kind);
  // Writes `content` to a temporary file and logs it as an artifact; returns its sha256.
  std::string ArtifactText(const std::string& content, const std::string& name, const std::string& kind);
  void Lineage(const std::string& direction, const std::string& kind, const std::string& hash,
               const std::string& path);
  void Dataset(const tracking::DatasetRecord& record);

  void Finish();
  void Fail(const std::string& reason);

 private:
  tracking::TrackingLocation location_;
  std::unique_ptr<tracking::RunRecorder> recorder_;
};

// Runs `body` inside a tracked run under `default_experiment` (or --experiment):
// records the command line and --tag tags, finishes the run when the body returns 0,
// fails it with "exit code N" otherwise, and with the error message (then rethrows)
// when it throws. With --no-track the body gets a disabled TrackedRun.
int RunTracked(const TrackingArgs& args, const std::string& default_experiment,
               const std::function<int(TrackedRun&)>& body);

// A model argument: a file path, or a registry reference NAME@ALIAS / NAME/N resolved
// through the store at `uri` (verified first) to the stored file.
std::string ResolveModelArgument(const std::string& text, const std::string& uri);

}  // namespace recforge::cli
