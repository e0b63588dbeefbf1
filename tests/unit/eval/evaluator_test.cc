// Evaluate / ComparePaired / WritePerUserCsv on a hand-built prepared dataset with
// hand-computed expectations (docs/evaluation.md), plus protocol, threshold, bootstrap
// and determinism properties on the planted checkerboard.
#include "recforge/eval/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "recforge/core/error.h"
#include "recforge/models/registry.h"
#include "testlib/planted.h"
#include "testlib/testlib.h"

namespace recforge::eval {
namespace {

constexpr double kTol = 1e-9;

double InvLog2(double rank) { return 1.0 / std::log2(rank + 1.0); }

// 4 users x 6 items.
//   train: u0 {i0, i1}   u1 {i0, i2}   u2 {i0, i1, i3}   u3 {i1}
//   test:  u0 i3 (5), i4 (2)   u1 i5 (4)   u2 i4 (1)   u3 i0 (5), i2 (4)
// Train popularity: i0 3, i1 3, i2 1, i3 1, i4 0, i5 0, so `pop` ranks (seen excluded,
// ties to the smaller index): u0 [2 3 4 5], u1 [1 3 4 5], u2 [2 4 5], u3 [0 2 3 4 5].
// Categories: i0 {A}, i1 {A, B}, i2 {B}, i3 {B, C}, i4 none, i5 {A}.
data::PreparedDataset HandBuilt() {
  data::PreparedDataset prepared;
  prepared.users = data::IdMap({"u0", "u1", "u2", "u3"});
  prepared.items = data::IdMap({"i0", "i1", "i2", "i3", "i4", "i5"});
  auto& train = prepared.train;
  train.Append(0, 0, 4, 1);
  train.Append(0, 1, 4, 2);
  train.Append(1, 0, 3, 1);
  train.Append(1, 2, 5, 2);
  train.Append(2, 0, 2, 1);
  train.Append(2, 1, 4, 2);
  train.Append(2, 3, 5, 3);
  train.Append(3, 1, 3, 1);
  auto& test = prepared.test;
  test.Append(0, 3, 5, 10);
  test.Append(0, 4, 2, 11);
  test.Append(1, 5, 4, 10);
  test.Append(2, 4, 1, 10);
  test.Append(3, 0, 5, 10);
  test.Append(3, 2, 4, 11);
  const char* categories[6][2] = {{"A", nullptr}, {"A", "B"},         {"B", nullptr},
                                  {"B", "C"},     {nullptr, nullptr}, {"A", nullptr}};
  for (int item = 0; item < 6; ++item) {
    data::ItemInfo info;
    info.item_id = "i" + std::to_string(item);
    for (const char* name : categories[item]) {
      if (name != nullptr) info.categories.push_back(name);
    }
    prepared.item_info.push_back(info);
  }
  prepared.meta = {{"content_hash", "hand-built"}};
  return prepared;
}

class EvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prepared_ = HandBuilt();
    data_ = models::TrainingData::FromPrepared(prepared_, 1);
    ctx_.threads = 2;
    pop_ = models::CreateModel("pop");
    pop_->Fit(data_, ctx_);
  }
  EvalOptions Options() const {
    EvalOptions options;
    options.ks = {1, 2};
    options.bootstrap_samples = 0;
    return options;
  }

  data::PreparedDataset prepared_;
  models::TrainingData data_;
  Context ctx_;
  std::unique_ptr<models::Recommender> pop_;
};

