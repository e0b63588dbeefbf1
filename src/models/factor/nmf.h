// `nmf`: non-negative matrix factorisation of explicit ratings, fitted on the observed
// ratings only (Lee & Seung 2001; coordinate descent as in Hsieh & Dhillon 2011;
// Surprise's NMF uses the multiplicative variant).
//
// Model: r(u, i) = p_u . q_i with p, q >= 0 (no biases: the factors are meant to be
// read as additive parts). An epoch updates every user with the items fixed, then every
// item with the new users fixed; each row minimises its share of
//   sum over its ratings (r - p . q)^2 + reg * n * |p|^2      (n = the row's ratings)
// under p >= 0, by one of two solvers:
//   cd  (default) one sweep of cyclic coordinate descent: each factor in turn is set to
//       its exact clipped minimiser, residuals kept current; the objective never rises;
//   mu  the multiplicative update p_f *= sum q_f r / (sum q_f r^ + n reg p_f), which
//       keeps signs by construction but needs several times more epochs.
// Start: "random Acol" (Langville et al. 2006): item factor f is the mean rating row
// of two random users (scaled), users are then solved first; a dense random start
// would never separate groups of users, as unobserved pairs exert no pull. Users and
// items without training ratings get zero vectors. Deterministic for a seed, whatever
// the thread count (each half-step reads only the other side). Loss per epoch:
// training RMSE (metrics train_rmse / train_mae).
//
// Cost per epoch: O(nnz * factors), in parallel over users, then items.
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <vector>

#include "factor_model.h"

namespace recforge::models {

class NmfModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit NmfModel(ParamValues params) : FactorModel(std::move(params)) {}

  // Predictions clipped to the training rating range; the training mean for unknown
  // users / items and those without training data (a zero vector would predict 0).
  void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                    float* out) const override;
  bool PredictsRatings() const override { return true; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // Fold-in: the non-negative least-squares user vector for the history with the item
  // side fixed and the penalty reg_user * n (the subproblem the user update solves), by
  // projected coordinate descent. O(n k^2 + sweeps k^2).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: f32 min rating | f32 max rating | f32 mean rating.
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  float min_rating_ = 0.0f;
  // Data-driven start of both factor matrices (see the .cc).
  void InitFromUsers(const CsrMatrix& ratings, double mean, bool coordinate_descent,
                     std::uint64_t seed);

  float max_rating_ = 0.0f;
  float mean_rating_ = 0.0f;  // PredictPairs fallback
};

}  // namespace recforge::models
