// `als`: alternating least squares with Spark MLlib's semantics (org.apache.spark.ml.
// recommendation.ALS; Zhou et al., "Large-scale Parallel Collaborative Filtering for
// the Netflix Prize", 2008, for the ALS-WR regularisation).
//
// Explicit objective (implicit_prefs=false, the default), over the stored ratings:
//   sum_{(u,i) rated} (r_ui - x_u . y_i)^2 + reg_param (sum_u n_u |x_u|^2 + sum_i n_i |y_i|^2)
// where n_u / n_i count the ratings of the user / item (ALS-WR: the regulariser of a row
// grows with its number of ratings, exactly as Spark scales regParam by numExplicits).
// With implicit_prefs=true it is Spark's implicit objective: confidence
// c = 1 + alpha |r|, preference p = [r > 0], over every cell, with n_u counting r > 0.
//
// Each iteration solves every item, then every user (Spark's order), each row exactly:
// Cholesky (Eigen LLT) of the k x k normal equations, or NNLS (projected coordinate
// descent) with nonnegative=true. Each half exactly minimises the objective over one
// side, so the objective never increases. Initial user vectors are standard normal rows
// scaled to unit length, as in Spark (absolute values with nonnegative=true).
//
// Cold start (coldStartStrategy): a user or item without training ratings has no
// factors in Spark. PredictPairs writes NaN for a pair whose user or item had no
// training ratings (or is out of range), under both strategies. The strategy tells the
// evaluator what to do with those pairs: `nan` keeps them, so RMSE / MAE come out NaN as
// in Spark; `drop` leaves them out of RMSE / MAE (and counts them). Ranking
// (ScoreUsers) uses zero vectors for such users and items (every score 0).
//
// Loss report (callback only): the objective above divided by the number of ratings,
// plus metrics["train_rmse"]; costs one dot per rating. Cost per iteration:
// O(nnz k^2 + (n_users + n_items) k^3); memory: the factors plus per-thread k x k
// scratch. Threads: ctx.threads over rows; the result does not depend on the count.
#pragma once

#include <cstdint>

#include "factor/factor_model.h"
#include "factor/linear_solvers.h"

namespace recforge::models {

class AlsModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit AlsModel(ParamValues params);

  void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                    float* out) const override;
  bool PredictsRatings() const override { return !implicit_prefs_; }

  // "nan" or "drop" (see the file comment).
  const std::string& cold_start_strategy() const { return params().Choice("cold_start_strategy"); }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // The same row solve as training, against the final item factors: O(|history| k^2 + k^3).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra state: one byte per user and per item, 1 = had training ratings.
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  // Solves every row of `rows` against `fixed` into `solved`; returns the rows' loss
  // terms (errors plus their regulariser) when want_loss.
  double HalfStep(const CsrMatrix& rows, const std::vector<float>& fixed, std::size_t n_fixed,
                  std::vector<float>& solved, const linalg::RowBlocks& blocks, bool want_loss,
                  double* squared_error, int threads);
  // Number of ratings that count for the ALS-WR scaling of a row.
  std::size_t RegCount(std::span<const float> values) const;

  std::size_t k_;
  float reg_;
  int iters_;
  bool nonnegative_;
  bool implicit_prefs_;
  linalg::Confidence confidence_;

  std::vector<float> gram_;
  std::vector<linalg::SolverScratch> thread_scratch_;
  std::vector<float> item_gram_;          // implicit_prefs: Q^T Q for fold-in
  std::vector<std::uint8_t> user_known_;  // 1 = had training ratings
  std::vector<std::uint8_t> item_known_;
};

}  // namespace recforge::models
