// Hyper-parameter sweeps (`recforge sweep --config sweep.yaml`): the sweep file, its
// expansion into trials (grid or seeded random search over preprocessing x model
// configs), the config id that makes trials resumable, the memory estimate the
// scheduler uses, and the body of one trial (fit + evaluate, logged to tracking).
//
// The sweep file (YAML; every key but `input` and `models` is optional):
//
//   experiment: ml100k-sweep          # tracking experiment (default "sweep")
//   input: data/u.data                # raw file(s) (string or list), a raw dataset dir
//                                     # (`data ingest`) or a prepared dir (`data prepare`)
//   format: auto                      # ingest format of raw files (see `data ingest`)
//   prepare:                          # each key a scalar or a list (the grid)
//     dedup: first                    #   dedup min_rating implicit_threshold min_user
//     min_user: [1, 5]                #   min_item split test_ratio val_ratio last_n val_n
//     split: ratio                    #   cold seed; unset keys keep `data prepare` defaults
//   models:                           # family -> {param: scalar or list}; validated by
//     ials: {factors: [32, 64], reg: [0.01, 0.1], iters: 5}   # the model registry
//     itemknn: {neighbors: [20, 50]}
//   metric: ndcg@10                   # the metric to optimise (a name of eval::MetricNames,
//   direction: maximize               # @K when it takes one); maximize | minimize
//   eval: {k: [10, 20], relevance_threshold: 4, protocol: full, part: test}
//   search: grid                      # grid | random
//   trials: 20                        # random: how many distinct configs to draw
//   seed: 42                          # random: the draw's seed
//   train_seed: 42                    # the models' seed
//   max_parallel: 4                   # at most this many trials at once (default: CPUs)
//   threads_per_trial: 1              # each trial's threads
//   memory_budget: 2GiB               # for all running trials together (default: none)
//
// Relative input paths are relative to the current directory (as on the command line).
// A prepared input takes no `prepare` section: its split is used as it is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recforge/core/context.h"
#include "recforge/data/prepare.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/params.h"

namespace recforge::tracking {
class Store;
}

namespace recforge::ops {

namespace fs = std::filesystem;

enum class SearchKind { kGrid, kRandom };

// The evaluation every trial runs (no bootstrap: one number per metric is enough to rank).
struct SweepEval {
  std::vector<int> ks = {10};
  std::vector<std::string> metrics;  // empty: every applicable one
  std::optional<float> relevance_threshold;
  std::string protocol = "full";
  std::string part = "test";

  eval::EvalOptions ToOptions() const;
  nlohmann::json ToJson() const;  // canonical (sorted, distinct ks); part of the config id
};

// A parsed, validated sweep file. Grid values are kept as text (YAML scalars); they are
// checked when the config is parsed (every value of every key).
struct SweepConfig {
  std::string origin;  // file name, for messages
  std::string experiment = "sweep";
  std::vector<std::string> inputs;
  std::string format = "auto";
  std::map<std::string, std::vector<std::string>> prepare_grid;  // key -> values
  std::map<std::string, std::map<std::string, std::vector<std::string>>> model_grid;  // family -> key -> values
  std::string metric = "ndcg@10";
  bool maximize = true;
  SweepEval eval;
  SearchKind search = SearchKind::kGrid;
  std::size_t trials = 0;  // random search
  std::uint64_t seed = 42;
  std::uint64_t train_seed = 42;
  int max_parallel = 0;      // 0: the CPU count
  int threads_per_trial = 1;
  std::uint64_t memory_budget = 0;  // 0: none

