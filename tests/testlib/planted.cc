#include "testlib/planted.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "recforge/core/random.h"

namespace recforge::testing {

int PlantedItemBlock(const PlantedOptions& options, std::uint32_t item) {
  return static_cast<int>(item) / options.items_per_block;
}

int PlantedUserBlock(const PlantedOptions& options, std::uint32_t user) {
  return static_cast<int>(user) / options.users_per_block;
}

data::PreparedDataset PlantedCheckerboard(const PlantedOptions& options) {
  data::PreparedDataset prepared;
  const int n_users = options.blocks * options.users_per_block;
  const int n_items = options.blocks * options.items_per_block;
  std::vector<std::string> user_ids, item_ids;
  // fmt rather than "u" + std::to_string(...): GCC 12 warns falsely (-Wrestrict) there.
  for (int u = 0; u <= n_users; ++u) user_ids.push_back(fmt::format("u{}", u));  // + the empty user
  for (int i = 0; i < n_items; ++i) item_ids.push_back(fmt::format("i{}", i));
  prepared.users = data::IdMap(user_ids);
  prepared.items = data::IdMap(item_ids);
  Rng rng(options.seed);
  for (int u = 0; u < n_users; ++u) {
    int block = u / options.users_per_block;
    std::vector<int> items;
    for (int k = 0; k < options.items_per_block; ++k) items.push_back(block * options.items_per_block + k);
    std::shuffle(items.begin(), items.end(), rng);
    int count = std::max(4, static_cast<int>(options.density * options.items_per_block));
    count = std::min(count, options.items_per_block);
    Timestamp time = 1000;
    for (int k = 0; k < count; ++k) {
      float rating = rng.Uniform() < 0.5 ? 4.0f : 5.0f;
      auto& part = k + 1 == count ? prepared.test : prepared.train;  // latest -> test
      part.Append(static_cast<UserIndex>(u), static_cast<ItemIndex>(items[k]), rating, time++);
    }
  }
  prepared.test.Append(static_cast<UserIndex>(n_users), 0, 5.0f, 5000);  // the empty user
  prepared.meta = {{"content_hash", "planted-" + std::to_string(options.seed)}};
  return prepared;
}

}  // namespace recforge::testing
