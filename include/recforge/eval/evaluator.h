// Offline evaluation of a trained model on a prepared dataset (docs/evaluation.md has
// every definition; include/recforge/eval/metrics.h the per-user functions).
//
// Default protocol: full ranking. For each user with at least one relevant test item
// (a test row with rating >= relevance_threshold, or every test row when no threshold
// is set), all catalog items are ranked except the user's training items, ties to the
// smaller item index, through the model's own batch Recommend (the code path of
// `recforge recommend`, so metrics recomputed from `recommend --all-users` output agree
// to rounding), and ranking metrics at each K are averaged over those users. Test
// users without a relevant item are skipped and counted.
//
// `sampled:N` ranks each user's relevant test items against N negatives sampled
// (seeded per user) from the items the user never interacted with in any part, through
// Recommend with RecommendOptions::candidates. It exists for comparison with papers, is
// labelled "sampled:N" in every output and is never the default. Coverage, novelty and
// diversity are not computed under it (they describe real lists, not sampled ones).
//
// `next-item` (issue 6) is leave-one-out next-item evaluation, meant for datasets
// prepared with `data prepare --split leave-one-out` (last row -> test, second-last ->
// val). Each user's history is its train rows followed by its val rows (evaluating the
// val part: train rows only), in (time, item) order. The model scores every catalog item
// for that history through ScoreHistory (items oldest first, values = the ratings) when
// the family supports it, else from its fitted user (ScoreUsers); the history's items
// are excluded and the rest ranked (ties to the smaller index). Relevant = the user's
// relevant test items (exactly one after leave-one-out; with several, all count and a
// note says so). Default metrics: hit_rate, ndcg and mrr at each K (precision, recall
// and map when asked for; nothing beyond accuracy). Labelled "next-item" everywhere.
//
// `cold_items` (issue 6, `--cold-items`) restricts the full protocol to cold items:
// relevant = the user's relevant test items that have no train rows; users without
// one are skipped (counted in users_skipped). Candidates: only the catalog's cold items
// (ColdCandidates::kCold, the default: training popularity and warm-item scores cannot
// push a cold item out of the list, so hybrid, content and popularity models are
// compared on ranking new items against each other), or every unseen catalog item
// (kAll). Accuracy metrics only.
//
// Thread-safety: Evaluate only calls const model methods; it runs on ctx.threads
// threads and may be called concurrently for different reports. Deterministic for a
// given options.seed whatever the thread count.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/core/file_io.h"
#include "recforge/data/dataset.h"
#include "recforge/models/recommender.h"

namespace recforge::eval {

enum class Protocol { kFull, kSampled, kNextItem };

// Candidates of --cold-items: only the catalog's cold items, or every item.
enum class ColdCandidates { kCold, kAll };

// Every metric name EvalOptions::metrics accepts, in report order.
const std::vector<std::string>& MetricNames();

struct EvalOptions {
  std::vector<int> ks = {5, 10, 20};
  // Metric names to report (empty = every applicable one): precision, recall, ndcg,
  // map, mrr, hit_rate, auc, coverage, novelty, diversity, rmse, mae. A requested
  // metric that does not apply (rmse of a ranking-only model, diversity without item
  // categories, coverage under sampled:N) is left out with a note in EvalReport::notes.
  std::vector<std::string> metrics;
  Protocol protocol = Protocol::kFull;
  int sampled_negatives = 100;               // kSampled
  std::optional<float> relevance_threshold;  // none = every test row is relevant
  int bootstrap_samples = 1000;              // 95% CI of headline metrics (0 = none)
  std::uint64_t seed = 42;                   // bootstrap and negative sampling
  bool keep_per_user = false;                // fill EvalReport::per_user (ComparePaired needs it)
  std::string part = "test";                 // "test" or "val"
  bool cold_items = false;                   // restrict to cold test items (full protocol)
  ColdCandidates cold_candidates = ColdCandidates::kCold;

  // Parses "full", "sampled:N" (N >= 1) or "next-item"; throws InvalidArgument.
  static std::pair<Protocol, int> ParseProtocol(std::string_view text);
  // "full", "sampled:N" or "next-item".
  std::string ProtocolLabel() const;
  // Parses "cold" or "all"; throws InvalidArgument.
  static ColdCandidates ParseColdCandidates(std::string_view text);
  // Throws InvalidArgument naming the option: ks >= 1, known metric names, part test|val,
  // bootstrap_samples >= 0, sampled_negatives >= 1, a finite threshold, cold_items only
  // with the full protocol.
  void Validate() const;
};

// Per-user values, column-wise names and row-major values (a map per user would cost
// an order of magnitude more memory on large datasets). One row per evaluated user,
// ascending user index. A NaN value means "undefined for this user" (novelty of an
// empty list, diversity without categorised pairs); accuracy columns are never NaN.
struct PerUserTable {
  std::vector<std::string> columns;  // metric keys, e.g. "ndcg@10", "auc", "novelty@10"
  std::vector<UserIndex> users;
  std::vector<std::uint32_t> relevant;  // |relevant items| of each user
  std::vector<double> values;           // users.size() x columns.size()

