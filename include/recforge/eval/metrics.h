// Per-user and per-list metric functions (docs/evaluation.md gives the definitions).
//
// Conventions shared by every function here:
//   - `ranked` is one recommendation list, best first, exactly as Recommend returns it
//     (ties already broken towards the smaller item index). It may be shorter than k
//     (few unseen items, or -inf scores dropped); missing positions are misses.
//   - `relevant` is the user's set of relevant items: sorted ascending, no duplicates.
//   - Relevance is binary. A cut-off k counts positions 1..k (1-based ranks).
//   - A metric that is undefined for this input returns std::nullopt instead of a
//     number: every accuracy metric for an empty relevant set (the evaluator skips
//     such users and counts them), AUC without positives or negatives, novelty of an
//     empty list, diversity of a list without a pair of items with categories, RMSE
//     and MAE of no rows.
// All functions are pure and thread-safe; costs are O(min(k, |ranked|) log |relevant|)
// unless stated.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "recforge/core/types.h"

namespace recforge::eval {

// hits / k (k, not the list length: a short list is not rewarded).
std::optional<double> PrecisionAtK(std::span<const ItemIndex> ranked,
                                   std::span<const ItemIndex> relevant, std::size_t k);
// hits / |relevant|.
std::optional<double> RecallAtK(std::span<const ItemIndex> ranked,
                                std::span<const ItemIndex> relevant, std::size_t k);
// DCG / IDCG with binary gain: DCG = sum over hits at rank r <= k of 1 / log2(r + 1),
// IDCG = sum over r = 1..min(k, |relevant|) of 1 / log2(r + 1).
std::optional<double> NdcgAtK(std::span<const ItemIndex> ranked,
                              std::span<const ItemIndex> relevant, std::size_t k);
// Average precision: sum over hits at rank r <= k of (hits within the first r) / r,
// divided by min(k, |relevant|).
std::optional<double> AveragePrecisionAtK(std::span<const ItemIndex> ranked,
                                          std::span<const ItemIndex> relevant, std::size_t k);
// 1 / rank of the first hit at rank <= k; 0 without a hit.
std::optional<double> ReciprocalRankAtK(std::span<const ItemIndex> ranked,
                                        std::span<const ItemIndex> relevant, std::size_t k);
// 1 if any of the first k items is relevant, else 0.
std::optional<double> HitRateAtK(std::span<const ItemIndex> ranked,
                                 std::span<const ItemIndex> relevant, std::size_t k);

// The six accuracy metrics above at one cut-off, computed in one pass.
struct RankingValues {
  double precision = 0;
  double recall = 0;
  double ndcg = 0;
  double map = 0;  // average precision of this user; its mean over users is MAP
  double mrr = 0;  // reciprocal rank of this user; its mean over users is MRR
  double hit_rate = 0;
};
std::optional<RankingValues> RankingMetricsAtK(std::span<const ItemIndex> ranked,
                                               std::span<const ItemIndex> relevant, std::size_t k);

// The same at several cut-offs `ks` (any order) from one scan of the list: out[j] is
// the value at ks[j]. Returns false (out untouched) when `relevant` is empty. This is
// what the evaluator uses; O(max(ks) log |relevant| + |ks|).
bool RankingMetricsAtKs(std::span<const ItemIndex> ranked, std::span<const ItemIndex> relevant,
                        std::span<const std::size_t> ks, std::vector<RankingValues>& out);

// Area under the ROC curve of one user: the fraction of (positive, negative) pairs
// whose positive scores strictly higher, a tie counting 1/2 (Mann-Whitney U / (P N)).
// Callers map masked items to -infinity first; a NaN score is treated as -infinity.
// nullopt when either side is empty. Cost O((P + N) log P).
std::optional<double> Auc(std::span<const float> positive_scores,
                          std::span<const float> negative_scores);

// The same AUC from one dense row of scores over the whole catalog, with Recommend's
// masking: `excluded` items (the user's training items; sorted, distinct) are not
// ranked, so they are neither negatives nor - when also relevant - rankable: such a
// positive scores -infinity. Every item that is neither excluded nor in `relevant`
// (sorted, distinct) is a negative. Equals Auc(positive scores, negative scores)
// without materialising the negatives: for up to 32 positives, one branch-free
// counting pass over the row per positive (O(n_items * P), vectorised), beyond that
// O(n_items log P). nullopt without positives or negatives.
std::optional<double> RowAuc(std::span<const float> scores, std::span<const ItemIndex> excluded,
                             std::span<const ItemIndex> relevant);

// Mean self-information of the first k items: mean of -log2(popularity[i] / n_users)
// where popularity[i] is the number of training users who interacted with item i. An
// item without training interactions counts as popularity 1 (so the value stays
// finite: the rarest possible item). nullopt for an empty list or n_users == 0.
std::optional<double> NoveltyAtK(std::span<const ItemIndex> ranked, std::size_t k,
                                 std::span<const std::uint32_t> popularity, std::size_t n_users);

// Intra-list diversity of the first k items by category: the mean over item pairs of
// 1 - |C_i ∩ C_j| / |C_i ∪ C_j|, where C_i = categories[i] (sorted category ids, no
// duplicates). Pairs where either item has no category are left out (missing metadata
// says nothing about similarity); nullopt when no pair is left. Cost O(k^2 |C|).
std::optional<double> IntraListDiversityAtK(std::span<const ItemIndex> ranked, std::size_t k,
                                            std::span<const std::vector<std::uint32_t>> categories);

// Root mean squared error and mean absolute error of predictions against truth (same
// length); nullopt when empty. Accumulated in double.
std::optional<double> Rmse(std::span<const float> predictions, std::span<const float> truth);
std::optional<double> Mae(std::span<const float> predictions, std::span<const float> truth);

// Catalog coverage at several cut-offs: the number of distinct items that appear at
// rank <= k in any list added, divided by n_items. Not thread-safe (one per thread, or
// add lists from one thread); memory 4 bytes per item.
class CoverageAccumulator {
 public:
  explicit CoverageAccumulator(std::size_t n_items);
  void Add(std::span<const ItemIndex> ranked);  // items >= n_items are ignored
  // Folds another accumulator (over the same catalog) into this one.
  void Merge(const CoverageAccumulator& other);
  double CoverageAtK(std::size_t k) const;  // 0 for an empty catalog
  std::size_t DistinctAtK(std::size_t k) const;

 private:
  std::vector<std::uint32_t> best_rank_;  // 1-based best rank of each item; 0 = never
};

}  // namespace recforge::eval