TEST_F(EvaluatorTest, FullProtocolMatchesHandComputedValues) {
  EvalReport report = Evaluate(*pop_, prepared_, Options(), ctx_);
  EXPECT_EQ(report.protocol, "full");
  EXPECT_EQ(report.part, "test");
  EXPECT_EQ(report.model_spec, pop_->Spec());
  EXPECT_EQ(report.users_evaluated, 4u);
  EXPECT_EQ(report.users_skipped, 0u);
  const auto& m = report.metrics;
  // Per user @2: u0 hit at 2 of {3, 4}; u1 none; u2 hit at 2 of {4}; u3 hits at 1, 2.
  EXPECT_NEAR(m.at("precision@1"), 0.25, kTol);
  EXPECT_NEAR(m.at("precision@2"), (0.5 + 0 + 0.5 + 1) / 4, kTol);
  EXPECT_NEAR(m.at("recall@1"), 0.5 / 4, kTol);
  EXPECT_NEAR(m.at("recall@2"), (0.5 + 0 + 1 + 1) / 4, kTol);
  const double u0_ndcg = InvLog2(2) / (1 + InvLog2(2));
  EXPECT_NEAR(m.at("ndcg@1"), 0.25, kTol);
  EXPECT_NEAR(m.at("ndcg@2"), (u0_ndcg + 0 + InvLog2(2) + 1) / 4, kTol);
  EXPECT_NEAR(m.at("map@1"), 0.25, kTol);
  EXPECT_NEAR(m.at("map@2"), (0.25 + 0 + 0.5 + 1) / 4, kTol);
  EXPECT_NEAR(m.at("mrr@2"), (0.5 + 0 + 0.5 + 1) / 4, kTol);
  EXPECT_NEAR(m.at("hit_rate@1"), 0.25, kTol);
  EXPECT_NEAR(m.at("hit_rate@2"), 0.75, kTol);
  // AUC, ties 1/2: u0 2/4, u1 0.5/3, u2 0.5/2, u3 5.5/6.
  EXPECT_NEAR(m.at("auc"), (0.5 + 1.0 / 6 + 0.25 + 5.5 / 6) / 4, kTol);
  // Top-1 items {2, 1, 2, 0}; top-2 items {2, 3, 1, 4, 0}.
  EXPECT_NEAR(m.at("coverage@1"), 3.0 / 6, kTol);
  EXPECT_NEAR(m.at("coverage@2"), 5.0 / 6, kTol);
  // Self-information over 4 training users: pop 3 -> log2(4/3), pop 0 or 1 -> 2 bits.
  const double common = std::log2(4.0 / 3);
  EXPECT_NEAR(m.at("novelty@1"), (2 + common + 2 + common) / 4, kTol);
  EXPECT_NEAR(m.at("novelty@2"), (2 + (common + 2) / 2 + 2 + (common + 2) / 2) / 4, kTol);
  // Diversity @2: u0 {B} vs {B, C} 1/2; u1 {A, B} vs {B, C} 2/3; u2 has an item without
  // categories (undefined, left out); u3 {A} vs {B} 1.
  EXPECT_NEAR(m.at("diversity@2"), (0.5 + 2.0 / 3 + 1) / 3, kTol);
  EXPECT_EQ(m.count("diversity@1"), 0u);  // no pair in a one-item list
  EXPECT_EQ(m.count("rmse"), 0u);         // pop does not predict ratings
  EXPECT_TRUE(report.confidence_intervals.empty());
  EXPECT_EQ(report.metric_order.front(), "precision@1");
  EXPECT_EQ(report.headline_metrics.back(), "auc");
  EXPECT_EQ(report.headline_metrics.size(), 6u * 2 + 1);
}

TEST_F(EvaluatorTest, MatchesRecomputationFromRecommendLists) {
  EvalOptions options = Options();
  options.ks = {10};  // longer than every list
  EvalReport report = Evaluate(*pop_, prepared_, options, ctx_);
  models::RecommendOptions recommend;
  recommend.k = 10;
  std::vector<UserIndex> users = {0, 1, 2, 3};
  auto lists = pop_->Recommend(users, recommend, 1);
  ASSERT_EQ(lists[2].items, (std::vector<ItemIndex>{2, 4, 5}));
  const std::vector<std::vector<ItemIndex>> relevant = {{3, 4}, {5}, {4}, {0, 2}};
  double precision = 0, recall = 0;
  for (std::size_t u = 0; u < 4; ++u) {
    int hits = 0;
    for (ItemIndex item : lists[u].items) {
      hits += std::count(relevant[u].begin(), relevant[u].end(), item) > 0 ? 1 : 0;
    }
    precision += hits / 10.0 / 4;
    recall += static_cast<double>(hits) / static_cast<double>(relevant[u].size()) / 4;
  }
  EXPECT_NEAR(report.metrics.at("precision@10"), precision, 1e-12);
  EXPECT_NEAR(report.metrics.at("recall@10"), recall, 1e-12);
  EXPECT_NEAR(report.metrics.at("recall@10"), 1.0, 1e-12);  // every unseen item is listed
}

