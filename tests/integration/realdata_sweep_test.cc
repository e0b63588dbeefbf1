// `recforge sweep` on ml-100k straight from the raw u.data: two preprocessing configs
// x two models, end to end (ingest once, prepare per config, trials as child runs).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "recforge/tracking/store.h"
#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::RunCli;
using recforge::testing::TempDir;

TEST(RealdataSweep, Ml100kSmallGridEndToEnd) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  TempDir dir;
  const auto config = dir.Write("sweep.yaml", fmt::format(R"(experiment: ml100k-sweep
input: {}
prepare:
  dedup: first
  split: ratio
  test_ratio: 0.2
  min_user: [1, 20]
models:
  pop: {{}}
  ials: {{factors: 16, iters: 3, alpha: 1}}
metric: ndcg@10
eval: {{k: [10]}}
)",
                                                         recforge::testing::RealData("ml-100k/u.data").string()));
  const std::string db = (dir / "mlruns.db").string();
  auto result = RunCli({"sweep", "--config", config.string(), "--tracking-uri", db, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto report = nlohmann::json::parse(result.out);
  EXPECT_EQ(report["trials"], 4);
  EXPECT_EQ(report["finished"], 4);
  ASSERT_EQ(report["top"].size(), 4u);
  for (const auto& row : report["top"]) {
    EXPECT_GT(row["value"].get<double>(), 0.01) << row.dump();
    EXPECT_LT(row["value"].get<double>(), 0.9) << row.dump();
  }
  // ml-100k users all have >= 20 ratings: both preprocessing configs see every user.
  EXPECT_NE(result.err.find("prepared config 1/2 (dedup=first min_user=1 split=ratio test_ratio=0.2): 943 users"),
            std::string::npos)
      << result.err;
  tracking::Store store(tracking::TrackingLocation::Resolve(db));
  tracking::RunQuery query;
  query.parent_id = report["sweep_run_id"].get<std::string>();
  EXPECT_EQ(store.ListRuns(query).size(), 4u);
}

}  // namespace
}  // namespace recforge
