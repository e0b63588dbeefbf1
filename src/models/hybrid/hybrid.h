// `hybrid`: a LightFM-style hybrid factorisation model (Kula, "Metadata Embeddings for
// User and Item Cold-start Recommendations", CBRecSys 2015), docs/models/hybrid.md.
//
// Every user and item is a set of weighted features, and its representation is the
// weighted sum of its features' embeddings (k floats each) and biases:
//   user u:  the feature "user id u" (the training data has no user attributes; see
//            the docs), weight 1;
//   item i:  "item id i" (only for items with training interactions, item_ids=true)
//            plus its metadata features (item_features.h: categories / genres, decade,
//            store and other metadata fields, optionally title tokens) that occur on at
//            least min_feature_items items; with normalize=true the weights of an item
//            are 1 / (its number of features), else 1.
//   score(u, i) = p_u . q_i + b_i,   p_u = sum w_f e_f,  q_i = sum w_g e_g,  b_i = sum w_g b_g.
// So an item without interactions but with metadata (a cold-start item) still has a
// vector: the (weighted) sum of its metadata embeddings. Users without training
// interactions get a zero vector (scores = item biases); items with neither
// interactions nor known features get a zero vector and bias (score 0).
//
// Losses (loss=), each over the training positives (u, i) in a shuffled order per epoch;
// negatives j are drawn uniformly among the items that have training interactions and
// that u has not seen (an item without interactions carries no negative evidence, so the
// embeddings of cold items' metadata are not pushed down for being unobserved):
//   bpr       log(1 + exp(-(s_ui - s_uj))) for one negative (Rendle et al. 2009);
//   warp      Weighted Approximate-Rank Pairwise (Weston et al. 2011): negatives are
//             drawn until one violates s_uj > s_ui - 1 (at most max_sampled draws); the
//             hinge 1 - s_ui + s_uj is weighted by log(floor((N - 1) / draws)), N = the
//             number of negative candidates: an estimate of the positive's rank, so
//             positives ranked badly get large steps. No violation: no update.
//   warp-kos  k-order statistic WARP (Weston et al. 2013): the positive is the kos_k-th
//             best-scored of kos_n positives drawn from u's items, then as warp.
// The epoch loss reported is the mean over positives of the BPR log-loss / the weighted
// hinge (0 for a positive with no violation), at the parameters the update used.
//
// Updates (learning_schedule=): each feature f touched by a step moves by its weight
// times the gradient of its representation, plus L2 (user_alpha / item_alpha times the
// embedding or bias), with a per-feature, per-element learning rate:
//   adagrad   lr / sqrt(G), G = 1 + the sum of that element's squared gradients (LightFM);
//   sgd       lr * lr_decay^(epoch - 1).
// Embeddings start uniform in [-0.5, 0.5) / factors (LightFM), biases at 0.
//
// Parallelism (mode=):
//   batch    (default) positives are taken in mini-batches of `batch`: the negative search
//            (the costly part of WARP: up to max_sampled score evaluations per positive;
//            k-OS's kos_n) runs in parallel on the parameters of the batch start, with a
//            random stream per positive; then the updates are applied on one thread in
//            positive order, with fresh representations (so only the choice of the
//            negative is up to one batch stale). Deterministic, and the same model for
//            any thread count. bpr's search is one draw, so bpr gains little from threads;
//            small batches (positives x factors x max_sampled < 2^18) run on one thread.
//   hogwild  every thread runs whole steps on its share of the positives and writes
//            without locks (Niu et al. 2011; LightFM's num_threads). Depends on thread
//            timing: not deterministic, never the default.
//
// After training (and before every epoch callback) the representations are materialised
// into FactorModel's P, Q and item biases, so scoring, the pruned exact top-k,
// SimilarItems (cosine of q) and the state I/O are FactorModel's.
//
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "factor/factor_model.h"
#include "hybrid/item_features.h"

namespace recforge::models {

class HybridModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit HybridModel(ParamValues params) : FactorModel(std::move(params)) {}

  // The content vector of an item given only its metadata (an item the model may never
  // have seen): q = sum over its known metadata features of w_g e_g and its bias, with
  // the training weights (normalize: 1 / its number of known features). Writes
  // factors() floats; returns false (zero vector and bias) when none of its features is
  // in the vocabulary. O(features * k).
  bool ContentVector(const data::ItemInfo& info, float* vector, float* bias) const;

  // Number of metadata features in the vocabulary (id features not counted).
  std::size_t n_metadata_features() const { return feature_names_.size(); }
  const std::vector<std::string>& metadata_feature_names() const { return feature_names_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;
  // Fold-in for an ad-hoc history (serve events, ScoreHistory): the item side is fixed and
  // one user vector is trained from zero by the model's own loss and schedule, 20 passes
  // over the (distinct) history items, negatives drawn with a seed fixed by the history
  // (a pure function). Cost O(20 |history| max_sampled k). Empty history: zero vector.
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: u64 number of metadata features V | V strings (names, sorted) |
  // f32 vector V x k embeddings | f32 vector V biases | u8 vector: per item, whether it
  // has training interactions (fold-in negatives).
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  hybrid::FeatureOptions FeatureOptionsFromParams() const;

  std::vector<std::string> feature_names_;                  // metadata vocabulary, sorted
  std::unordered_map<std::string, std::uint32_t> feature_index_;
  std::vector<float> feature_embeddings_;                   // V x k
  std::vector<float> feature_bias_;                         // V
  std::vector<std::uint8_t> has_interactions_;              // per item
};

}  // namespace recforge::models
