#include "recforge/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace recforge::eval {
namespace {

bool IsRelevant(std::span<const ItemIndex> relevant, ItemIndex item) {
  return std::binary_search(relevant.begin(), relevant.end(), item);
}

// 1 / log2(rank + 1) for a 1-based rank.
double Discount(std::size_t rank) { return 1.0 / std::log2(static_cast<double>(rank) + 1.0); }

double IdealDcg(std::size_t n) {
  double ideal = 0;
  for (std::size_t rank = 1; rank <= n; ++rank) ideal += Discount(rank);
  return ideal;
}

std::optional<double> Field(std::span<const ItemIndex> ranked, std::span<const ItemIndex> relevant,
                            std::size_t k, double RankingValues::*field) {
  auto values = RankingMetricsAtK(ranked, relevant, k);
  if (!values) return std::nullopt;
  return (*values).*field;
}

}  // namespace

bool RankingMetricsAtKs(std::span<const ItemIndex> ranked, std::span<const ItemIndex> relevant,
                        std::span<const std::size_t> ks, std::vector<RankingValues>& out) {
  if (relevant.empty()) return false;
  out.assign(ks.size(), RankingValues{});
  std::size_t max_k = 0;
  for (std::size_t k : ks) max_k = std::max(max_k, k);
  const std::size_t depth = std::min(max_k, ranked.size());
  const double n_relevant = static_cast<double>(relevant.size());
  // One scan; each cut-off reads the running sums when the scan passes it. Sums are
  // accumulated in rank order, so values equal those of a scan truncated at k.
  std::size_t hits = 0;
  double dcg = 0, precision_sum = 0;
  std::size_t first_hit = 0;  // 1-based; 0 = none yet
  auto settle = [&](std::size_t rank) {
    for (std::size_t j = 0; j < ks.size(); ++j) {
      // A cut-off beyond the list is settled at the end of the list (rank == depth);
      // k = 0 keeps all zeros.
      if (ks[j] == 0) continue;
      if (ks[j] != rank && !(rank == depth && ks[j] > depth)) continue;
      const double k = static_cast<double>(ks[j]);
      RankingValues& values = out[j];
      values.precision = static_cast<double>(hits) / k;
      values.recall = static_cast<double>(hits) / n_relevant;
      values.ndcg = dcg / IdealDcg(std::min(ks[j], relevant.size()));
      values.map = precision_sum / static_cast<double>(std::min(ks[j], relevant.size()));
      values.mrr = first_hit > 0 ? 1.0 / static_cast<double>(first_hit) : 0.0;
      values.hit_rate = hits > 0 ? 1.0 : 0.0;
    }
  };
  if (depth == 0) settle(0);
  for (std::size_t rank = 1; rank <= depth; ++rank) {
    if (IsRelevant(relevant, ranked[rank - 1])) {
      ++hits;
      dcg += Discount(rank);
      precision_sum += static_cast<double>(hits) / static_cast<double>(rank);
      if (first_hit == 0) first_hit = rank;
    }
    settle(rank);
  }
  return true;
}

std::optional<RankingValues> RankingMetricsAtK(std::span<const ItemIndex> ranked,
                                               std::span<const ItemIndex> relevant, std::size_t k) {
  std::vector<RankingValues> out;
  const std::size_t ks[1] = {k};
  if (!RankingMetricsAtKs(ranked, relevant, ks, out)) return std::nullopt;
  return out[0];
}

std::optional<double> PrecisionAtK(std::span<const ItemIndex> ranked,
                                   std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::precision);
}
std::optional<double> RecallAtK(std::span<const ItemIndex> ranked,
                                std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::recall);
}
std::optional<double> NdcgAtK(std::span<const ItemIndex> ranked,
                              std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::ndcg);
}
std::optional<double> AveragePrecisionAtK(std::span<const ItemIndex> ranked,
                                          std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::map);
}
std::optional<double> ReciprocalRankAtK(std::span<const ItemIndex> ranked,
                                        std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::mrr);
}
std::optional<double> HitRateAtK(std::span<const ItemIndex> ranked,
                                 std::span<const ItemIndex> relevant, std::size_t k) {
  return Field(ranked, relevant, k, &RankingValues::hit_rate);
}

