// Internal: the RunQuery filter language and order_by of Store::ListRuns (see
// store.h). A tokenizer and a recursive-descent parser build a small expression
// tree that is evaluated in C++ over loaded runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/tracking/store.h"

namespace recforge::tracking::detail {

// metrics.KEY, params.KEY, tags.KEY or attributes.NAME.
struct RunColumn {
  enum class Source { kMetric, kParam, kTag, kAttribute };
  Source source = Source::kAttribute;
  std::string key;  // metric keys are lower-cased
  bool numeric_only() const;  // metrics and numeric attributes (start_ms, end_ms, duration, ...)
  std::string display() const;
};

// The value of a column in one run. `number` is set for metrics, numeric attributes
// and params / tags whose whole text is a number.
struct RunValue {
  std::optional<double> number;
  std::string text;
};

// nullopt when the run lacks the key (end_ms of a running run counts as lacking).
std::optional<RunValue> ValueOf(const Run& run, const RunColumn& column);

// Parses "metrics.x" / "params.x" / "tags.x" / "attributes.x" (singular prefixes
// accepted too); `bare_is_attribute` lets "start_ms" stand for attributes.start_ms.
// Throws InvalidArgument naming `context` and the position.
RunColumn ParseColumn(std::string_view text, bool bare_is_attribute, std::string_view context,
                      std::size_t position);

class RunFilter {
 public:
  // Throws InvalidArgument naming the problem and the (1-based) column.
  static RunFilter Parse(std::string_view text);
  bool empty() const { return root_ == nullptr; }
  bool Matches(const Run& run) const;  // an empty filter matches every run

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
};

struct OrderKey {
  RunColumn column;
  bool descending = false;
};

// "metrics.ndcg@10 desc, attributes.start_ms"; empty: start time, newest first.
std::vector<OrderKey> ParseOrderBy(std::string_view text);
// Stable; runs lacking a key sort after those that have it, in either direction;
// ties fall back to start time (newest first), then id.
void SortRuns(std::vector<Run>& runs, const std::vector<OrderKey>& keys);

// SQL LIKE with % and _ (case-sensitive unless `ignore_case`).
bool LikeMatch(std::string_view text, std::string_view pattern, bool ignore_case);

}  // namespace recforge::tracking::detail
