// `ncf`: Neural Collaborative Filtering / NeuMF (He et al., WWW 2017) for implicit
// feedback: a GMF tower (p_u (.) q_i) and an MLP tower (relu layers over [p'_u, q'_i])
// fused by a final linear layer (ncf_network.h has the network and its hand-derived
// backward pass; docs/models/neural.md the design and figures).
//
// Training: every epoch draws `negatives` unseen items per training interaction
// (uniform, up to 8 draws; a positive whose draws all hit seen items keeps fewer).
//   loss=bce  rows (u, i, 1) and (u, j, 0), binary cross-entropy on the logit;
//   loss=bpr  pairs (u, i, j), -log sigmoid(s_ui - s_uj).
// The rows (or pairs) are shuffled and cut into mini-batches of batch_size; the loss is
// the batch mean. Adam (lr, beta1, beta2, eps) on every dense weight, with coupled
// weight_decay like torch.optim.Adam; "lazy" Adam on the embeddings: only the rows a
// batch touches are updated (their moments too, with the global step count in the bias
// correction, as torch.optim.SparseAdam), with L2 `reg` added to those rows' gradients.
// Parallelism: a batch is cut into fixed slices of 64 rows; threads run the slices'
// forward and backward passes, each into its own gradient buffer, and the buffers are
// summed in slice order; the touched embedding rows are then updated in parallel, each
// summing its rows' gradients in batch order. So the model depends on the seed only, not
// on the thread count. (Batches with little arithmetic — under ~1 MFLOP, e.g. tiny
// networks — run on one thread: their two barriers would cost more than the work.)
// The loss reported per epoch is the mean training loss.
//
// Scoring: the first MLP layer splits into a user part and an item part,
//   W_1 [p'_u, q'_i] + b_1 = W_1u p'_u + (W_1i q'_i + b_1),
// and the item part is precomputed once per model (n_items x h_1), so scoring all items
// for a user is one add + relu and then matrix products over blocks of items; the GMF
// part is one sgemm against (w_g (.) p_u). Users without training interactions (and
// user indices >= n_users) get zero embeddings, so they score by the item side alone.
//
// Fold-in (ScoreHistory) is not supported (returns false): the user's embeddings would
// have to be trained through the network (docs/models/neural.md).
//
// Thread-safety: const methods are safe concurrently; Fit / LoadState are exclusive.
#pragma once

#include <vector>

#include "neural/ncf_network.h"
#include "recforge/models/recommender.h"

namespace recforge::models {

class NcfModel final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit NcfModel(ParamValues params);

  // Dense scores of every item; O(|users| n_items (f + sum_l h_l h_{l+1})).
  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;

  // Payload: u64 n_users | u64 n_items | f32 vectors user_gmf, item_gmf, user_mlp,
  // item_mlp, dense (layout of ncf_network.h; the shape comes from the spec).
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  const ncf::Parameters& network() const { return net_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;

 private:
  // Recomputes the per-item part of the first MLP layer (after Fit, before each
  // training callback, after LoadState).
  void PrepareScoring();

  ncf::Shape shape_;
  ncf::Parameters net_;
  std::vector<float> item_first_layer_;  // n_items x h_1: W_1i q'_i + b_1
};

}  // namespace recforge::models
