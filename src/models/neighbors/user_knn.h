// `userknn`: user-based nearest neighbours (Resnick et al. 1994; Herlocker et al.
// 1999). Fit finds, for every user, the `neighbors` most similar other users under the
// chosen similarity (similarity.h) with the sparse multi-threaded kernel, from the user
// x item matrix. A user's score for item j is the similarity-weighted vote of its
// neighbours:
//   score(j) = sum over neighbours v of sim(u, v) * x_vj
// (x = 1 when binary, else the stored rating). Users with no history (or index >=
// n_users()) score all zeros.
//
// Fold-in (ScoreHistory): the ad-hoc history is weighted like a training user, compared
// with every training user (they all remain candidates) and scored from its top
// `neighbors`; for a history equal to a user's training row this matches ScoreUsers
// of a model in which that user had no rows (a user is never its own neighbour).
//
// The votes come from seen() (the training matrix, stored in the model file); the model
// keeps a weighted copy of it and its transpose for fold-in, rebuilt by LoadState.
// Cost: fit O(sum over items of |users|^2) accumulations on ctx.threads threads; memory
// ~2x the interaction matrix + 8 bytes per kept pair. Scoring one user:
// O(sum of the neighbours' row lengths + n_items); fold-in adds one sparse pass over the
// users sharing an item with the history. Thread-safety: const methods may be called
// concurrently; Fit and LoadState need exclusive access.
#pragma once

#include "recforge/models/recommender.h"
#include "similarity.h"

namespace recforge::models {

class UserKnn final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit UserKnn(ParamValues params);

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                    float* out) const override;
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  // Row u: user u's neighbours, best first, with their similarity (n_users x n_users).
  const CsrMatrix& neighbors() const { return neighbors_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;

 private:
  // Sums the neighbours' votes into out[0, n_items).
  void Vote(std::span<const std::uint32_t> users, std::span<const float> similarities,
            float* out) const;

  SimilarityOptions options_;
  std::size_t k_;
  CsrMatrix neighbors_;
  RowSimilarity index_;  // over seen(), for fold-in
};

}  // namespace recforge::models
