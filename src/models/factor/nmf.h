// `nmf`: non-negative matrix factorisation of explicit ratings (Lee & Seung 2001,
// restricted to the observed ratings as in Luo et al. 2014 / Surprise's NMF).
//
// Model: r(u, i) = p_u . q_i with p, q >= 0 (no biases: the factors are meant to be
// read as additive parts). Each epoch applies the multiplicative updates, first to
// every user with the items fixed, then to every item with the new users fixed:
//   p_uf *= sum_i q_if r_ui / (sum_i q_if r^_ui + n_u reg_user p_uf)
//   q_if *= sum_u p_uf r_ui / (sum_u p_uf r^_ui + n_i reg_item q_if)
// Factors start uniform in [0, 2 sqrt(mean rating / factors)], so the first
// predictions average the mean rating, and never turn negative (every term is >= 0).
// Users and items without training ratings get zero vectors.
// Deterministic for a seed (no ordering effects: each half-step reads only the other
// side). Loss per epoch: training RMSE (metrics train_rmse / train_mae).
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
  void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items, float* out) const override;
  bool PredictsRatings() const override { return true; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;
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
  float max_rating_ = 0.0f;
  float mean_rating_ = 0.0f;  // PredictPairs fallback
};

}  // namespace recforge::models
