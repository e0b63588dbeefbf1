// The tracking store: experiments, runs (params, metrics per step, tags, artifacts,
// lineage), datasets and the model registry, in one SQLite database (WAL mode,
// versioned schema with migrations) plus an artifact folder beside it.
//
// Every write is one transaction; many processes may write at once (busy timeout +
// retry: "database is locked" never reaches the caller). A run whose process died
// stays RUNNING only until the next Open on any process: Open marks it FAILED with a
// reason (its pid is gone on this host, or its heartbeat is older than
// kStaleHeartbeat).
//
// Thread-safety: one Store per thread (SQLite connections are not shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace recforge::tracking {

namespace fs = std::filesystem;

// Where the store lives: `--tracking-uri` (a path to the .db file, or a directory,
// which then holds mlruns.db and artifacts/), else RECFORGE_TRACKING_URI, else
// ./mlruns.db + ./artifacts/. "sqlite:///path.db" is accepted too.
struct TrackingLocation {
  fs::path database;   // the SQLite file
  fs::path artifacts;  // the artifact root; a run's files go to artifacts/<run id>/
  static TrackingLocation Resolve(const std::string& uri_option);
};

enum class RunStatus { kRunning, kFinished, kFailed, kKilled };
std::string_view Name(RunStatus status);  // "RUNNING", "FINISHED", "FAILED", "KILLED"
RunStatus ParseRunStatus(std::string_view name);  // throws InvalidArgument

struct Experiment {
  std::int64_t id = 0;
  std::string name;
  std::int64_t created_ms = 0;  // Unix milliseconds
  std::int64_t run_count = 0;
};

struct Metric {
  std::string key;  // lower-case, e.g. "loss", "val_ndcg@10", "ndcg@10"
  double value = 0;
  std::int64_t step = 0;
  std::int64_t timestamp_ms = 0;
};

struct Artifact {
  std::string path;    // relative to the run's artifact folder, e.g. "model.bin"
  std::string kind;    // "model", "report", "per_user", "config", "log", ...
  std::uint64_t size = 0;
  std::string sha256;
};

// One end of a lineage edge: something a run read ("input") or wrote ("output"),
// identified by content hash. kind: "raw_file", "dataset", "prepared", "model",
// "report", "model_version".
struct LineageEdge {
  std::string run_id;
  std::string direction;  // "input" | "output"
  std::string kind;
  std::string hash;
  std::string path;  // where it was (informational)
};

struct DatasetRecord {
  std::string hash;  // content hash (meta.json "content_hash")
  std::string kind;  // "raw" | "prepared"
  std::string path;
  nlohmann::json counts = nlohmann::json::object();      // users, items, interactions, parts
  nlohmann::json parameters = nlohmann::json::object();  // prepare options, sources
  std::int64_t created_ms = 0;
};

struct Run {
  std::string id;  // 32 lower-case hex characters
  std::int64_t experiment_id = 0;
  std::string experiment;  // name
  std::string name;
  RunStatus status = RunStatus::kRunning;
  std::string status_reason;  // why FAILED / KILLED
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;  // 0 while running
  std::int64_t heartbeat_ms = 0;
  std::string parent_id;  // empty: top-level run
  std::string user, host;
  std::int64_t pid = 0;
  std::string command;  // the command line
  std::string recforge_version, git_commit;
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> tags;
  std::map<std::string, double> metrics;  // latest value per key (highest step, then latest time)

  double duration_seconds() const;  // end (or now) - start
};

struct RunStart {
  std::string experiment = "Default";  // created if missing
  std::string name;                    // empty: generated ("ials-2026-11-23-181502")
  std::string parent_id;
  std::string command;
  std::map<std::string, std::string> tags;
};

// Query of ListRuns. `filter` is an expression over params / metrics / tags / run
// attributes, e.g. "metrics.ndcg@10 > 0.3 and params.family = 'ials'":
//   term      := (metrics|params|tags|attributes).KEY  OP  VALUE
//   OP        := = | != | < | <= | > | >= | like      (like: SQL % and _ wildcards)
//   VALUE     := number | 'text' | "text"
//   combine   := term (and|or term)*, parentheses allowed; and binds tighter than or
// Attributes: status, name, experiment, run_id, parent_id, start_ms, end_ms, duration.
// A run lacking the key does not match. Syntax errors throw InvalidArgument naming
// the column. `order_by`: comma-separated "metrics.ndcg@10 desc", "attributes.start_ms"
// (default: start time, newest first).
struct RunQuery {
  std::string experiment;  // empty: every experiment
  std::string filter;
  std::string order_by;
  std::string parent_id;  // non-empty: only children of this run
  std::size_t limit = 0;  // 0: no limit
};