TEST_F(EvaluatorTest, RelevanceThresholdSkipsUsersWithoutRelevantItems) {
  EvalOptions options = Options();
  options.relevance_threshold = 4.0f;
  options.keep_per_user = true;
  EvalReport report = Evaluate(*pop_, prepared_, options, ctx_);
  // u0 keeps i3 only, u2's only test row (rating 1) is not relevant: skipped.
  EXPECT_EQ(report.users_evaluated, 3u);
  EXPECT_EQ(report.users_skipped, 1u);
  EXPECT_NEAR(report.metrics.at("precision@2"), (0.5 + 0 + 1) / 3, kTol);
  EXPECT_NEAR(report.metrics.at("recall@2"), (1 + 0 + 1) / 3.0, kTol);
  EXPECT_EQ(report.per_user.users, (std::vector<UserIndex>{0, 1, 3}));
  EXPECT_EQ(report.per_user.relevant, (std::vector<std::uint32_t>{1, 1, 2}));
  ASSERT_TRUE(report.ToJson()["relevance_threshold"].is_number());
  EXPECT_EQ(report.ToJson()["relevance_threshold"].get<double>(), 4.0);
  // No relevant row at all: nothing evaluated, a note says why.
  options.relevance_threshold = 6.0f;
  EvalReport none = Evaluate(*pop_, prepared_, options, ctx_);
  EXPECT_EQ(none.users_evaluated, 0u);
  EXPECT_EQ(none.users_skipped, 4u);
  EXPECT_EQ(none.metrics.count("ndcg@2"), 0u);
  EXPECT_FALSE(none.notes.empty());
}

TEST_F(EvaluatorTest, SampledProtocolIsLabelledAndRanksOnlyCandidates) {
  EvalOptions options = Options();
  options.protocol = Protocol::kSampled;
  options.sampled_negatives = 3;
  EvalReport report = Evaluate(*pop_, prepared_, options, ctx_);
  EXPECT_EQ(report.protocol, "sampled:3");
  EXPECT_EQ(report.ToJson()["protocol"], "sampled:3");
  // Every user has at most 3 never-interacted items, so the candidates are exactly the
  // unseen items and the numbers equal the full protocol's.
  EvalReport full = Evaluate(*pop_, prepared_, Options(), ctx_);
  for (const char* key :
       {"precision@2", "recall@2", "ndcg@2", "map@2", "mrr@2", "hit_rate@1", "auc"}) {
    EXPECT_NEAR(report.metrics.at(key), full.metrics.at(key), kTol) << key;
  }
  // Beyond-accuracy metrics describe real lists: not computed under sampling.
  EXPECT_EQ(report.metrics.count("coverage@2"), 0u);
  EXPECT_EQ(report.metrics.count("novelty@2"), 0u);

  // One negative: u1 ranks i5 (pop 0) against one of i1 (3), i3 (1), i4 (0); it loses
  // to each, to i4 on the tie rule (the smaller index ranks first).
  options.sampled_negatives = 1;
  options.ks = {1};
  options.keep_per_user = true;
  EvalReport one = Evaluate(*pop_, prepared_, options, ctx_);
  EXPECT_EQ(one.protocol, "sampled:1");
  const auto column = one.per_user.Column("hit_rate@1");
  ASSERT_TRUE(column.has_value());
  EXPECT_EQ(one.per_user.Value(1, *column), 0.0);  // u1 loses whatever the negative
  // u3's relevant items i0 (3) and i2 (1) plus one negative of pop <= 1: i0 is first.
  EXPECT_EQ(one.per_user.Value(3, *column), 1.0);
}

