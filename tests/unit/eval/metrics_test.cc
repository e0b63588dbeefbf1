// Per-user metric functions and the statistics helpers on tiny hand-computed cases
// (docs/evaluation.md gives the definitions checked here).
#include "recforge/eval/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "recforge/core/random.h"
#include "recforge/eval/stats.h"
#include "recforge/models/recommender.h"

namespace recforge::eval {
namespace {

using Items = std::vector<ItemIndex>;
constexpr double kTol = 1e-9;

double InvLog2(double rank) { return 1.0 / std::log2(rank + 1.0); }

// ranked [3, 1, 7, 2, 9], relevant {1, 2, 5}: hits at ranks 2 and 4.
TEST(RankingMetricsTest, HandComputedListAtSeveralCutoffs) {
  const Items ranked = {3, 1, 7, 2, 9};
  const Items relevant = {1, 2, 5};
  const double ideal3 = 1 + InvLog2(2) + InvLog2(3);

  EXPECT_NEAR(*PrecisionAtK(ranked, relevant, 5), 2.0 / 5, kTol);
  EXPECT_NEAR(*RecallAtK(ranked, relevant, 5), 2.0 / 3, kTol);
  EXPECT_NEAR(*NdcgAtK(ranked, relevant, 5), (InvLog2(2) + InvLog2(4)) / ideal3, kTol);
  EXPECT_NEAR(*AveragePrecisionAtK(ranked, relevant, 5), (1.0 / 2 + 2.0 / 4) / 3, kTol);
  EXPECT_NEAR(*ReciprocalRankAtK(ranked, relevant, 5), 0.5, kTol);
  EXPECT_NEAR(*HitRateAtK(ranked, relevant, 5), 1.0, kTol);

  // k = 3: one hit (rank 2).
  EXPECT_NEAR(*PrecisionAtK(ranked, relevant, 3), 1.0 / 3, kTol);
  EXPECT_NEAR(*RecallAtK(ranked, relevant, 3), 1.0 / 3, kTol);
  EXPECT_NEAR(*NdcgAtK(ranked, relevant, 3), InvLog2(2) / ideal3, kTol);
  EXPECT_NEAR(*AveragePrecisionAtK(ranked, relevant, 3), 0.5 / 3, kTol);
  EXPECT_NEAR(*ReciprocalRankAtK(ranked, relevant, 3), 0.5, kTol);

  // k = 1: a miss; every metric is 0.
  auto top1 = RankingMetricsAtK(ranked, relevant, 1);
  ASSERT_TRUE(top1.has_value());
  EXPECT_EQ(top1->precision, 0);
  EXPECT_EQ(top1->recall, 0);
  EXPECT_EQ(top1->ndcg, 0);
  EXPECT_EQ(top1->map, 0);
  EXPECT_EQ(top1->mrr, 0);
  EXPECT_EQ(top1->hit_rate, 0);
}

TEST(RankingMetricsTest, MoreRelevantItemsThanK) {
  const Items ranked = {4, 5, 6};
  const Items relevant = {1, 2, 3, 4, 5, 6};
  // Two hits in the top 2: perfect precision / NDCG / AP (ideal DCG over min(k, 6) = 2).
  EXPECT_NEAR(*PrecisionAtK(ranked, relevant, 2), 1.0, kTol);
  EXPECT_NEAR(*RecallAtK(ranked, relevant, 2), 2.0 / 6, kTol);
  EXPECT_NEAR(*NdcgAtK(ranked, relevant, 2), 1.0, kTol);
  EXPECT_NEAR(*AveragePrecisionAtK(ranked, relevant, 2), 1.0, kTol);
  EXPECT_NEAR(*ReciprocalRankAtK(ranked, relevant, 2), 1.0, kTol);
}

TEST(RankingMetricsTest, KLargerThanTheList) {
  const Items ranked = {8, 2};
  const Items relevant = {2};
  // A short list is not rewarded: precision divides by k, not by the list length.
  EXPECT_NEAR(*PrecisionAtK(ranked, relevant, 10), 0.1, kTol);
  EXPECT_NEAR(*RecallAtK(ranked, relevant, 10), 1.0, kTol);
  EXPECT_NEAR(*NdcgAtK(ranked, relevant, 10), InvLog2(2), kTol);
  EXPECT_NEAR(*AveragePrecisionAtK(ranked, relevant, 10), 0.5, kTol);
  EXPECT_NEAR(*ReciprocalRankAtK(ranked, relevant, 10), 0.5, kTol);
  EXPECT_NEAR(*HitRateAtK(ranked, relevant, 10), 1.0, kTol);
  // An empty list: every metric 0 (the user still counts).
  auto empty_list = RankingMetricsAtK({}, relevant, 10);
  ASSERT_TRUE(empty_list.has_value());
  EXPECT_EQ(empty_list->precision, 0);
  EXPECT_EQ(empty_list->ndcg, 0);
}

TEST(RankingMetricsTest, EmptyRelevantSetIsUndefined) {
  const Items ranked = {1, 2, 3};
  EXPECT_FALSE(PrecisionAtK(ranked, {}, 3).has_value());
  EXPECT_FALSE(RecallAtK(ranked, {}, 3).has_value());
  EXPECT_FALSE(NdcgAtK(ranked, {}, 3).has_value());
  EXPECT_FALSE(AveragePrecisionAtK(ranked, {}, 3).has_value());
  EXPECT_FALSE(ReciprocalRankAtK(ranked, {}, 3).has_value());
  EXPECT_FALSE(HitRateAtK(ranked, {}, 3).has_value());
  std::vector<RankingValues> out;
  const std::size_t ks[] = {1, 3};
  EXPECT_FALSE(RankingMetricsAtKs(ranked, {}, ks, out));
}

TEST(RankingMetricsTest, SeveralCutoffsMatchSingleCutoffs) {
  const Items ranked = {9, 4, 0, 7, 3, 5, 1};
  const Items relevant = {0, 1, 3, 8};
  const std::size_t ks[] = {20, 1, 3, 5};  // any order, one beyond the list
  std::vector<RankingValues> out;
  ASSERT_TRUE(RankingMetricsAtKs(ranked, relevant, ks, out));
  for (std::size_t j = 0; j < std::size(ks); ++j) {
    auto single = RankingMetricsAtK(ranked, relevant, ks[j]);
    EXPECT_DOUBLE_EQ(out[j].precision, single->precision) << "k=" << ks[j];
    EXPECT_DOUBLE_EQ(out[j].recall, single->recall) << "k=" << ks[j];
    EXPECT_DOUBLE_EQ(out[j].ndcg, single->ndcg) << "k=" << ks[j];
    EXPECT_DOUBLE_EQ(out[j].map, single->map) << "k=" << ks[j];
    EXPECT_DOUBLE_EQ(out[j].mrr, single->mrr) << "k=" << ks[j];
  }
  // k = 20: hits at ranks 3, 5, 7 of 4 relevant.
  EXPECT_NEAR(out[0].map, (1.0 / 3 + 2.0 / 5 + 3.0 / 7) / 4, kTol);
  EXPECT_NEAR(out[0].ndcg,
              (InvLog2(3) + InvLog2(5) + InvLog2(7)) / (1 + InvLog2(2) + InvLog2(3) + InvLog2(4)),
              kTol);
}

// Ties in score go to the smaller item index (models::TopK, the ranking Recommend
// uses); metrics then see that order.
TEST(RankingMetricsTest, TiedScoresRankTheSmallerIndexFirst) {
  const std::vector<float> scores = {0.5f, 0.9f, 0.5f, 0.9f, 0.1f};
  models::RankedItems top;
  models::TopK(scores.data(), scores.size(), 3, top);
  ASSERT_EQ(top.items, (Items{1, 3, 0}));
  const Items relevant = {0, 2};
  // Item 0 wins the tie with item 2, so it is the hit at rank 3.
  EXPECT_NEAR(*NdcgAtK(top.items, relevant, 3), InvLog2(3) / (1 + InvLog2(2)), kTol);
  EXPECT_NEAR(*ReciprocalRankAtK(top.items, relevant, 3), 1.0 / 3, kTol);
  EXPECT_NEAR(*PrecisionAtK(top.items, relevant, 2), 0.0, kTol);
}

TEST(AucTest, HandComputedWithTiesCountingHalf) {
  // 0.9 beats all three negatives (3); 0.3 beats 0.1 (1), ties 0.3 (1/2), loses to 0.5.
  const std::vector<float> positives = {0.9f, 0.3f};
  const std::vector<float> negatives = {0.5f, 0.1f, 0.3f};
  EXPECT_NEAR(*Auc(positives, negatives), 4.5 / 6, kTol);
  // All tied: 1/2 (no information), whatever the item order.
  EXPECT_NEAR(*Auc(std::vector<float>{1, 1}, std::vector<float>{1, 1, 1}), 0.5, kTol);
  // Perfect and reversed.
  EXPECT_NEAR(*Auc(std::vector<float>{3}, std::vector<float>{1, 2}), 1.0, kTol);
  EXPECT_NEAR(*Auc(std::vector<float>{0}, std::vector<float>{1, 2}), 0.0, kTol);
}

TEST(AucTest, NaNCountsAsMinusInfinityAndEmptySidesAreUndefined) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NEAR(*Auc(std::vector<float>{nan}, std::vector<float>{-inf}), 0.5, kTol);
  EXPECT_NEAR(*Auc(std::vector<float>{-inf}, std::vector<float>{0.0f, nan}), 0.25, kTol);
  EXPECT_FALSE(Auc({}, std::vector<float>{1}).has_value());
  EXPECT_FALSE(Auc(std::vector<float>{1}, {}).has_value());
}

// RowAuc (dense row + masking) equals Auc on the explicit positive / negative lists,
// on both of its paths (few and many positives), with ties, NaN and a relevant item
// that is also excluded.
TEST(AucTest, RowAucMatchesExplicitLists) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Rng rng(3);
  for (std::size_t n_relevant : {1u, 5u, 31u, 40u, 200u}) {
    const std::size_t n_items = 500;
    std::vector<float> scores(n_items);
    for (auto& score : scores) score = static_cast<float>(rng.Below(20));  // many ties
    scores[7] = nan;
    scores[8] = -inf;
    Items excluded, relevant;
    for (ItemIndex item = 0; item < n_items; ++item) {
      if (item % 11 == 3) excluded.push_back(item);
    }
    for (ItemIndex item = 1; relevant.size() < n_relevant; item += 2) relevant.push_back(item);
    relevant.insert(std::lower_bound(relevant.begin(), relevant.end(), 3), 3);  // also excluded
    relevant.erase(std::unique(relevant.begin(), relevant.end()), relevant.end());
    std::vector<float> positives, negatives;
    for (ItemIndex item = 0; item < n_items; ++item) {
      bool is_excluded = std::binary_search(excluded.begin(), excluded.end(), item);
      bool is_relevant = std::binary_search(relevant.begin(), relevant.end(), item);
      if (is_relevant) {
        positives.push_back(is_excluded ? -inf : scores[item]);
      } else if (!is_excluded) {
        negatives.push_back(scores[item]);
      }
    }
    auto expected = Auc(positives, negatives);
    auto actual = RowAuc(scores, excluded, relevant);
    ASSERT_TRUE(actual.has_value());
    EXPECT_NEAR(*actual, *expected, 1e-12) << n_relevant << " relevant";
  }
  // Hand case: scores [3 1 2 0], item 1 excluded, relevant {2}: negatives 3 and 0.
  const std::vector<float> row = {3, 1, 2, 0};
  EXPECT_NEAR(*RowAuc(row, Items{1}, Items{2}), 0.5, kTol);
  EXPECT_FALSE(RowAuc(row, Items{0, 1, 3}, Items{2}).has_value());  // no negative
  EXPECT_FALSE(RowAuc(row, Items{1}, Items{}).has_value());
}

