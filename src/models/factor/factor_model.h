// FactorModel: the shared base of latent-factor recommenders (ials, als, svd; usable by
// mf / bpr / nmf too). It owns the factors and optional biases and implements scoring,
// fold-in scoring, item similarity, pair prediction and the state I/O once:
//
//   score(u, i) = global_bias + user_bias[u] + item_bias[i] + dot(P[u], Q[i])
//
// P (n_users x k) and Q (n_items x k) are row-major float32; each bias is optional
// (an empty vector means 0). A user index >= n_users() scores with a zero vector and
// zero user bias, so every item scores global_bias + item_bias[i] (0 for models without
// biases; ties then go to the smaller item index). Users and items without training
// interactions keep whatever the family documents (a zero vector for ials/als).
//
// Thread-safety: const methods may be called concurrently (they allocate their own
// small scratch); Fit / LoadState need exclusive access.
//
// Families implement FitImpl (filling the protected members, then calling
// FactorsChanged()), FoldIn (solving one ad-hoc user from a history) and optionally
// SaveExtra / LoadExtra for state beyond factors and biases.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "recforge/models/recommender.h"

namespace recforge::models {

class FactorModel : public Recommender {
 public:
  explicit FactorModel(ParamValues params) : Recommender(std::move(params)) {}

  // Dense scores: one GemmNT (OpenBLAS sgemm) of the gathered user rows against Q plus
  // the biases. Cost O(|users| n_items k); allocates |users| x k floats.
  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;

  // Exact top-k without scoring every item (the batch path of Recommend): items are
  // visited in descending |Q[i]| order, block by block (one sgemm per block for the
  // users still open), and a user stops as soon as no remaining item can beat its k-th
  // score: global + user bias + |P[u]| * max remaining |Q[i]| + max remaining item bias
  // (Cauchy-Schwarz, with a margin for float rounding). Same lists as the dense path;
  // scores may differ from ScoreUsers in the last bit (sgemm tiles differently).
  // Falls back to the dense path for candidate subsets and small catalogs.
  void RecommendBatch(std::span<const UserIndex> users, const RecommendOptions& options,
                      RankedItems* out) const override;

  // Fold-in: FoldIn() solves the history's user vector (and bias), then scores as above.
  // Returns false when the family's FoldIn does. Item indices >= n_items() are ignored.
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                    float* out) const override;

  // Cosine similarity of item factor vectors, best first, the item itself excluded;
  // items with a zero vector score 0. Empty for an item index >= n_items(). O(n_items k).
  RankedItems SimilarItems(ItemIndex item, std::size_t k) const override;

  // score(u, i) per pair (O(k) each); an item index >= n_items() gets the user's score
  // with a zero item vector and zero item bias.
  void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                    float* out) const override;

  // Payload (docs/models/als.md): u64 k | f32 vector P | f32 vector Q | f32 global bias |
  // f32 vector user bias | f32 vector item bias | family extra (SaveExtra).
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  std::size_t factors() const { return factors_; }
  std::span<const float> user_factors() const { return user_factors_; }
  std::span<const float> item_factors() const { return item_factors_; }
  float global_bias() const { return global_bias_; }
  std::span<const float> user_bias() const { return user_bias_; }
  std::span<const float> item_bias() const { return item_bias_; }
  // P[user] / Q[item] (k floats); user must be < n_users(), item < n_items().
  const float* UserVector(UserIndex user) const {
    return user_factors_.data() + std::size_t{user} * factors_;
  }
  const float* ItemVector(ItemIndex item) const {
    return item_factors_.data() + std::size_t{item} * factors_;
  }

 protected:
  // Solves the factor vector (k floats) and bias (0 for models without user biases) of
  // an ad-hoc user from a history (item, value); items are < n_items(). Returns false
  // when the family cannot fold in. Must be safe to call concurrently.
  virtual bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                      float* user_vector, float* user_bias) const = 0;
  virtual void SaveExtra(ModelWriter&) const {}
  virtual void LoadExtra(ModelReader&) {}
  // Recomputes derived caches (item norms for SimilarItems, and a family's own caches
  // when overridden: call the base). Run at the end of Fit, before every training
  // callback, and after LoadState.
  virtual void FactorsChanged();

  // Uniform random factors in [low, high) for `rows` rows of k, row r drawn from the
  // stream DeriveSeed(seed, stream * 2^40 + r): the same for any thread count.
  static void RandomUniform(std::vector<float>& factors, std::size_t rows, std::size_t k,
                            std::uint64_t seed, std::uint64_t stream, float low, float high,
                            int threads);
  // Standard normal factors, each row then scaled to unit length (Spark's ALS
  // initialisation); with `absolute`, entries are made non-negative first.
  static void RandomUnitRows(std::vector<float>& factors, std::size_t rows, std::size_t k,
                             std::uint64_t seed, std::uint64_t stream, bool absolute, int threads);

  // Makes OpenBLAS single-threaded once per process: we parallelise outside BLAS and
  // call sgemm / ssyrk from many threads at once (kernels.h).
  static void UseSingleThreadedBlas();

  std::size_t factors_ = 0;
  std::vector<float> user_factors_;  // n_users x k
  std::vector<float> item_factors_;  // n_items x k
  float global_bias_ = 0.0f;
  std::vector<float> user_bias_;  // empty or n_users
  std::vector<float> item_bias_;  // empty or n_items

 private:
  float UserBias(UserIndex user) const {
    return user < user_bias_.size() ? user_bias_[user] : 0.0f;
  }
  std::vector<float> item_norms_;  // |Q[i]|, for SimilarItems
  // The catalog in descending |Q[i]| order (ties by index), for RecommendBatch:
  // by_norm_items_[j] is the item at rank j, by_norm_factors_ its rows of Q,
  // by_norm_bias_ its item bias (0 without), and suffix_norm_[j] / suffix_bias_[j] the
  // largest norm / bias at ranks >= j (n + 1 entries, the last one 0 / -inf).
  std::vector<ItemIndex> by_norm_items_;
  std::vector<float> by_norm_factors_;
  std::vector<float> by_norm_bias_;
  std::vector<float> suffix_norm_;
  std::vector<float> suffix_bias_;
};

}  // namespace recforge::models
