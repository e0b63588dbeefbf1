// `recforge data prepare`: from a raw dataset to leak-free train / val / test parts.
//
// Pipeline, in this order:
//   1. dedup repeated (user, item) pairs (policy below);
//   2. rating filter: --min-rating keeps rows with rating >= R; --implicit-threshold
//      keeps rows with rating >= R and sets their rating to 1;
//   3. iterative k-core: drop users with < min_user and items with < min_item
//      interactions, repeated until nothing changes (a fixed point);
//   4. split (strategy below); ties in time are broken by item index, so results
//      are reproducible;
//   5. cold handling: users / items of val/test absent from train are counted and
//      kept or dropped;
//   6. id maps are compacted to the users / items that remain (order preserved).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::data {

// What to keep of repeated (user, item) rows.
//   last:  the row with the latest time (ties: the later row in input order)
//   first: the row with the earliest time (ties: the earlier row)
//   max:   the highest rating (its time; ties: the later row)
//   mean:  mean rating, latest time
//   sum:   summed rating (play counts), latest time
enum class DedupPolicy { kLast, kFirst, kMax, kMean, kSum };

//   temporal:      global cutoff at the (1 - test_ratio) quantile of time; rows at or
//                  after it are test (val: the val_ratio slice before it)
//   last-n:        each user's last `last_n` rows by time are test (at least one row
//                  stays in train); `val_n` rows before them are val
//   leave-one-out: each user's last row is test, the second-last is val (users with
//                  one row stay in train; with two rows, no val row)
//   ratio:         each user's last max(1, floor(test_ratio * n_u)) rows are test
//                  (exactly ../shared/PROTOCOL.md); val_ratio likewise before them
//   random:        a seeded uniform random floor(test_ratio * n) rows are test
enum class SplitStrategy { kTemporal, kLastN, kLeaveOneOut, kRatio, kRandom };

enum class ColdPolicy { kKeep, kDrop };

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
  std::uint64_t seed = 42;   // random split

  // Validates ranges; throws InvalidArgument naming the option.
  void Validate() const;
  // Parameters as recorded in meta.json (canonical names, all fields).
  nlohmann::json ToJson() const;
};

// Runs the pipeline. The result's meta records the options, the parent's content
// hash, counts after each stage and cold-start counts; each part_meta records its
// counts. Deterministic: same input + options + seed => identical output.
PreparedDataset Prepare(const Dataset& dataset, const PrepareOptions& options, const Context& ctx);

// Iterative k-core over rows (user, item) with n_users / n_items index ranges.
// Returns, for each row, whether it survives. Exposed for tests and the benchmarks.
std::vector<bool> KCoreMask(const Interactions& interactions, std::size_t n_users, std::size_t n_items,
                            std::uint32_t min_user, std::uint32_t min_item, int threads);

}  // namespace recforge::data