TEST(NoveltyTest, MeanSelfInformation) {
  const std::vector<std::uint32_t> popularity = {4, 2, 1, 0};  // 4 training users
  const Items ranked = {0, 1, 2, 3};
  // -log2(4/4) = 0, -log2(2/4) = 1, -log2(1/4) = 2.
  EXPECT_NEAR(*NoveltyAtK(ranked, 3, popularity, 4), 1.0, kTol);
  // An item without training users counts as popularity 1 (2 bits here).
  EXPECT_NEAR(*NoveltyAtK(ranked, 4, popularity, 4), 5.0 / 4, kTol);
  EXPECT_NEAR(*NoveltyAtK(ranked, 10, popularity, 4), 5.0 / 4, kTol);  // k beyond the list
  EXPECT_FALSE(NoveltyAtK({}, 3, popularity, 4).has_value());
}

TEST(DiversityTest, MeanPairwiseJaccardDistance) {
  // item 0 {0, 1}, item 1 {1}, item 2 {2}, item 3 no categories.
  const std::vector<std::vector<std::uint32_t>> categories = {{0, 1}, {1}, {2}, {}};
  const Items ranked = {0, 1, 2, 3};
  // Pairs (0,1): 1 - 1/2; (0,2): 1; (1,2): 1. Pairs with item 3 are left out.
  EXPECT_NEAR(*IntraListDiversityAtK(ranked, 4, categories), 2.5 / 3, kTol);
  EXPECT_NEAR(*IntraListDiversityAtK(ranked, 2, categories), 0.5, kTol);
  EXPECT_FALSE(IntraListDiversityAtK(ranked, 1, categories).has_value());  // no pair
  EXPECT_FALSE(IntraListDiversityAtK(Items{0, 3}, 2, categories).has_value());
  // Identical category sets: distance 0.
  EXPECT_NEAR(*IntraListDiversityAtK(Items{1, 1}, 2, categories), 0.0, kTol);
}

