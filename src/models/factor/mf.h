// `mf`: biased matrix factorisation for explicit ratings, trained by parallel SGD
// (Funk-SVD as in Koren, Bell & Volinsky 2009; block-parallel SGD as in LibMF,
// Chin et al. 2015). Scoring, similar items and the state I/O come from FactorModel;
// this header also holds two helpers shared by the SGD families (mf, bpr, nmf).
//
// Model: r(u, i) = mu + b_u + b_i + (p_u + z_u) . q_i, mu the training mean, with the
// SVD++ implicit term z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j over the user's training
// items (Koren 2008; implicit=false drops it). Each epoch visits every training rating
// once, in a random order per block of the BlockScheduler grid:
//   e = r - r(u, i);  b_u += lr (e - bias_reg b_u);  b_i += lr (e - bias_reg b_i)
//   p_u += lr (e q_i - reg p_u);  q_i += lr (e (p_u + z_u) - reg q_i);  g_u += e q_i
// with lr = lr0 * lr_decay^(epoch - 1); then, once per epoch and in parallel over items,
//   y_j += implicit_lr lr (sum_{u in N(j)} |N(u)|^-1/2 g_u - implicit_reg |N(j)| y_j)
// and z is recomputed (docs/models/sgd.md: why per epoch). The user rows of the factor
// model hold p_u + z_u, so scoring and the file format are those of plain MF. Same
// seed + same bins => same model, whatever the thread count (bins=0 picks 8 blocks per
// side for up to 4 threads).
// Factors start as rows of length init_std * sqrt(factors) in uniformly random
// directions (like N(0, init_std^2) entries), biases at 0, mu at the training mean;
// users and items without training ratings keep zero vectors and biases, so they
// score like unknown ones (mu + b_u, or mu + b_i).
// The per-epoch loss reported to the TrainCallback is the training RMSE after the epoch
// (an extra O(nnz * factors) pass), also in metrics["train_rmse"] and ["train_mae"].
#pragma once

#include <cstdint>
#include <vector>

#include "factor_model.h"
#include "recforge/models/recommender.h"

namespace recforge::models {

class MfModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit MfModel(ParamValues params) : FactorModel(std::move(params)) {}

  // Predictions clipped to the training rating range (ScoreUsers is not clipped, so
  // rankings keep their order). Unknown users / items contribute zero vectors and biases.
  void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                    float* out) const override;
  bool PredictsRatings() const override { return true; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // Fold-in: the ridge solution for (p, b_u) with the item side fixed, regularised like
  // the SGD objective (reg * n and bias_reg * n for n ratings), O(n k^2 + k^3).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: f32 min rating | f32 max rating (the clipping range).
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  float min_rating_ = 0.0f;
  float max_rating_ = 0.0f;
};

// Zeroes the rows (k floats each) of `factors` whose row in `matrix` is empty, so
// users / items without training data score exactly like unknown ones.
void ZeroRowsWithoutData(std::vector<float>& factors, std::size_t k, const CsrMatrix& matrix);

// Root-mean-square and mean absolute error of `model` on the ratings of a CSR matrix
// (users beyond the model count as unknown users), in parallel over users; the sums
// are taken in user order, so the result does not depend on the thread count.
struct RatingErrors {
  double rmse = 0;
  double mae = 0;
  std::size_t count = 0;
};
RatingErrors TrainingErrors(const Recommender& model, const CsrMatrix& ratings, int threads);

}  // namespace recforge::models