TEST_F(EvaluatorTest, RatingErrorsForRatingModels) {
  // A fake rating model: every prediction is 3.
  class Constant : public models::Recommender {
   public:
    Constant() : Recommender(models::ParamValues("constant", {})) {}
    void ScoreUsers(std::span<const UserIndex> users, float* out) const override {
      std::fill(out, out + users.size() * n_items(), 3.0f);
    }
    bool PredictsRatings() const override { return true; }
    void SaveState(models::ModelWriter&) const override {}
    void LoadState(models::ModelReader&) override {}

   protected:
    void FitImpl(const models::TrainingData&, const Context&,
                 const models::TrainCallback&) override {}
  };
  Constant model;
  model.Fit(data_, ctx_);
  EvalOptions options = Options();
  options.metrics = {"rmse", "mae", "precision"};
  EvalReport report = Evaluate(model, prepared_, options, ctx_);
  // Test ratings 5 2 4 1 5 4: errors 2 -1 1 -2 2 1.
  EXPECT_NEAR(report.metrics.at("rmse"), std::sqrt(15.0 / 6), 1e-6);
  EXPECT_NEAR(report.metrics.at("mae"), 9.0 / 6, 1e-6);
  EXPECT_EQ(report.metrics.count("ndcg@2"), 0u);  // not requested
  // All scores tie, so lists are in index order: u0 [2 3], u1 [1 3], u2 [2 4], u3 [0 2].
  EXPECT_NEAR(report.metrics.at("precision@2"), (0.5 + 0 + 0.5 + 1) / 4.0, kTol);
  EXPECT_NEAR(report.metrics.at("precision@1"), (0 + 0 + 0 + 1) / 4.0, kTol);
  // Explicitly requested but not applicable metrics are left out with a note.
  options.metrics = {"rmse", "ndcg"};
  EvalReport pop_report = Evaluate(*pop_, prepared_, options, ctx_);
  EXPECT_EQ(pop_report.metrics.count("rmse"), 0u);
  ASSERT_EQ(pop_report.notes.size(), 1u);
  EXPECT_NE(pop_report.notes[0].find("rmse"), std::string::npos);
}