std::optional<double> Auc(std::span<const float> positive_scores,
                          std::span<const float> negative_scores) {
  if (positive_scores.empty() || negative_scores.empty()) return std::nullopt;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  auto clean = [](float score) { return std::isnan(score) ? kNegInf : score; };
  std::vector<float> positives(positive_scores.size());
  std::transform(positive_scores.begin(), positive_scores.end(), positives.begin(), clean);
  std::sort(positives.begin(), positives.end());
  // For each negative: positives above it count 1, positives equal to it 1/2. Scanning
  // the negatives against the (few) sorted positives keeps this O(N log P).
  double correct = 0;
  for (float raw : negative_scores) {
    const float score = clean(raw);
    auto low = std::lower_bound(positives.begin(), positives.end(), score);
    auto high = std::upper_bound(low, positives.end(), score);
    correct += static_cast<double>(positives.end() - high) + 0.5 * static_cast<double>(high - low);
  }
  return correct /
         (static_cast<double>(positives.size()) * static_cast<double>(negative_scores.size()));
}

std::optional<double> RowAuc(std::span<const float> scores, std::span<const ItemIndex> excluded,
                             std::span<const ItemIndex> relevant) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  auto clean = [](float score) { return std::isnan(score) ? kNegInf : score; };
  auto is_excluded = [&](ItemIndex item) {
    return std::binary_search(excluded.begin(), excluded.end(), item);
  };
  const std::size_t n_items = scores.size();
  std::size_t n_removed = 0;  // excluded items plus rankable positives: not negatives
  for (ItemIndex item : excluded) n_removed += item < n_items ? 1 : 0;
  std::vector<float> positives;
  positives.reserve(relevant.size());
  for (ItemIndex item : relevant) {
    if (item >= n_items) continue;
    if (is_excluded(item)) {
      positives.push_back(kNegInf);
    } else {
      positives.push_back(clean(scores[item]));
      ++n_removed;
    }
  }
  if (positives.empty() || n_removed >= n_items) return std::nullopt;
  const double n_negatives = static_cast<double>(n_items - n_removed);

  // 2 x (positives ranked above a negative) + (ties), over every (positive, negative).
  double twice_correct = 0;
  if (positives.size() <= 32) {
    // Count over the whole row (a tight loop the compiler vectorises), then take back
    // the items that are not negatives. NaN compares false, so NaNs are counted apart
    // and treated as -inf.
    std::uint32_t n_nan = 0;
    for (std::size_t item = 0; item < n_items; ++item) n_nan += scores[item] != scores[item];
    for (float positive : positives) {
      std::uint32_t less = 0, equal = 0;
      for (std::size_t item = 0; item < n_items; ++item) {
        less += scores[item] < positive;
        equal += scores[item] == positive;
      }
      if (positive == kNegInf) {
        equal += n_nan;
      } else {
        less += n_nan;
      }
      auto take_back = [&](ItemIndex item) {
        const float score = clean(scores[item]);
        less -= score < positive;
        equal -= score == positive;
      };
      for (ItemIndex item : excluded) {
        if (item < n_items) take_back(item);
      }
      for (ItemIndex item : relevant) {
        if (item < n_items && !is_excluded(item)) take_back(item);
      }
      twice_correct += 2.0 * less + equal;
    }
  } else {
    std::sort(positives.begin(), positives.end());
    auto next_excluded = excluded.begin();
    auto next_relevant = relevant.begin();
    for (std::size_t item = 0; item < n_items; ++item) {
      bool skip = false;
      while (next_excluded != excluded.end() && *next_excluded < item) ++next_excluded;
      while (next_relevant != relevant.end() && *next_relevant < item) ++next_relevant;
      if (next_excluded != excluded.end() && *next_excluded == item) skip = true;
      if (next_relevant != relevant.end() && *next_relevant == item) skip = true;
      if (skip) continue;
      const float score = clean(scores[item]);
      auto low = std::lower_bound(positives.begin(), positives.end(), score);
      auto high = std::upper_bound(low, positives.end(), score);
      twice_correct +=
          2.0 * static_cast<double>(positives.end() - high) + static_cast<double>(high - low);
    }
  }
  return twice_correct / (2.0 * static_cast<double>(positives.size()) * n_negatives);
}

