// `itemknn`: item-based nearest neighbours (Sarwar et al. 2001; Deshpande & Karypis
// 2004). Fit computes, for every item, its `neighbors` most similar items under the
// chosen similarity (similarity.h: cosine, jaccard, or cosine of bm25 / tfidf weighted
// vectors, with shrinkage) from the item x user interaction matrix, with the sparse
// multi-threaded kernel of similarity.h; the dense item x item matrix never exists.
//
// Scoring a user with history H (items with values x_i: 1 when binary, else the
// stored rating) sums similarities into the candidate items:
//   neighborhood=history: score(j) = sum over i in H with j among i's neighbours of
//                         x_i * sim(i, j)  (each history item spreads to its K nearest)
//   neighborhood=target:  score(j) = sum over i in H that are among j's neighbours of
//                         x_i * sim(j, i)  (each candidate looks at its own K nearest)
// Users with no history (or index >= n_users()) score all zeros. ScoreHistory is the
// same computation on an ad-hoc history, so it equals ScoreUsers for the same items
// and values (the history is read from seen(), which the model file stores).
//
// Defaults (bm25 on the rating values, 20 neighbours, history) were chosen on ml-100k
// under ../shared/PROTOCOL.md; docs/models.md has the comparison.
//
// Cost: fit O(sum over users of |items|^2) accumulations on ctx.threads threads, memory
// the interaction matrices (not copied for cosine / jaccard) + per thread 8-12 bytes per
// item + 8 bytes per kept pair (twice that with neighborhood=target, which keeps the
// transposed lists too) + with at most 65536 items a temporary 2 bytes per interaction.
// Scoring one user: O(|H| * neighbors + n_items). Thread-safety: const methods may be
// called concurrently; Fit and LoadState need exclusive access.
#pragma once

#include "recforge/models/recommender.h"
#include "similarity.h"

namespace recforge::models {

class ItemKnn final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit ItemKnn(ParamValues params);

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                    float* out) const override;
  // The item's stored neighbours (at most `neighbors`), best first.
  RankedItems SimilarItems(ItemIndex item, std::size_t k) const override;
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  // Row i: item i's neighbours, best first, with their similarity (n_items x n_items).
  const CsrMatrix& neighbors() const { return neighbors_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;

 private:
  // Scores one history into out[0, n_items).
  void ScoreRow(std::span<const ItemIndex> items, std::span<const float> values, float* out) const;
  // Derives the matrix ScoreRow scatters from (neighbors_ or its transpose).
  void PrepareScoring();

  SimilarityOptions options_;
  std::size_t k_;
  bool target_;  // neighborhood=target
  CsrMatrix neighbors_;
  // neighborhood=target: neighbors_ transposed (row i: the items that have i as a
  // neighbour, with that similarity); empty otherwise.
  CsrMatrix transposed_;
};

}  // namespace recforge::models