TEST_F(EvaluatorTest, UndefinedPredictionsAreLeftOutOfRatingErrorsAndCounted) {
  // Predicts 3, except NaN for i4, which has no train rows (as Spark's ALS does).
  class ColdItem : public models::Recommender {
   public:
    ColdItem() : Recommender(models::ParamValues("cold", {})) {}
    void ScoreUsers(std::span<const UserIndex> users, float* out) const override {
      std::fill(out, out + users.size() * n_items(), 3.0f);
    }
    void PredictPairs(std::span<const UserIndex>, std::span<const ItemIndex> items, float* out) const override {
      for (std::size_t k = 0; k < items.size(); ++k) {
        out[k] = items[k] == 4 ? std::numeric_limits<float>::quiet_NaN() : 3.0f;
      }
    }
    bool PredictsRatings() const override { return true; }
    void SaveState(models::ModelWriter&) const override {}
    void LoadState(models::ModelReader&) override {}

   protected:
    void FitImpl(const models::TrainingData&, const Context&, const models::TrainCallback&) override {}
  };
  ColdItem model;
  model.Fit(data_, ctx_);
  EvalOptions options = Options();
  options.metrics = {"rmse", "mae"};
  EvalReport report = Evaluate(model, prepared_, options, ctx_);
  // The two test pairs on i4 drop out: errors of the rest (5 4 5 4 vs 3) are 2 1 2 1.
  double squared = 0, absolute = 0;
  std::size_t defined = 0, undefined = 0;
  const auto& test = prepared_.test;
  for (std::size_t row = 0; row < test.size(); ++row) {
    if (test.items[row] == 4) {
      ++undefined;
      continue;
    }
    double error = 3.0 - test.ratings[row];
    squared += error * error;
    absolute += std::abs(error);
    ++defined;
  }
  ASSERT_EQ(undefined, 2u);
  ASSERT_EQ(defined, 4u);
  EXPECT_NEAR(report.metrics.at("rmse"), std::sqrt(10.0 / 4), 1e-6);
  EXPECT_NEAR(report.metrics.at("rmse"), std::sqrt(squared / defined), 1e-6);
  EXPECT_NEAR(report.metrics.at("mae"), absolute / defined, 1e-6);
  bool noted = false;
  for (const auto& note : report.notes) noted |= note.find(std::to_string(undefined) + " of") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(EvaluatorTest, InvalidOptionsAndMismatchesAreErrors) {
  EvalOptions options = Options();
  options.metrics = {"ndcg", "accuracy"};
  try {
    Evaluate(*pop_, prepared_, options, ctx_);
    FAIL() << "unknown metric accepted";
  } catch (const InvalidArgument& error) {
    EXPECT_NE(std::string(error.what()).find("unknown metric 'accuracy'"), std::string::npos);
  }
  options = Options();
  options.ks = {0};
  EXPECT_THROW(Evaluate(*pop_, prepared_, options, ctx_), InvalidArgument);
  options = Options();
  options.part = "val";
  EXPECT_THROW(Evaluate(*pop_, prepared_, options, ctx_), InvalidArgument);  // no val part
  options.part = "train";
  EXPECT_THROW(Evaluate(*pop_, prepared_, options, ctx_), InvalidArgument);
  EXPECT_THROW(EvalOptions::ParseProtocol("sampled:0"), InvalidArgument);
  EXPECT_THROW(EvalOptions::ParseProtocol("sampled"), InvalidArgument);
  EXPECT_THROW(EvalOptions::ParseProtocol("loo"), InvalidArgument);
  EXPECT_EQ(EvalOptions::ParseProtocol("sampled:100"), std::make_pair(Protocol::kSampled, 100));
  EXPECT_EQ(EvalOptions::ParseProtocol("full").first, Protocol::kFull);
  // A model of another shape.
  data::PreparedDataset bigger = HandBuilt();
  bigger.items = data::IdMap({"i0", "i1", "i2", "i3", "i4", "i5", "i6"});
  EXPECT_THROW(Evaluate(*pop_, bigger, Options(), ctx_), InvalidArgument);
}

TEST_F(EvaluatorTest, PerUserCsv) {
  EvalOptions options = Options();
  options.metrics = {"precision", "ndcg"};
  options.keep_per_user = true;
  EvalReport report = Evaluate(*pop_, prepared_, options, ctx_);
  testing::TempDir dir;
  WritePerUserCsv(report, prepared_.users, dir / "per_user.csv");
  std::ifstream in(dir / "per_user.csv");
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header, "user_id,n_relevant,precision@1,precision@2,ndcg@1,ndcg@2");
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "u0,2,0,0.5,0,0.386852807");
  EXPECT_EQ(lines[3], "u3,2,1,1,1,1");
  report.per_user = {};
  EXPECT_THROW(WritePerUserCsv(report, prepared_.users, dir / "x.csv"), InvalidArgument);
}

// ---- planted checkerboard: bootstrap, comparison, determinism ---------------------

class PlantedEvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prepared_ = testing::PlantedCheckerboard();
    data_ = models::TrainingData::FromPrepared(prepared_, 2);
    ctx_.threads = 2;
  }
  std::unique_ptr<models::Recommender> Fitted(const std::string& spec) {
    auto model = models::CreateModel(spec);
    model->Fit(data_, ctx_);
    return model;
  }
  data::PreparedDataset prepared_;
  models::TrainingData data_;
  Context ctx_;
};

