#include "testlib/movielens.h"

#include <gtest/gtest.h>

#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "testlib/testlib.h"

namespace recforge::testing {

data::PreparedDataset Ml100kProtocolSplit(const Context& ctx) {
  // u.item beside u.data is picked up: titles and genres for the diversity metrics.
  data::Dataset dataset = data::Ingest({RealData("ml-100k/u.data")}, data::IngestOptions{}, ctx);
  data::PrepareOptions prepare;
  prepare.dedup = data::DedupPolicy::kFirst;
  prepare.split = data::SplitStrategy::kRatio;
  prepare.test_ratio = 0.2;
  data::PreparedDataset prepared = data::Prepare(std::move(dataset), prepare, ctx);
  EXPECT_EQ(prepared.train.size(), 80'367u);
  EXPECT_EQ(prepared.test.size(), 19'633u);
  return prepared;
}

data::PreparedDataset Ml100kU1Split(const Context& ctx) {
  data::IngestOptions options;
  options.find_metadata = false;
  data::Dataset dataset =
      data::Ingest({RealData("ml-100k/u1.base"), RealData("ml-100k/u1.test")}, options, ctx);
  const std::size_t base_rows = dataset.meta["sources"][0]["rows"].get<std::size_t>();
  EXPECT_EQ(base_rows, 80'000u);
  EXPECT_EQ(dataset.interactions.size(), 100'000u);
  data::PreparedDataset prepared;
  prepared.users = dataset.users;
  prepared.items = dataset.items;
  const auto& rows = dataset.interactions;
  for (std::size_t row = 0; row < rows.size(); ++row) {
    auto& part = row < base_rows ? prepared.train : prepared.test;
    part.Append(rows.users[row], rows.items[row], rows.ratings[row], rows.times[row]);
  }
  prepared.meta = {{"content_hash", "ml-100k-u1"}};
  return prepared;
}

}  // namespace recforge::testing
