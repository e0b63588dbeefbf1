// The topic group on ml-100k (../shared/data; skipped when absent):
//   - lda under ../shared/PROTOCOL.md (per-user ratio split 0.2, dedup first, full
//     ranking, eval::Evaluate) beats pop on NDCG@10;
//   - lda-content on u.item's titles and genres finds same-genre movies as similar
//     (far above the same-genre rate of random pairs).
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"
#include "testlib/movielens.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

// The recorded lda configuration (docs/models/topic.md).
constexpr const char* kLdaSpec = "lda:topics=32,passes=30";

Context TwoThreads() {
  Context ctx;
  ctx.threads = 2;
  ctx.seed = 42;
  return ctx;
}

double Ndcg10(const Recommender& model, const data::PreparedDataset& prepared, const Context& ctx) {
  eval::EvalOptions options;
  options.ks = {10};
  options.metrics = {"ndcg"};
  options.bootstrap_samples = 0;
  const eval::EvalReport report = eval::Evaluate(model, prepared, options, ctx);
  EXPECT_EQ(report.users_evaluated, 943u);
  return report.metrics.at("ndcg@10");
}

TEST(RealDataLda, BeatsPopOnNdcg) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  const TrainingData data = TrainingData::FromPrepared(prepared, ctx.threads);
  auto pop = CreateModel("pop");
  pop->Fit(data, ctx);
  auto lda = CreateModel(kLdaSpec);
  lda->Fit(data, ctx);
  const double pop_ndcg = Ndcg10(*pop, prepared, ctx);
  const double lda_ndcg = Ndcg10(*lda, prepared, ctx);
  std::cout << "pop NDCG@10 " << pop_ndcg << ", " << kLdaSpec << " NDCG@10 " << lda_ndcg << "\n";
  EXPECT_GT(lda_ndcg, pop_ndcg + 0.01);
}

TEST(RealDataLda, ContentTopicsFindSameGenreMovies) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.item");
  const Context ctx = TwoThreads();
  const data::PreparedDataset prepared = recforge::testing::Ml100kProtocolSplit(ctx);
  ASSERT_GE(prepared.item_info.size(), 1600u);
  const TrainingData data = TrainingData::FromPrepared(prepared, ctx.threads);
  auto model = CreateModel("lda-content");
  model->Fit(data, ctx);
  // Genres per item index.
  std::vector<std::set<std::string>> genres(prepared.items.size());
  for (const auto& info : prepared.item_info) {
    if (auto index = prepared.items.Find(info.item_id)) genres[*index] = {info.categories.begin(), info.categories.end()};
  }
  auto share = [&](std::size_t a, std::size_t b) {
    for (const auto& g : genres[a]) {
      if (genres[b].contains(g)) return true;
    }
    return false;
  };
  std::size_t pairs = 0, same = 0, random_pairs = 0, random_same = 0;
  for (std::size_t item = 0; item < genres.size(); ++item) {
    if (genres[item].empty()) continue;
    const RankedItems similar = model->SimilarItems(static_cast<ItemIndex>(item), 10);
    for (ItemIndex other : similar.items) {
      ++pairs;
      same += share(item, other) ? 1 : 0;
    }
    const std::size_t other = (item * 7919 + 13) % genres.size();  // a fixed pseudo-random partner
    if (other != item && !genres[other].empty()) {
      ++random_pairs;
      random_same += share(item, other) ? 1 : 0;
    }
  }
  const double rate = static_cast<double>(same) / static_cast<double>(pairs);
  const double random_rate = static_cast<double>(random_same) / static_cast<double>(random_pairs);
  std::cout << "lda-content: top-10 similar items sharing a genre " << rate << " (random pairs " << random_rate
            << ")\n";
  EXPECT_GE(rate, 0.9);
  EXPECT_GT(rate, random_rate + 0.3);
}

}  // namespace
}  // namespace recforge::models
