// two-stage on ml-100k under ../shared/PROTOCOL.md (testlib Ml100kProtocolSplit, full
// ranking, eval::Evaluate): the ranker, trained on a label window carved out of train
// by time and validated on the protocol's later test window, beats each of its single
// candidate sources evaluated alone with the same sub-spec (issue 6).
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "../../../../src/models/ranking/two_stage.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"
#include "testlib/movielens.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

// docs/models/ranking.md: the spec of the docs/benchmarks.md figure.
constexpr const char* kTwoStage = "two-stage";

double Ndcg(const Recommender& model, const data::PreparedDataset& prepared, const Context& ctx) {
  eval::EvalOptions options;
  options.ks = {10};
  options.metrics = {"ndcg"};
  options.bootstrap_samples = 0;
  const eval::EvalReport report = eval::Evaluate(model, prepared, options, ctx);
  EXPECT_EQ(report.users_evaluated, 943u);
  return report.metrics.at("ndcg@10");
}

TEST(RealDataTwoStage, RankerBeatsItsBestSingleSourceOnALaterWindow) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 42;
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  const TrainingData data = TrainingData::FromPrepared(prepared, ctx.threads);
  auto model = CreateModel(kTwoStage);
  model->Fit(data, ctx);
  const auto& two_stage = dynamic_cast<const TwoStageModel&>(*model);
  EXPECT_EQ(two_stage.summary().leaking_label_rows, 0u);
  const double ranked = Ndcg(*model, prepared, ctx);
  std::cout << model->Spec() << ": NDCG@10 " << ranked << " (candidate recall "
            << two_stage.summary().candidate_recall << ")\n";
  for (const auto& entry : two_stage.importance()) {
    std::cout << "  " << entry.name << " total_gain " << entry.total_gain << "\n";
  }
  // Each candidate source alone: the fitted sub-models (refitted on the full train part)
  // and pop.
  double best = 0;
  for (const char* family : {"ials", "itemknn"}) {
    const Recommender* source = two_stage.source_model(family);
    ASSERT_NE(source, nullptr) << family;
    const double alone = Ndcg(*source, prepared, ctx);
    std::cout << source->Spec() << ": NDCG@10 " << alone << "\n";
    best = std::max(best, alone);
  }
  auto pop = CreateModel("pop");
  pop->Fit(data, ctx);
  best = std::max(best, Ndcg(*pop, prepared, ctx));
  EXPECT_GT(ranked, best);
}

}  // namespace
}  // namespace recforge::models
