// `recforge data describe`: statistics of a raw or prepared dataset.
#pragma once

#include <nlohmann/json.hpp>

#include "recforge/core/context.h"
#include "recforge/data/dataset.h"

namespace recforge::data {

// Statistics of one set of interactions against id maps of n_users / n_items.
// Keys: users, items, interactions (distinct pairs, i.e. after dedup), rows, density,
// rating {min, max, mean, histogram}, per_user / per_item count quantiles
// (min, p25, p50, p75, p90, p99, max, mean; linear interpolation as numpy's default,
// over the users / items that have rows), time {min, max, min_iso, max_iso}.
// The histogram has one bin per distinct rating when there are at most 20 distinct
// values ("histogram_kind": "values"), else 10 equal-width bins ("bins").
nlohmann::json DescribeInteractions(const Interactions& interactions, std::size_t n_users,
                                    std::size_t n_items, int threads);

// The whole directory: for a raw dataset the object above plus parse_errors (integer
// total) and parse_error_reasons; for a prepared one, the same object per part under
// "train", "val" (when present), "test", plus top-level users / items (those present
// in any part), interactions and rows (sums over parts) and parse_errors of the source.
nlohmann::json DescribeDirectory(const fs::path& dir, const Context& ctx);

// Human-readable rendering of DescribeDirectory's JSON.
std::string FormatDescription(const nlohmann::json& description);

}  // namespace recforge::data