  std::size_t size() const { return users.size(); }
  std::optional<std::size_t> Column(std::string_view name) const;
  double Value(std::size_t row, std::size_t column) const {
    return values[row * columns.size() + column];
  }
};

struct EvalReport {
  std::string protocol;    // "full" or "sampled:100"
  std::string part;        // "test" or "val"
  std::string model_spec;  // canonical spec of the evaluated model
  std::vector<int> ks;     // sorted, distinct
  std::optional<float> relevance_threshold;
  std::size_t users_evaluated = 0;
  std::size_t users_skipped = 0;          // users with rows in the part but no relevant item
  std::size_t n_items = 0;                // catalog size
  std::map<std::string, double> metrics;  // lower-case "ndcg@10", "rmse", "coverage@10", ...
  // Display order of `metrics` (by metric, then K).
  std::vector<std::string> metric_order;
  // The accuracy metrics that get a bootstrap CI and a paired comparison:
  // precision, recall, ndcg, map, mrr, hit_rate at each K, and auc (those computed).
  std::vector<std::string> headline_metrics;
  std::map<std::string, std::pair<double, double>> confidence_intervals;  // 95% bootstrap
  int bootstrap_samples = 0;
  std::uint64_t seed = 0;
  std::vector<std::string> notes;  // metrics left out and why
  double seconds = 0;
  PerUserTable per_user;  // filled when EvalOptions::keep_per_user

  // --cold-items: what was ranked (absent otherwise).
  struct ColdItems {
    std::string candidates;               // "cold" or "all"
    std::size_t catalog_cold_items = 0;   // catalog items without train rows
    std::size_t relevant_cold_items = 0;  // distinct cold items relevant to an evaluated user
  };
  std::optional<ColdItems> cold_items;
  // next-item: how the evaluated users were scored (absent otherwise).
  struct NextItemScoring {
    std::size_t from_history = 0;       // ScoreHistory over train (+ val) items
    std::size_t from_fitted_user = 0;   // the family has no ScoreHistory: ScoreUsers
  };
  std::optional<NextItemScoring> next_item;

  // {"protocol", "part", "model", "users_evaluated", "users_skipped", "ks",
  //  "relevance_threshold" (null when none), "n_items", "metrics": {...},
  //  "confidence_intervals": {"ndcg@10": [low, high], ...}, "confidence_level": 0.95,
  //  "bootstrap_samples", "seed", "notes", "seconds"}, plus "cold_items":
  //  {"candidates", "catalog_cold_items", "relevant_cold_items"} with --cold-items and
  //  "next_item": {"scored_from_history", "scored_from_fitted_user"} under next-item.
  nlohmann::json ToJson() const;
};

// Evaluates `model` on the test (or val) part of `prepared`. The model's seen() items
// are excluded; they must be the prepared train part (true after Fit on it; the CLI
// sets them with SetSeen from the dataset, as `recforge recommend` does).
// Throws InvalidArgument when options are invalid, the part is absent, or the model's
// users / items / seen() do not match the dataset's.
// Cost: one Recommend (top max(ks)) per evaluated user, plus one ScoreUsers row per
// user for auc under the full protocol, plus a PredictPairs per part row for rmse/mae;
// memory O(part rows + evaluated users x metric columns), lists are processed in
// chunks of users so memory does not grow with max(ks) x users.
EvalReport Evaluate(const models::Recommender& model, const data::PreparedDataset& prepared,
                    const EvalOptions& options, const Context& ctx);

// Writes report.per_user as CSV: a header `user_id,n_relevant,<columns...>` then one
// row per evaluated user with the original user id (from `users`, the dataset's id
// map) and the values (%.9g; an undefined value is an empty field). Ids containing a
// comma, quote or newline are quoted. Throws InvalidArgument when the report has no
// per-user table (keep_per_user was off) and IoError when the file cannot be written.
void WritePerUserCsv(const EvalReport& report, const data::IdMap& users, const fs::path& path);

// Paired comparison of two models' per-user values of one metric: the users both
// reports evaluated (matched by user index; both need keep_per_user) with a defined
// value in both. mean difference (a - b), its 95% percentile bootstrap CI (users
// resampled with replacement, seeded) and the paired t-test two-sided p-value.
// Throws InvalidArgument when a report lacks per-user values or the metric column,
// or when no user is shared.
struct PairedComparison {
  std::string metric;
  std::size_t users = 0;
  double mean_a = 0, mean_b = 0, mean_difference = 0;
  std::pair<double, double> difference_ci;
  double t_statistic = 0;
  double p_value = 1;
  nlohmann::json ToJson() const;
};
PairedComparison ComparePaired(const EvalReport& a, const EvalReport& b, const std::string& metric,
                               int bootstrap_samples, std::uint64_t seed, int threads = 1);

}  // namespace recforge::eval
