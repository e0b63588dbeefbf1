// item2vec on ml-100k (../shared/data): under ../shared/PROTOCOL.md (per-user ratio split
// 0.2, dedup first, full ranking) its NDCG@10 beats pop's, and under a leave-one-out
// split (each user's last item is test) its HitRate@10 and NDCG@10 beat pop's.
// A few seconds on 2 threads; skipped when the data is absent.
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

eval::EvalReport Evaluate(const std::string& spec, const data::PreparedDataset& prepared,
                          const Context& ctx) {
  auto model = CreateModel(spec);
  model->Fit(TrainingData::FromPrepared(prepared, ctx.threads), ctx);
  eval::EvalOptions options;
  options.ks = {10};
  options.metrics = {"ndcg", "hit_rate", "recall"};
  options.bootstrap_samples = 0;
  eval::EvalReport report = eval::Evaluate(*model, prepared, options, ctx);
  std::cout << spec << ": NDCG@10 " << report.metrics.at("ndcg@10") << ", HitRate@10 "
            << report.metrics.at("hit_rate@10") << ", Recall@10 " << report.metrics.at("recall@10")
            << "\n";
  return report;
}

TEST(RealDataItem2Vec, BeatsPopOnMl100kProtocol) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  Context ctx = TwoThreads();
  data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  eval::EvalReport item2vec = Evaluate("item2vec", prepared, ctx);
  eval::EvalReport pop = Evaluate("pop", prepared, ctx);
  EXPECT_EQ(item2vec.users_evaluated, 943u);
  EXPECT_GT(item2vec.metrics.at("ndcg@10"), pop.metrics.at("ndcg@10"));
}

TEST(RealDataItem2Vec, BeatsPopOnMl100kLeaveOneOut) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  Context ctx = TwoThreads();
  data::Dataset dataset = data::Ingest({RealData("ml-100k/u.data")}, data::IngestOptions{}, ctx);
  data::PrepareOptions prepare;
  prepare.dedup = data::DedupPolicy::kFirst;
  prepare.split = data::SplitStrategy::kLeaveOneOut;
  data::PreparedDataset prepared = data::Prepare(std::move(dataset), prepare, ctx);
  eval::EvalReport item2vec = Evaluate("item2vec", prepared, ctx);
  eval::EvalReport pop = Evaluate("pop", prepared, ctx);
  EXPECT_EQ(item2vec.users_evaluated, 943u);
  EXPECT_GT(item2vec.metrics.at("hit_rate@10"), pop.metrics.at("hit_rate@10"));
  EXPECT_GT(item2vec.metrics.at("ndcg@10"), pop.metrics.at("ndcg@10"));
}

}  // namespace
}  // namespace recforge::models
