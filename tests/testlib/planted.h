// Planted-structure datasets with a known answer (STYLE.md §10).
#pragma once

#include <cstdint>

#include "recforge/data/dataset.h"

namespace recforge::testing {

// A "checkerboard": users and items fall into `blocks` blocks; each user interacts
// only with items of its own block (a fraction `density` of them, at least 3) and
// each user's latest interaction is held out as test. So every personalised model
// should rank the held-out in-block item in its top-10 (the block has ~items_per_block
// items, minus the few already seen). Ratings: 4 or 5 in-block. One extra user has
// no training interactions (the "empty user") and one test row.
struct PlantedOptions {
  int blocks = 4;
  int users_per_block = 30;
  int items_per_block = 12;
  double density = 0.6;
  std::uint64_t seed = 1;
};
data::PreparedDataset PlantedCheckerboard(const PlantedOptions& options = {});

// Block of an item / user index in PlantedCheckerboard's output.
int PlantedItemBlock(const PlantedOptions& options, std::uint32_t item);
int PlantedUserBlock(const PlantedOptions& options, std::uint32_t user);

}  // namespace recforge::testing
