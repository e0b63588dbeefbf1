// `ials`: implicit-feedback ALS (Hu, Koren & Volinsky, "Collaborative Filtering for
// Implicit Feedback Datasets", ICDM 2008), with implicit's conjugate-gradient solver
// (Takacs, Pilaszy & Tikk 2011).
//
// Objective, over every (user, item) cell:
//   sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + sum_u reg_u |x_u|^2 + sum_i reg_i |y_i|^2
// with p_ui = 1 for a stored interaction with value r > 0 (else 0), confidence
// c_ui = 1 + alpha r (scaling=linear) or 1 + alpha log(1 + r / epsilon) (scaling=log),
// c = 1 for cells without an interaction (binary=true: every stored interaction counts
// as r = 1), and the frequency-scaled regulariser reg_u = reg * n_u^reg_exponent (n_u =
// the row's interactions; reg_exponent=0 is implicit's plain reg, 1 is ALS-WR's
// scaling; the default 0.5 was chosen on ml-100k, docs/models/als.md).
//
// Training alternates two half-iterations, items first, then users (so the user
// factors are always the CG (or exact) solution for the final item factors, which keeps
// fold-in consistent). Each half computes the fixed side's Gram matrix once
// (linalg::ComputeGramian: the YtY trick, and the reduction point for a data-parallel
// mode), then solves every row: `cg_steps` CG steps warm-started from the row's previous
// vector (solver=cg, O(cg_steps (k^2 + nnz_row k))), or exactly by Cholesky
// (solver=cholesky, O(nnz_row k^2 + k^3)). Rows are spread over ctx.threads in
// cost-balanced blocks; rows whose fixed-side factor rows exceed 256 KB (the top items
// of a skewed catalogue) are solved together by linalg::SolveImplicitCgTiled, which
// streams the fixed side once per CG pass instead of once per row, with the same
// arithmetic. Results do not depend on the thread count.
//
// Loss report: with a TrainCallback and report_loss=true, each iteration reports the
// exact objective above divided by the total weight (n_users n_items + sum of (c - 1)
// over interactions), as implicit's calculate_loss does. It is computed during the user
// half right after each row's solve (x^T G x for the unobserved cells plus one dot per
// interaction), costing about one extra pass over the interactions; otherwise nothing
// is computed (has_loss = false).
//
// Initialisation: uniform [0, init_scale) from ctx.seed (as implicit). Users and items
// without interactions get a zero vector. Memory: the factors, two k x k matrices, per
// thread O(k^2 + longest short row) scratch, and 3 k floats per long row.
//
// Thread-safety: as Recommender (const methods concurrently; Fit / Load exclusive).
#pragma once

#include "factor/factor_model.h"
#include "factor/linear_solvers.h"

namespace recforge::models {

class IalsModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit IalsModel(ParamValues params);

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // Exact (Cholesky) solve of the history's user vector against the final item factors
  // and their cached Gram matrix: O(|history| k^2 + k^3).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // No extra state is stored; loading recomputes the item Gram matrix.
  void LoadExtra(ModelReader& reader) override;

 private:
  // One half-iteration: solves every row of `rows` against `fixed` (n_fixed x k) into
  // `solved`. Returns the rows' share of the objective when want_loss (else 0).
  double HalfStep(const CsrMatrix& rows, const std::vector<float>& fixed, std::size_t n_fixed,
                  std::vector<float>& solved, const linalg::RowBlocks& blocks, bool want_loss,
                  int threads);

  // reg * n^reg_exponent for a row with n interactions.
  float RowReg(std::size_t n_entries) const;

  std::size_t k_;
  float reg_;
  double reg_exponent_;
  int iters_;
  int cg_steps_;
  bool cholesky_;
  float init_scale_;
  bool report_loss_;
  linalg::Confidence confidence_;

  std::vector<float> gram_;                            // training scratch (k x k)
  std::vector<linalg::SolverScratch> thread_scratch_;  // training scratch, one per thread
  std::vector<linalg::TiledCgScratch> tiled_scratch_;  // long rows' CG state, one per thread
  std::vector<float> item_gram_;                       // Q^T Q of the final item factors (fold-in)
};

}  // namespace recforge::models
