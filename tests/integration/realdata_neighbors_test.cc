// The neighbourhood families on real data (ml-100k under ../shared/PROTOCOL.md):
// itemknn with its defaults must reach NDCG@10 >= 0.180 (the best CPU peer library
// gets 0.1766 with cosine K=100 and 0.1831 tuned to K=20), the tuned itemknn spec
// >= 0.187, and userknn and assoc must beat pop (0.1111). Skipped with a message when
// ../shared/data is absent.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>

#include "recforge/data/ingest.h"
#include "recforge/data/prepare.h"
#include "recforge/eval/evaluator.h"
#include "recforge/models/registry.h"
#include "testlib/movielens.h"
#include "testlib/testlib.h"

namespace recforge::models {
namespace {

using recforge::testing::RealData;

// The tuned itemknn spec (docs/models.md, "Neighbourhood models"): BM25-weighted
// ratings, 12 neighbours per item. Neighbouring settings (K 10-15, bm25_b 0.5-1,
// bm25_k1 0.5-2) stay within 0.003 of it, so it is not a lucky point.
constexpr char kTunedItemKnn[] = "itemknn:neighbors=12";

class RealDataNeighbors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = recforge::testing::RealDataDir();
    if (!dir || !std::filesystem::exists(*dir / "ml-100k/u.data")) return;
    Context ctx;
    ctx.threads = 2;
    prepared_ = new data::PreparedDataset(recforge::testing::Ml100kProtocolSplit(ctx));
    training_ = new TrainingData(TrainingData::FromPrepared(*prepared_, 2));
  }
  static void TearDownTestSuite() {
    delete training_;
    delete prepared_;
    training_ = nullptr;
    prepared_ = nullptr;
  }

  // NDCG@10 and Recall@10 of `spec` fitted on the train part, by eval::Evaluate.
  static std::pair<double, double> Measure(const std::string& spec) {
    Context ctx;
    ctx.threads = 2;
    auto model = CreateModel(spec);
    model->Fit(*training_, ctx);
    eval::EvalOptions options;
    options.ks = {10};
    options.metrics = {"ndcg", "recall"};
    options.bootstrap_samples = 0;
    eval::EvalReport report = eval::Evaluate(*model, *prepared_, options, ctx);
    EXPECT_EQ(report.users_evaluated, 943u) << spec;
    const double ndcg = report.metrics.at("ndcg@10");
    const double recall = report.metrics.at("recall@10");
    std::cout << "[ ml-100k  ] " << model->Spec() << ": NDCG@10 " << ndcg << ", Recall@10 "
              << recall << "\n";
    return {ndcg, recall};
  }

  static data::PreparedDataset* prepared_;
  static TrainingData* training_;
};

data::PreparedDataset* RealDataNeighbors::prepared_ = nullptr;
TrainingData* RealDataNeighbors::training_ = nullptr;

TEST_F(RealDataNeighbors, SplitMatchesTheProtocol) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  EXPECT_EQ(prepared_->train.size(), 80367u);
  EXPECT_EQ(prepared_->test.size(), 19633u);
}

TEST_F(RealDataNeighbors, ItemKnnDefaultsAndTunedSpecReachTheirTargets) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  auto [defaults_ndcg, defaults_recall] = Measure("itemknn");
  EXPECT_GE(defaults_ndcg, 0.180);
  EXPECT_GT(defaults_recall, 0.10);
  auto [tuned_ndcg, tuned_recall] = Measure(kTunedItemKnn);
  EXPECT_GE(tuned_ndcg, 0.187);
  EXPECT_GT(tuned_recall, 0.11);
}

TEST_F(RealDataNeighbors, UserKnnAndAssocBeatPopularity) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  auto [pop_ndcg, pop_recall] = Measure("pop");
  EXPECT_NEAR(pop_ndcg, 0.1111, 0.0005);  // the peer reference for pop
  for (const std::string spec : {"userknn", "assoc"}) {
    auto [ndcg, recall] = Measure(spec);
    EXPECT_GT(ndcg, pop_ndcg + 0.03) << spec;
    EXPECT_GT(recall, pop_recall) << spec;
  }
}

// Every weighting is a working choice on real data, not only the default one.
TEST_F(RealDataNeighbors, EveryItemKnnSimilarityBeatsPopularity) {
  RECFORGE_REQUIRE_DATA("ml-100k/u.data");
  for (const std::string similarity : {"cosine", "jaccard", "bm25", "tfidf"}) {
    for (const std::string binary : {"true", "false"}) {
      auto [ndcg, recall] = Measure("itemknn:similarity=" + similarity + ",binary=" + binary);
      EXPECT_GT(ndcg, 0.17) << similarity << " binary=" << binary;
    }
  }
}

}  // namespace
}  // namespace recforge::models
