// `recforge data prepare`: from a raw dataset to leak-free train / val / test parts.
//
// Pipeline, in this order:
//   1. dedup repeated (user, item) pairs (policy below);
//   2. rating filter: --min-rating keeps rows with rating >= R; --implicit-threshold
//      keeps rows with rating >= R and sets their rating to 1 (both may be given: a row
//      must pass both, then it is binarised); NaN ratings never pass a filter;
//   3. iterative k-core: drop users with < min_user and items with < min_item
//      interactions, repeated until nothing changes (a fixed point: afterwards every
//      kept user has >= min_user and every kept item >= min_item rows);
//   4. split (strategy below); ties in time are broken by item index, so results
//      are reproducible;
//   5. cold handling: users / items of val/test absent from train are counted and
//      kept or dropped;
//   6. id maps are compacted to the users / items that remain (order preserved).
//
// Cost: O(rows log(rows per user)) time, in parallel over users; memory about the
// input columns + 16 bytes per row of user buckets (given back block by block while
// the output is written) + the output columns (+ 1 byte per row for the random split).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::data {

// What to keep of repeated (user, item) rows.
//   last:  the row with the latest time (ties: the later row in input order)
//   first: the row with the earliest time (ties: the earlier row)
//   max:   the row with the highest rating (ties: as `last` among the tied rows)
//   mean:  mean rating, at the time of the row `last` keeps
//   sum:   summed rating (play counts), at the time of the row `last` keeps
// mean and sum add in input order in double precision, then round to float.
enum class DedupPolicy { kLast, kFirst, kMax, kMean, kSum };

// Every strategy orders a user's rows by (time, item index).
//   temporal:      global cutoff at the (1 - test_ratio) quantile of time: with
//                  n_test = floor(test_ratio * n) over all n rows, the cutoff is the
//                  time of the row of rank n - n_test, and every row at or after it is
//                  test (ties at the cutoff all go to test). val: likewise the rows in
//                  [cutoff of rank n - n_test - floor(val_ratio * n), test cutoff).
//   last-n:        each user's last `last_n` rows by time are test (at least one row
//                  stays in train); `val_n` rows before them are val (again leaving at
//                  least one train row)
//   leave-one-out: each user's last row is test, the second-last is val (users with
//                  one row stay in train; with two rows, no val row)
//   ratio:         each user's last max(1, floor(test_ratio * n_u)) rows are test
//                  (exactly ../shared/PROTOCOL.md: a user with one row has it in test);
//                  when val_ratio > 0, the max(1, floor(val_ratio * n_u)) rows before
//                  them are val, but val never takes a user's last train row
//   random:        a seeded uniform random floor(test_ratio * n) rows are test (and
//                  floor(val_ratio * n) of the rest val); the draw hashes (seed, user,
//                  item), so it does not depend on row order or thread count
// floor(r * n) is computed with a tiny upward epsilon, so floating error never lowers
// it (0.2 * 5 is 1). The val part exists (possibly empty) for leave-one-out, for
// last-n with val_n > 0, and for the ratio strategies with val_ratio > 0.
enum class SplitStrategy { kTemporal, kLastN, kLeaveOneOut, kRatio, kRandom };

// keep: val/test rows of users or items without train rows stay (and are counted);
// drop: those rows are removed. Train is never changed by this step.
enum class ColdPolicy { kKeep, kDrop };

// Parse the names above (split also accepts last_n, leave_one_out and loo); throw
// InvalidArgument naming the option and listing the allowed values. Name() returns
// the main name.
DedupPolicy ParseDedupPolicy(std::string_view name);
SplitStrategy ParseSplitStrategy(std::string_view name);
ColdPolicy ParseColdPolicy(std::string_view name);
std::string_view Name(DedupPolicy policy);
std::string_view Name(SplitStrategy strategy);
std::string_view Name(ColdPolicy policy);

struct PrepareOptions {
  DedupPolicy dedup = DedupPolicy::kLast;
  std::optional<float> min_rating;
  std::optional<float> implicit_threshold;
  std::uint32_t min_user = 0;
  std::uint32_t min_item = 0;
  SplitStrategy split = SplitStrategy::kTemporal;
  double test_ratio = 0.2;   // temporal, ratio, random
  double val_ratio = 0.0;    // temporal, ratio, random (0 = no val part)
  std::uint32_t last_n = 5;  // last-n
  std::uint32_t val_n = 0;   // last-n
  ColdPolicy cold = ColdPolicy::kKeep;
  std::uint64_t seed = 42;  // random split

  // Validates ranges; throws InvalidArgument naming the option: finite rating bounds,
  // 0 < test_ratio < 1, 0 <= val_ratio < 1 with test_ratio + val_ratio < 1, last_n >= 1,
  // and no val option of another strategy (val_ratio with last-n / leave-one-out,
  // val_n with anything but last-n), since nothing is silently ignored.
  void Validate() const;
  // Parameters as recorded in meta.json (canonical names, all fields).
  nlohmann::json ToJson() const;
};

// Runs the pipeline on ctx.threads threads. Rows of each part are sorted by
// (user, time, item); a (user, item) pair is in at most one part. All item_info
// entries of the input are kept (metadata of items without rows helps cold start).
// meta holds:
//   parameters           options.ToJson()
//   parent               {content_hash (when the input meta has one), rows, n_users, n_items}
//   stages               [{stage, rows, users, items}] for input, dedup, rating_filter,
//                        kcore and output (users / items = those with >= 1 row)
//   split                {strategy, train_rows, [val_rows], test_rows,
//                         [test_cutoff_time, val_cutoff_time] (temporal)}
//   cold                 {policy, test: {users_not_in_train, items_not_in_train,
//                         rows_with_cold_user_or_item}, [val: same], rows_dropped}
//                        (counted before dropping)
//   source_parse_errors  the input meta's parse_errors, when present
// part_meta[k] holds {rows, users, items} of train, val (null without val), test.
// Deterministic: same input + options => byte-identical output, whatever the thread
// count (no times or paths in meta).
// Throws InvalidArgument for invalid options or when no row survives the filters, and
// FormatError when the columns differ in length or an index is outside the id maps.
PreparedDataset Prepare(const Dataset& dataset, const PrepareOptions& options, const Context& ctx);
// Same, consuming the dataset: its interaction columns are freed as soon as the rows
// are bucketed by user, which keeps peak memory under 2x the binary dataset.
PreparedDataset Prepare(Dataset&& dataset, const PrepareOptions& options, const Context& ctx);

// Iterative k-core over rows (user, item) with n_users / n_items index ranges; a
// repeated pair counts once per row. Returns, for each row, whether it survives: the
// fixed point of repeatedly dropping users with < min_user and items with < min_item
// rows (computed by peeling, in time linear in the rows). Thresholds <= 1 keep
// everything. Throws FormatError for an index out of range. Exposed for tests and the
// benchmarks.
std::vector<bool> KCoreMask(const Interactions& interactions, std::size_t n_users,
                            std::size_t n_items, std::uint32_t min_user, std::uint32_t min_item,
                            int threads);

}  // namespace recforge::data