TEST(RatingErrorTest, RmseAndMae) {
  const std::vector<float> predictions = {3, 4, 5};
  const std::vector<float> truth = {4, 4, 3};
  EXPECT_NEAR(*Rmse(predictions, truth), std::sqrt(5.0 / 3), kTol);
  EXPECT_NEAR(*Mae(predictions, truth), 1.0, kTol);
  EXPECT_FALSE(Rmse({}, {}).has_value());
  EXPECT_FALSE(Mae({}, {}).has_value());
}

TEST(CoverageTest, DistinctItemsAtEachCutoff) {
  CoverageAccumulator coverage(10);
  coverage.Add(Items{0, 1, 2});
  coverage.Add(Items{2, 3, 4});
  EXPECT_EQ(coverage.DistinctAtK(1), 2u);  // {0, 2}
  EXPECT_NEAR(coverage.CoverageAtK(1), 0.2, kTol);
  EXPECT_NEAR(coverage.CoverageAtK(2), 0.4, kTol);  // {0, 1, 2, 3}
  EXPECT_NEAR(coverage.CoverageAtK(3), 0.5, kTol);
  EXPECT_NEAR(coverage.CoverageAtK(10), 0.5, kTol);
  CoverageAccumulator other(10);
  other.Add(Items{9});
  coverage.Merge(other);
  EXPECT_NEAR(coverage.CoverageAtK(1), 0.3, kTol);
  EXPECT_EQ(CoverageAccumulator(0).CoverageAtK(5), 0.0);
}

