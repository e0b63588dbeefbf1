// The SGD group on real data (ml-100k, ../shared/data):
//   - mf / nmf rating error on the canonical u1.base / u1.test split (via eval::Evaluate):
//     mf with its defaults at most 0.91 (the target);
//   - bpr with its defaults under ../shared/PROTOCOL.md (per-user ratio split 0.2,
//     dedup first, full ranking): NDCG@10 at least 0.160 (the best CPU peer gets 0.1572
//     with f=64, lr 0.01, 100 epochs) and above pop.
// Each test fits on 2 threads in a few seconds. Skipped when the data is absent.
#include <gtest/gtest.h>

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

Context TwoThreads() {
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 42;
  return ctx;
}

eval::EvalReport RatingReport(const std::string& spec, const data::PreparedDataset& prepared,
                              const Context& ctx) {
  auto model = CreateModel(spec);
  model->Fit(TrainingData::FromPrepared(prepared, ctx.threads), ctx);
  eval::EvalOptions options;
  options.metrics = {"rmse", "mae"};
  options.bootstrap_samples = 0;
  eval::EvalReport report = eval::Evaluate(*model, prepared, options, ctx);
  std::cout << spec << " on u1: RMSE " << report.metrics.at("rmse") << ", MAE "
            << report.metrics.at("mae") << "\n";
  return report;
}

TEST(RealDataSgd, MfRmseOnMl100kU1) {
  RECFORGE_REQUIRE_DATA("ml-100k/u1.base");
  RECFORGE_REQUIRE_DATA("ml-100k/u1.test");
  Context ctx = TwoThreads();
  data::PreparedDataset prepared = recforge::testing::Ml100kU1Split(ctx);
  eval::EvalReport report = RatingReport("mf", prepared, ctx);
  // The target. The defaults (SVD++ implicit term on) give 0.9086 with seed 42
  // (0.9080-0.9088 over seeds 1-3); without the implicit term the best found was 0.9129
  // (docs/models/sgd.md "Results").
  EXPECT_LE(report.metrics.at("rmse"), 0.91);
  EXPECT_LE(report.metrics.at("mae"), 0.715);
}

TEST(RealDataSgd, NmfRmseOnMl100kU1) {
  RECFORGE_REQUIRE_DATA("ml-100k/u1.base");
  RECFORGE_REQUIRE_DATA("ml-100k/u1.test");
  Context ctx = TwoThreads();
  data::PreparedDataset prepared = recforge::testing::Ml100kU1Split(ctx);
  eval::EvalReport report = RatingReport("nmf", prepared, ctx);
  // No peer target: guards against regressions (defaults give 0.9250).
  EXPECT_LE(report.metrics.at("rmse"), 0.93);
}

TEST(RealDataSgd, BprDefaultsBeatThePeerAndPopOnMl100k) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  Context ctx = TwoThreads();
  data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  const TrainingData data = TrainingData::FromPrepared(prepared, ctx.threads);

  eval::EvalOptions options;
  options.ks = {10};
  options.metrics = {"ndcg", "recall"};
  options.bootstrap_samples = 0;
  auto evaluate = [&](const std::string& spec) {
    auto model = CreateModel(spec);
    std::vector<double> losses;
    model->Fit(data, ctx,
               [&](const Recommender&, EpochReport& report) { losses.push_back(report.loss); });
    eval::EvalReport report = eval::Evaluate(*model, prepared, options, ctx);
    std::cout << spec << ": NDCG@10 " << report.metrics.at("ndcg@10") << ", Recall@10 "
              << report.metrics.at("recall@10") << "\n";
    if (spec == "bpr") {
      EXPECT_EQ(losses.size(), 100u);
      EXPECT_LT(losses.back(), 0.5 * losses.front()) << "the BPR loss should fall";
    }
    return report;
  };
  eval::EvalReport bpr = evaluate("bpr");
  eval::EvalReport pop = evaluate("pop");
  EXPECT_EQ(bpr.users_evaluated, 943u);
  EXPECT_GE(bpr.metrics.at("ndcg@10"), 0.160);
  EXPECT_GT(bpr.metrics.at("ndcg@10"), pop.metrics.at("ndcg@10"));
  EXPECT_GE(bpr.metrics.at("recall@10"), 0.0901);  // the peer's Recall@10
}

}  // namespace
}  // namespace recforge::models