TEST_F(PlantedEvaluatorTest, BootstrapIntervalsContainTheMean) {
  auto model = Fitted("itemknn");
  EvalOptions options;
  options.ks = {5, 10};
  options.bootstrap_samples = 300;
  EvalReport report = Evaluate(*model, prepared_, options, ctx_);
  EXPECT_EQ(report.users_evaluated, 121u);  // 120 + the empty user
  ASSERT_FALSE(report.headline_metrics.empty());
  for (const auto& key : report.headline_metrics) {
    ASSERT_TRUE(report.confidence_intervals.count(key)) << key;
    auto [low, high] = report.confidence_intervals.at(key);
    double mean = report.metrics.at(key);
    EXPECT_LE(low, mean) << key;
    EXPECT_GE(high, mean) << key;
  }
  auto [low, high] = report.confidence_intervals.at("ndcg@10");
  EXPECT_LT(low, high);
  // Same seed, other thread count: the same report.
  Context one_thread = ctx_;
  one_thread.threads = 1;
  EvalReport again = Evaluate(*model, prepared_, options, one_thread);
  EXPECT_EQ(again.metrics, report.metrics);
  EXPECT_EQ(again.confidence_intervals, report.confidence_intervals);
  nlohmann::json json = report.ToJson();
  EXPECT_EQ(json["users_evaluated"], 121);
  EXPECT_EQ(json["confidence_intervals"]["ndcg@10"].size(), 2u);
}

TEST_F(PlantedEvaluatorTest, SampledProtocolIsDeterministicAcrossThreads) {
  auto model = Fitted("pop");
  EvalOptions options;
  options.ks = {5};
  options.protocol = Protocol::kSampled;
  options.sampled_negatives = 10;
  options.bootstrap_samples = 0;
  options.keep_per_user = true;
  EvalReport two = Evaluate(*model, prepared_, options, ctx_);
  Context one_thread = ctx_;
  one_thread.threads = 1;
  EvalReport one = Evaluate(*model, prepared_, options, one_thread);
  EXPECT_EQ(one.per_user.values, two.per_user.values);
  options.seed = 43;
  EvalReport other = Evaluate(*model, prepared_, options, ctx_);
  EXPECT_NE(other.per_user.values, two.per_user.values);
  // 11 candidates: ranking is far easier than against the whole catalog.
  EvalOptions full;
  full.ks = {5};
  full.bootstrap_samples = 0;
  EXPECT_GT(two.metrics.at("recall@5"),
            Evaluate(*model, prepared_, full, ctx_).metrics.at("recall@5"));
}

TEST_F(PlantedEvaluatorTest, ComparePaired) {
  auto knn = Fitted("itemknn");
  auto pop = Fitted("pop");
  EvalOptions options;
  options.ks = {10};
  options.bootstrap_samples = 0;
  options.keep_per_user = true;
  EvalReport a = Evaluate(*knn, prepared_, options, ctx_);
  EvalReport b = Evaluate(*pop, prepared_, options, ctx_);

  PairedComparison same = ComparePaired(a, a, "ndcg@10", 200, 1);
  EXPECT_EQ(same.users, 121u);
  EXPECT_EQ(same.mean_difference, 0.0);
  EXPECT_EQ(same.p_value, 1.0);
  EXPECT_EQ(same.difference_ci, std::make_pair(0.0, 0.0));

  PairedComparison diff = ComparePaired(a, b, "ndcg@10", 500, 1, 2);
  EXPECT_NEAR(diff.mean_a, a.metrics.at("ndcg@10"), 1e-12);
  EXPECT_NEAR(diff.mean_b, b.metrics.at("ndcg@10"), 1e-12);
  EXPECT_NEAR(diff.mean_difference, diff.mean_a - diff.mean_b, 1e-12);
  EXPECT_GT(diff.mean_difference, 0);  // the personalised model wins on planted blocks
  EXPECT_LT(diff.p_value, 0.01);
  EXPECT_LE(diff.difference_ci.first, diff.mean_difference);
  EXPECT_GE(diff.difference_ci.second, diff.mean_difference);
  EXPECT_EQ(diff.ToJson()["metric"], "ndcg@10");

  EXPECT_THROW(ComparePaired(a, b, "ndcg@99", 10, 1), InvalidArgument);
  EvalReport no_rows = a;
  no_rows.per_user = {};
  EXPECT_THROW(ComparePaired(no_rows, b, "ndcg@10", 10, 1), InvalidArgument);
}

}  // namespace
}  // namespace recforge::eval