std::optional<double> NoveltyAtK(std::span<const ItemIndex> ranked, std::size_t k,
                                 std::span<const std::uint32_t> popularity, std::size_t n_users) {
  const std::size_t depth = std::min(k, ranked.size());
  if (depth == 0 || n_users == 0) return std::nullopt;
  const double users = static_cast<double>(n_users);
  double sum = 0;
  for (std::size_t rank = 0; rank < depth; ++rank) {
    ItemIndex item = ranked[rank];
    std::uint32_t count = item < popularity.size() ? popularity[item] : 0;
    sum += -std::log2(static_cast<double>(std::max<std::uint32_t>(count, 1)) / users);
  }
  return sum / static_cast<double>(depth);
}

std::optional<double> IntraListDiversityAtK(
    std::span<const ItemIndex> ranked, std::size_t k,
    std::span<const std::vector<std::uint32_t>> categories) {
  const std::size_t depth = std::min(k, ranked.size());
  static const std::vector<std::uint32_t> kNone;
  auto categories_of = [&](ItemIndex item) -> const std::vector<std::uint32_t>& {
    return item < categories.size() ? categories[item] : kNone;
  };
  double sum = 0;
  std::size_t pairs = 0;
  for (std::size_t a = 0; a < depth; ++a) {
    const auto& first = categories_of(ranked[a]);
    if (first.empty()) continue;
    for (std::size_t b = a + 1; b < depth; ++b) {
      const auto& second = categories_of(ranked[b]);
      if (second.empty()) continue;
      // Both sorted: count the intersection by merging.
      std::size_t common = 0;
      auto i = first.begin();
      auto j = second.begin();
      while (i != first.end() && j != second.end()) {
        if (*i < *j) {
          ++i;
        } else if (*j < *i) {
          ++j;
        } else {
          ++common;
          ++i;
          ++j;
        }
      }
      const std::size_t united = first.size() + second.size() - common;
      sum += 1.0 - static_cast<double>(common) / static_cast<double>(united);
      ++pairs;
    }
  }
  if (pairs == 0) return std::nullopt;
  return sum / static_cast<double>(pairs);
}

std::optional<double> Rmse(std::span<const float> predictions, std::span<const float> truth) {
  const std::size_t n = std::min(predictions.size(), truth.size());
  if (n == 0) return std::nullopt;
  double sum = 0;
  for (std::size_t row = 0; row < n; ++row) {
    double error = static_cast<double>(predictions[row]) - static_cast<double>(truth[row]);
    sum += error * error;
  }
  return std::sqrt(sum / static_cast<double>(n));
}

std::optional<double> Mae(std::span<const float> predictions, std::span<const float> truth) {
  const std::size_t n = std::min(predictions.size(), truth.size());
  if (n == 0) return std::nullopt;
  double sum = 0;
  for (std::size_t row = 0; row < n; ++row) {
    sum += std::abs(static_cast<double>(predictions[row]) - static_cast<double>(truth[row]));
  }
  return sum / static_cast<double>(n);
}

CoverageAccumulator::CoverageAccumulator(std::size_t n_items) : best_rank_(n_items, 0) {}

void CoverageAccumulator::Add(std::span<const ItemIndex> ranked) {
  for (std::size_t rank = 1; rank <= ranked.size(); ++rank) {
    ItemIndex item = ranked[rank - 1];
    if (item >= best_rank_.size()) continue;
    std::uint32_t& best = best_rank_[item];
    if (best == 0 || rank < best) best = static_cast<std::uint32_t>(rank);
  }
}

void CoverageAccumulator::Merge(const CoverageAccumulator& other) {
  const std::size_t n = std::min(best_rank_.size(), other.best_rank_.size());
  for (std::size_t item = 0; item < n; ++item) {
    std::uint32_t rank = other.best_rank_[item];
    if (rank != 0 && (best_rank_[item] == 0 || rank < best_rank_[item])) best_rank_[item] = rank;
  }
}

std::size_t CoverageAccumulator::DistinctAtK(std::size_t k) const {
  std::size_t count = 0;
  for (std::uint32_t rank : best_rank_) count += (rank != 0 && rank <= k) ? 1 : 0;
  return count;
}

double CoverageAccumulator::CoverageAtK(std::size_t k) const {
  if (best_rank_.empty()) return 0;
  return static_cast<double>(DistinctAtK(k)) / static_cast<double>(best_rank_.size());
}

}  // namespace recforge::eval
