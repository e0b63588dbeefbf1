// `svd`: truncated SVD of the (baseline-centred) rating matrix by a randomised solver
// (Halko, Martinsson & Tropp, "Finding structure with randomness", SIAM Review 2011).
//
// The model:   r_ui ~ mu + b_u + b_i + x_u . v_i
// center=bias (default): mu is the global mean, b_i = sum(r - mu) / (bias_reg_item + n_i)
// and b_u = sum(r - mu - b_i) / (bias_reg_user + n_u) (Koren's regularised baseline,
// KDD 2008); center=global keeps only mu; center=none uses the raw ratings (PureSVD,
// Cremonesi, Koren & Turrin 2010: the strongest top-N configuration, not a rating
// predictor). The residual matrix R (cells without a rating are 0) is factorised as
// R ~ U S V^T with V = item factors (orthonormal columns) and the user factors set to
// X = R V, the exact least-squares fit of each user row for fixed V, so folding a
// user's own history in reproduces its training vector.
//
// Randomised range finder: Y = R Omega with Gaussian Omega (n_items x (k + oversample)),
// `power_iters` rounds of orthonormalised power iteration (Q = qr(R qr(R^T Q))), then the
// small SVD of B = Q^T R (Eigen BDCSVD). Cost O((2 power_iters + 3) nnz (k + p) +
// (n_users + n_items) (k + p)^2); memory O((n_users + n_items) (k + p)). Sparse products
// run on ctx.threads; QR / SVD are single-threaded Eigen. Deterministic for a seed
// (any thread count).
//
// Unknown users score mu + b_i; items without ratings get b_i = 0 and a zero vector.
// The callback is called once, with loss = training MSE over the ratings and
// metrics["train_rmse"].
#pragma once

#include <cstdint>

#include "factor/factor_model.h"

namespace recforge::models {

class SvdModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit SvdModel(ParamValues params);

  bool PredictsRatings() const override { return true; }
  // Singular values of the residual matrix, largest first (k of them).
  const std::vector<float>& singular_values() const { return singular_values_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // x = (r - baseline) V with the user bias estimated from the history: O(|history| k).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra state: the centring mode (u8: 0 none, 1 global, 2 bias) and the singular values.
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  enum class Center : std::uint8_t { kNone = 0, kGlobal = 1, kBias = 2 };

  std::size_t k_;
  Center center_;
  float bias_reg_user_;
  float bias_reg_item_;
  int oversample_;
  int power_iters_;
  std::vector<float> singular_values_;
};

}  // namespace recforge::models
