// Export of the tracking store to MLflow's file-store layout (`mlflow ui
// --backend-store-uri DIR` reads it) and to one CSV table. The exact mapping is
// documented in docs/tracking.md.
//
//   DIR/<experiment id>/meta.yaml
//   DIR/<experiment id>/<run id>/meta.yaml
//   DIR/<experiment id>/<run id>/metrics/<key>    "timestamp value step" lines, oldest first
//   DIR/<experiment id>/<run id>/params/<key>     the value, no trailing newline
//   DIR/<experiment id>/<run id>/tags/<key>       the value, no trailing newline
//   DIR/<experiment id>/<run id>/artifacts/...    copies of the run's artifacts
//
// Thread-safety: uses the given Store from the calling thread only.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "recforge/tracking/store.h"

namespace recforge::tracking {

struct ExportSummary {
  std::size_t experiments = 0;
  std::size_t runs = 0;
  std::size_t artifacts = 0;
};

// MLflow run status numbers (mlflow.entities.RunStatus): RUNNING=1, SCHEDULED=2,
// FINISHED=3, FAILED=4, KILLED=5.
int MlflowStatus(RunStatus status);

// Maps a metric / param / tag key to a name MLflow accepts (`^[/\w.\- ]*$`, a
// normalised relative path): '@' -> "_at_", any other character outside
// [A-Za-z0-9_.\- /] -> '_', empty path segments dropped, "." / ".." segments -> '_'
// ("ndcg@10" -> "ndcg_at_10", "a//b" -> "a/b", "" -> "_").
std::string MlflowKey(std::string_view key);

// A YAML scalar as PyYAML's safe_dump would accept it back as the same string: plain
// when unambiguous, else single-quoted ('' for an empty string).
std::string YamlString(std::string_view text);

// Writes every run of `experiment` (empty: every experiment) under `output` (created;
// existing experiment folders of the same ids are replaced). Two keys that map to the
// same MLflow name: the later one (in key order) wins, with both kept in the store.
// Throws NotFound for an unknown experiment, IoError when a file cannot be written.
ExportSummary ExportMlflow(Store& store, const fs::path& output, const std::string& experiment = "");

// One row per run: run_id, experiment, name, status, parent_id, start_ms, end_ms,
// duration_seconds, then params.<key>, metrics.<key> (latest value), tags.<key> columns
// (union over the runs, sorted). RFC 4180 quoting. Returns the number of runs.
std::size_t ExportRunsCsv(Store& store, const fs::path& output, const std::string& experiment = "");

}  // namespace recforge::tracking
