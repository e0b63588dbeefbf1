// The ALS group on real data (ml-100k, ../shared/data):
//   - ials with its defaults under ../shared/PROTOCOL.md (per-user ratio split 0.2, dedup
//     first, full ranking, eval::Evaluate): NDCG@10 at least 0.180 and above pop (the best
//     CPU peer, implicit 0.7, gets 0.1734 with f=64, reg 0.01, alpha 1, 15 iterations and
//     0.1897 tuned); the recorded tuned spec reaches 0.195;
//   - als (Spark defaults) and svd (defaults): RMSE at most 0.95 on the canonical
//     u1.base / u1.test split.
// Each test fits on 2 threads in a few seconds. Skipped when the data is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"
#include "testlib/movielens.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::RealData;

// The tuned ials configuration recorded in docs/models/als.md.
constexpr const char* kTunedIals = "ials:factors=128,reg=1,alpha=0.1,reg_exponent=0.5,iters=15";

Context TwoThreads() {
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 42;
  return ctx;
}

eval::EvalReport RankingReport(const std::string& spec, const data::PreparedDataset& prepared,
                               const Context& ctx) {
  auto model = CreateModel(spec);
  model->Fit(TrainingData::FromPrepared(prepared, ctx.threads), ctx);
  eval::EvalOptions options;
  options.ks = {10};
  options.metrics = {"ndcg", "recall"};
  options.bootstrap_samples = 0;
  eval::EvalReport report = eval::Evaluate(*model, prepared, options, ctx);
  EXPECT_EQ(report.users_evaluated, 943u);
  std::cout << spec << ": NDCG@10 " << report.metrics.at("ndcg@10") << ", Recall@10 "
            << report.metrics.at("recall@10") << "\n";
  return report;
}

// RMSE over the test pairs with a prediction; NaN predictions (als: a user or item
// without training ratings) are left out, as coldStartStrategy=drop asks. `skipped`
// counts them.
double TestRmse(const Recommender& model, const data::Interactions& test, std::size_t* skipped) {
  std::vector<float> predicted(test.size());
  model.PredictPairs(test.users, test.items, predicted.data());
  double sum = 0;
  std::size_t count = 0;
  *skipped = 0;
  for (std::size_t row = 0; row < test.size(); ++row) {
    if (std::isnan(predicted[row])) {
      ++*skipped;
      continue;
    }
    const double error = double{predicted[row]} - test.ratings[row];
    sum += error * error;
    ++count;
  }
  return count > 0 ? std::sqrt(sum / static_cast<double>(count)) : std::nan("");
}

TEST(RealDataAls, IalsDefaultsBeatTheTargetAndPopUnderTheProtocol) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  const double pop = RankingReport("pop", prepared, ctx).metrics.at("ndcg@10");
  const eval::EvalReport ials = RankingReport("ials", prepared, ctx);
  EXPECT_GE(ials.metrics.at("ndcg@10"), 0.180);
  EXPECT_GT(ials.metrics.at("ndcg@10"), pop);
  EXPECT_GE(ials.metrics.at("recall@10"), 0.110);
}

TEST(RealDataAls, IalsIgnoresRatingValuesWhenBinary) {
  // PROTOCOL.md ignores rating values; the defaults meet the target either way.
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  EXPECT_GE(RankingReport("ials:binary=true", prepared, ctx).metrics.at("ndcg@10"), 0.180);
}

TEST(RealDataAls, IalsTunedSpecReachesTheTunedTarget) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  EXPECT_GE(RankingReport(kTunedIals, prepared, ctx).metrics.at("ndcg@10"), 0.195);
}

TEST(RealDataAls, AlsAndSvdRatingErrorOnU1) {
  RECFORGE_REQUIRE_DATA("ml-100k/u1.base");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kU1Split(ctx);
  const TrainingData data = TrainingData::FromPrepared(prepared, ctx.threads);
  for (const std::string spec : {"als:coldStartStrategy=drop", "svd"}) {
    auto model = CreateModel(spec);
    model->Fit(data, ctx);
    std::size_t skipped = 0;
    const double rmse = TestRmse(*model, prepared.test, &skipped);
    std::cout << spec << " on u1: RMSE " << rmse << " (" << skipped << " cold pairs left out)\n";
    EXPECT_LE(rmse, 0.95) << spec;
    // Only the 32 u1.test pairs whose item has no u1.base rating are cold.
    EXPECT_LE(skipped, 32u) << spec;
  }
}

TEST(RealDataAls, SvdRatingErrorAgreesWithTheEvaluator) {
  RECFORGE_REQUIRE_DATA("ml-100k/u1.base");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kU1Split(ctx);
  auto model = CreateModel("svd");
  model->Fit(TrainingData::FromPrepared(prepared, ctx.threads), ctx);
  eval::EvalOptions options;
  options.metrics = {"rmse"};
  options.bootstrap_samples = 0;
  const eval::EvalReport report = eval::Evaluate(*model, prepared, options, ctx);
  std::size_t skipped = 0;
  EXPECT_NEAR(report.metrics.at("rmse"), TestRmse(*model, prepared.test, &skipped), 1e-9);
  EXPECT_EQ(skipped, 0u);  // svd predicts the baseline for cold pairs
  EXPECT_LE(report.metrics.at("rmse"), 0.95);
}

}  // namespace
}  // namespace recforge::models