// ---- statistics ---------------------------------------------------------------------

TEST(StatsTest, RegularizedIncompleteBetaKnownValues) {
  // I_x(1, 1) = x; I_0.4(2, 3) = sum_{j=2..4} C(4, j) 0.4^j 0.6^(4-j) = 0.5248.
  EXPECT_NEAR(RegularizedIncompleteBeta(1, 1, 0.3), 0.3, 1e-12);
  EXPECT_NEAR(RegularizedIncompleteBeta(2, 3, 0.4), 0.5248, 1e-12);
  EXPECT_NEAR(RegularizedIncompleteBeta(3, 2, 0.6), 1 - 0.5248, 1e-12);  // symmetry
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 0), 0);
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 1), 1);
  EXPECT_TRUE(std::isnan(RegularizedIncompleteBeta(-1, 3, 0.5)));
}

TEST(StatsTest, StudentTPValueMatchesClosedForms) {
  // df = 1 (Cauchy): p = 1 - 2 atan(|t|) / pi; df = 2: p = 1 - |t| / sqrt(t^2 + 2).
  EXPECT_NEAR(StudentTTwoSidedPValue(1.0, 1), 0.5, 1e-12);
  EXPECT_NEAR(StudentTTwoSidedPValue(-3.0, 1), 1 - 2 * std::atan(3.0) / std::numbers::pi, 1e-12);
  EXPECT_NEAR(StudentTTwoSidedPValue(2.0, 2), 1 - 2 / std::sqrt(6.0), 1e-12);
  EXPECT_NEAR(StudentTTwoSidedPValue(0.0, 7), 1.0, 1e-12);
  // Large df approaches the normal: |t| = 1.959964 gives 0.05.
  EXPECT_NEAR(StudentTTwoSidedPValue(1.959964, 1e6), 0.05, 1e-5);
  // A table value: t = 2.228 at df = 10 is the two-sided 5% point.
  EXPECT_NEAR(StudentTTwoSidedPValue(2.228139, 10), 0.05, 1e-6);
}