  // Cross-field checks (after command-line overrides): an input is given, the metric
  // is measured by the eval options, random search has trials >= 1. Throws ConfigError.
  void Validate() const;
};

// The keys a sweep file accepts at the top level, in `prepare` and in `eval`.
const std::vector<std::string>& SweepKeys();
const std::vector<std::string>& SweepPrepareKeys();
const std::vector<std::string>& SweepEvalKeys();

// Parses YAML text; `origin` (the file name) prefixes every message. Syntax errors and
// every invalid key or value are ConfigError "origin:LINE:COLUMN: ..."; unknown keys
// list the valid ones (model parameters through the registry's parser).
SweepConfig ParseSweepConfig(const std::string& yaml_text, const std::string& origin);
// Reads and parses a file; IoError when it cannot be read.
SweepConfig LoadSweepConfig(const fs::path& path);

// What `input` names.
enum class InputKind { kRawFiles, kRawDataset, kPrepared };
struct SweepInput {
  InputKind kind = InputKind::kRawFiles;
  std::vector<fs::path> paths;
  std::string hash;  // raw files: SHA-256 over the files' SHA-256s; dirs: meta content_hash
};
// Classifies and hashes the inputs; throws IoError / InvalidArgument naming the path.
SweepInput ResolveInput(const std::vector<std::string>& inputs);

// One preprocessing config of the grid.
struct PrepareConfig {
  std::size_t index = 0;                      // 0-based, in expansion order
  std::map<std::string, std::string> values;  // the sweep's prepare keys -> chosen value
  data::PrepareOptions options;               // validated
  bool as_is = false;                         // prepared input: no preprocessing
  nlohmann::json ToJson() const;              // options.ToJson(), or {"as_is": true}
  std::string Label() const;                  // "min_user=5 split=ratio" or "as is"
};

// One trial: a preprocessing config and a model config.
struct Trial {
  std::size_t index = 0;            // 0-based position in the sweep
  std::size_t prepare_index = 0;    // into SweepPlan::prepares
  models::ParamValues model;        // validated, defaults filled
  std::string config_id;            // ConfigId(...)
  std::string label;                // "ials factors=32 reg=0.01 | min_user=5": the model keys the file
                                    // gives, then the prepare keys that vary
  std::map<std::string, std::string> Params(const PrepareConfig& prepare) const;  // tracking params
};

struct SweepPlan {
  std::vector<PrepareConfig> prepares;
  std::vector<Trial> trials;        // grouped by prepare config (ascending prepare_index)
  std::uint64_t space_size = 0;     // prepares x model configs (before random sampling)
  std::size_t model_configs = 0;
};

// Expands the grids (cartesian products; keys in sorted order, values in file order;
// model configs equal after canonicalisation counted once). Grid search keeps every
// combination (at most kMaxGridTrials, else ConfigError suggesting random search);
// random search draws min(trials, space) distinct combinations with the seed, then
// orders them by (prepare config, model config). Throws ConfigError for a prepare
// combination PrepareOptions::Validate rejects (naming the combination).
inline constexpr std::uint64_t kMaxGridTrials = 100000;
SweepPlan ExpandSweep(const SweepConfig& config, const SweepInput& input);

// The lineage id of a trial: the first 16 hex digits of the SHA-256 of the canonical
// JSON {eval, format, input, model (canonical spec), prepare, train_seed}. Stable across
// key order, aliases, and defaults spelled out or not.
std::string ConfigId(const std::string& input_hash, const nlohmann::json& prepare,
                     const std::string& canonical_model_spec, const SweepEval& eval,
                     std::uint64_t train_seed, const std::string& format = "auto");

// The shape of a prepared dataset, for the memory estimate.
struct DataShape {
  std::uint64_t n_users = 0;
  std::uint64_t n_items = 0;
  std::uint64_t train_rows = 0;
  std::uint64_t total_rows = 0;  // train + val + test
};
DataShape ShapeOf(const data::PreparedDataset& prepared);
DataShape ReadShape(const fs::path& prepared_dir);  // from meta.json files only

// Estimated peak bytes of one trial process: its loaded columns (20 bytes per row), the
// CSR matrix and its transpose (8 bytes per nonzero + 8 per row each), the model
// ((users + items) x factors x 4 for factor families, with a per-family factor for
// solver state; items (users) x neighbors x 8 x 2 for neighbourhood models), per-thread
// scoring buffers (items x 4 x 256 users) and a fixed 24 MiB for the process. An
// estimate for scheduling, not a bound.
std::uint64_t EstimateTrialBytes(const DataShape& shape, const models::ParamValues& model, int threads);

// What a trial process does (`recforge sweep-trial --spec FILE`).
struct TrialSpec {
  std::string run_id;        // the child run, created by the parent (may be empty: no tracking)
  std::string tracking;      // the tracking database path (empty: no tracking)
  std::string artifacts;     // the tracking artifact root
  std::string dataset;       // prepared dataset directory
  std::string model;         // canonical spec
  SweepEval eval;
  std::uint64_t seed = 42;
  std::string result;        // where to write the TrialResult JSON
  nlohmann::json ToJson() const;
  static TrialSpec FromJson(const nlohmann::json& json);  // throws FormatError
};

struct TrialResult {
  std::map<std::string, double> metrics;  // "ndcg@10", ..., "fit_seconds", "eval_seconds"
  int epochs = 0;
  nlohmann::json ToJson() const;
  static TrialResult FromJson(const nlohmann::json& json);
};

// Fits spec.model on spec.dataset and evaluates it. With a store, logs "loss" per epoch
// (step = epoch) and the final metrics to spec.run_id (the parent ends the run).
// `interrupted` is polled after every epoch; when it returns true the trial throws.
TrialResult RunTrial(const TrialSpec& spec, const Context& ctx, tracking::Store* store,
                     const std::function<bool()>& interrupted = {});

// A finished (or resumed) trial, for the ranking.
struct TrialOutcome {
  std::size_t index = 0;
  std::string run_id;
  std::string config_id;
  std::string status;   // "FINISHED", "FAILED", "KILLED", "RESUMED"
  double value = 0;     // the metric; NaN when missing
  std::string label;    // Trial::label
  std::map<std::string, std::string> params;
};
// The best `n` outcomes with a finite metric value, best first (ties: lower index).
std::vector<TrialOutcome> RankOutcomes(const std::vector<TrialOutcome>& outcomes, bool maximize,
                                       std::size_t n);

}  // namespace recforge::ops
