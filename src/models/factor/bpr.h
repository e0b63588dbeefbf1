// `bpr`: Bayesian Personalised Ranking (Rendle et al., UAI 2009) for implicit
// feedback, trained by parallel SGD.
//
// Model: score(u, i) = p_u . q_i + b_i (b_i only with item_bias=true). Factors start
// as rows of length init_std * sqrt(factors) in random directions (like N(0, init_std^2)
// entries); users without training data keep a zero vector (scores = b_i, like an
// unknown user). An epoch is nnz triples (u, i, j): a positive (u, i) and a negative j
// the user has not interacted with (up to 8 draws; the triple is skipped when all 8
// hit seen items). With x = score(u, i) - score(u, j) and z = sigmoid(-x):
//   p_u += lr (z (q_i - q_j) - reg p_u);  q_i += lr (z p_u - reg q_i);  q_j += lr (-z p_u - reg
//   q_j) b_i += lr (z - bias_reg b_i);  b_j += lr (-z - bias_reg b_j)
// with lr = lr0 * lr_decay^(epoch - 1). The loss reported per epoch is the BPR
// log-loss log(1 + exp(-x)) averaged over the triples of the epoch (before their
// updates); metrics["skipped"] is the fraction of skipped triples.
//
// Parallelism (mode):
//   block    (default) the BlockScheduler grid. Each block visits each of its positives
//            once per epoch, user by user (a user has ~1/bins of its items in a block,
//            so its updates come in short runs; the user's factor and CSR rows are then
//            fetched once per run, which is what makes large data fast), and draws its
//            negatives from its column group, so no two threads write the same row.
//            Deterministic: same seed + same bins => same model, whatever the thread
//            count (bins=0: 8 per side up to 4 threads).
//   hogwild  positives drawn with replacement from all interactions, negatives from
//            all items, every thread writing without locks (Niu et al. 2011), like
//            implicit's CPU BPR. The result depends on thread timing: the one
//            non-deterministic mode in RecForge, never the default. (Concurrent float
//            writes are races by design; do not run it under TSan.)
//
// Negatives: uniform over items, or "popularity": proportional to
// (training count)^pop_exponent (items without training interactions are never
// drawn), via alias tables.
//
// Cost per epoch: O(nnz * factors) time, software-pipelined so the random row
// fetches overlap; memory 8 bytes per interaction for the grid plus the factors.
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <vector>

#include "factor_model.h"

namespace recforge::models {

class BprModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit BprModel(ParamValues params) : FactorModel(std::move(params)) {}

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // Fold-in: minimises the model's own objective for one user vector with the item
  // side fixed,
  //   mean over history items i of E_j[log(1 + exp(-(s_i - s_j)))] + reg / 2 |p|^2,
  // j drawn like the training negatives (all unseen items when there are at most
  // 1024 of them, else 1024 drawn with a seed fixed by the history), by Newton's method
  // with a backtracking line search (the objective is convex, so a few steps). Cost per
  // step O(|history| |negatives| k + (|history| + |negatives|) k^2). An empty history
  // gives the zero vector (scores = item biases, the unknown-user behaviour).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: f32 vector of negative-sampling weights (empty for uniform).
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  // Negative sampling weights per item for the popularity mode (empty for uniform).
  std::vector<float> negative_weights_;
};

}  // namespace recforge::models