TEST(StatsTest, SortedQuantileInterpolates) {
  const std::vector<double> sorted = {1, 2, 3, 4};
  EXPECT_NEAR(SortedQuantile(sorted, 0.5), 2.5, kTol);
  EXPECT_NEAR(SortedQuantile(sorted, 0.025), 1.075, kTol);
  EXPECT_NEAR(SortedQuantile(sorted, 1.0), 4.0, kTol);
  EXPECT_TRUE(std::isnan(SortedQuantile({}, 0.5)));
}

TEST(StatsTest, PairedTTest) {
  // d = {1, 2, 3}: mean 2, sd 1, t = 2 sqrt(3), df 2.
  const std::vector<double> differences = {1, 2, 3};
  TTestResult result = PairedTTest(differences);
  const double t = 2 * std::sqrt(3.0);
  EXPECT_NEAR(result.mean, 2, kTol);
  EXPECT_NEAR(result.t, t, 1e-12);
  EXPECT_NEAR(result.df, 2, kTol);
  EXPECT_NEAR(result.p_value, 1 - t / std::sqrt(t * t + 2), 1e-12);
  EXPECT_EQ(PairedTTest(std::vector<double>{0, 0, 0}).p_value, 1);
  EXPECT_EQ(PairedTTest(std::vector<double>{0.5, 0.5}).p_value, 0);
  EXPECT_EQ(PairedTTest(std::vector<double>{0.5}).p_value, 1);
}

TEST(StatsTest, BootstrapIsSeededThreadIndependentAndBracketsTheMean) {
  std::vector<double> rows;  // two columns: x and 2x
  for (int k = 0; k < 200; ++k) {
    double x = (k * 37 % 101) / 100.0;
    rows.push_back(x);
    rows.push_back(2 * x);
  }
  auto one = BootstrapMeanIntervals(rows, 200, 2, 500, 7, 1);
  auto two = BootstrapMeanIntervals(rows, 200, 2, 500, 7, 2);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one, two);
  double mean = 0;
  for (int k = 0; k < 200; ++k) mean += rows[2 * k] / 200;
  EXPECT_LT(one[0].first, mean);
  EXPECT_GT(one[0].second, mean);
  // The same resamples for both columns: the second interval is twice the first.
  EXPECT_NEAR(one[1].first, 2 * one[0].first, 1e-12);
  EXPECT_NEAR(one[1].second, 2 * one[0].second, 1e-12);
  // Width about 2 * 1.96 * sd / sqrt(n) (sd of x is ~0.29).
  EXPECT_NEAR(one[0].second - one[0].first, 2 * 1.96 * 0.29 / std::sqrt(200.0), 0.02);
  auto other_seed = BootstrapMeanIntervals(rows, 200, 2, 500, 8, 1);
  EXPECT_NE(one, other_seed);
  const std::vector<double> constant(50, 0.25);
  auto flat = BootstrapMeanIntervals(constant, 50, 1, 100, 1, 2);
  EXPECT_DOUBLE_EQ(flat[0].first, 0.25);
  EXPECT_DOUBLE_EQ(flat[0].second, 0.25);
  EXPECT_TRUE(std::isnan(BootstrapMeanIntervals({}, 0, 1, 100, 1, 1)[0].first));
}

}  // namespace
}  // namespace recforge::eval