struct ModelVersion {
  std::string name;
  std::int64_t version = 0;
  std::string run_id;
  std::string artifact_path;  // absolute path of the stored model file
  std::string sha256;
  std::uint64_t size = 0;
  std::int64_t created_ms = 0;
  std::string description;
  std::vector<std::string> aliases;
};

struct RegisteredModel {
  std::string name;
  std::int64_t created_ms = 0;
  std::vector<ModelVersion> versions;      // ascending
  std::map<std::string, std::int64_t> aliases;  // alias -> version
};

class Store {
 public:
  static constexpr std::chrono::seconds kStaleHeartbeat{300};
  static constexpr int kSchemaVersion = 1;

  // Opens (creating and migrating as needed) and marks dead RUNNING runs FAILED.
  explicit Store(const TrackingLocation& location);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const TrackingLocation& location() const;
  int schema_version() const;

  // ---- experiments
  std::int64_t GetOrCreateExperiment(const std::string& name);
  Experiment CreateExperiment(const std::string& name);  // throws InvalidArgument if it exists
  void RenameExperiment(const std::string& from, const std::string& to);
  std::vector<Experiment> ListExperiments();
  std::optional<Experiment> FindExperiment(const std::string& name_or_id);

  // ---- runs
  Run StartRun(const RunStart& start);  // records user, host, pid, version, git commit
  void EndRun(const std::string& run_id, RunStatus status, const std::string& reason = "");
  void Heartbeat(const std::string& run_id);
  void LogParams(const std::string& run_id, const std::map<std::string, std::string>& params);
  void LogMetric(const std::string& run_id, const std::string& key, double value, std::int64_t step = 0);
  void LogMetrics(const std::string& run_id, const std::vector<Metric>& metrics);  // one transaction
  void SetTags(const std::string& run_id, const std::map<std::string, std::string>& tags);
  // Copies `source` into artifacts/<run id>/<name> (sha256 computed while copying).
  Artifact LogArtifact(const std::string& run_id, const fs::path& source, const std::string& name,
                       const std::string& kind);
  void LogLineage(const std::string& run_id, const std::string& direction, const std::string& kind,
                  const std::string& hash, const std::string& path);
  void RecordDataset(const DatasetRecord& dataset);  // upsert by hash

  // Accepts a full id or a unique prefix (>= 6 characters); throws NotFound otherwise.
  Run GetRun(const std::string& id_or_prefix);
  std::vector<Run> ListRuns(const RunQuery& query);
  std::vector<Metric> MetricHistory(const std::string& run_id, const std::string& key);
  std::vector<std::string> MetricKeys(const std::string& run_id);
  std::vector<Artifact> Artifacts(const std::string& run_id);
  std::vector<LineageEdge> Lineage(const std::string& run_id);
  std::optional<DatasetRecord> FindDataset(const std::string& hash);
  // Runs that wrote / read an item with this hash.
  std::vector<std::string> RunsWriting(const std::string& hash);
  std::vector<std::string> RunsReading(const std::string& hash);
  // A FINISHED run of `experiment` tagged key=value (sweep resume by config_id).
  std::optional<Run> FindFinishedRunByTag(const std::string& experiment, const std::string& key,
                                          const std::string& value);
  // Deletes the run, its children's parent link, its rows and its artifact folder.
  void DeleteRun(const std::string& run_id);

  // ---- model registry
  // Registers the run's "model" artifact as the next version of `name` (created if
  // new); verifies the artifact's sha256 first (throws FormatError on mismatch).
  ModelVersion RegisterModel(const std::string& name, const std::string& run_id,
                             const std::string& description = "");
  std::vector<RegisteredModel> ListModels();
  RegisteredModel GetModel(const std::string& name);  // throws NotFound
  void SetAlias(const std::string& name, const std::string& alias, std::int64_t version);
  void DeleteAlias(const std::string& name, const std::string& alias);
  // "NAME@ALIAS", "NAME/N" or "NAME" (latest version) -> the version; throws NotFound.
  ModelVersion ResolveModel(const std::string& reference);
  // Re-hashes the stored file; throws FormatError naming it when the checksum differs.
  void VerifyModelVersion(const ModelVersion& version);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for "NAME@ALIAS" / "NAME/N" references (not an existing file path).
bool IsRegistryReference(const std::string& text);

}  // namespace recforge::tracking
