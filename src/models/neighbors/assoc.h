// `assoc`: association rules over "baskets" = users' training item sets (Agrawal et
// al. 1993), the "frequently rated together" recommender. For items a, b let
// c(a, b) be the number of users having both, c(a) the users having a, and N the
// users with at least one item. A rule a -> b exists when c(a, b) >= min_support and
// its strength is, by `metric`:
//   support     c(a, b) / N
//   confidence  c(a, b) / c(a)              (P(b | a))
//   lift        c(a, b) * N / (c(a) c(b))   (confidence relative to b's base rate)
// Each antecedent keeps its `rules` strongest rules (ties to the smaller item index).
// A user with history H scores item b by aggregating the rules a -> b over a in H:
// the sum of strengths (aggregate=sum) or the strongest one (aggregate=max). Rating
// values are ignored. Users with no history (or index >= n_users()) score all zeros;
// ScoreHistory is the same computation on an ad-hoc history. SimilarItems(a) lists
// a's strongest rules.
//
// Cost: fit O(sum over users of |items|^2) integer accumulations (the co-occurrence
// kernel of similarity.h) on ctx.threads threads, memory 8 bytes per kept rule plus
// per-thread 8 bytes per item (and, with at most 65536 items, a temporary 2 bytes per
// interaction). Scoring one user: O(|H| * rules + n_items).
// Thread-safety: const methods may be called concurrently; Fit and LoadState need
// exclusive access.
#pragma once

#include "recforge/models/recommender.h"

namespace recforge::models {

class AssocRules final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit AssocRules(ParamValues params);

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                    float* out) const override;
  RankedItems SimilarItems(ItemIndex item, std::size_t k) const override;
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  // Row a: the rules a -> b, strongest first, valued by the metric (n_items x n_items).
  const CsrMatrix& rules() const { return rules_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;

 private:
  void ScoreRow(std::span<const ItemIndex> items, float* out) const;

  bool max_aggregate_;
  CsrMatrix rules_;
};

}  // namespace recforge::models
