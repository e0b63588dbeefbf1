// `item2vec`: skip-gram with negative sampling over each user's time-ordered item
// sequence (Barkan & Koenigstein 2016, after word2vec: Mikolov et al. 2013).
//
// Sequences: the train rows of each user ordered by (time, item); items seen fewer than
// min_count times in train are dropped from the sequences and get no vector (word2vec's
// vocabulary cut). Without TrainingData::train the CSR rows (item order) are used.
//
// Training (word2vec / gensim semantics, sg=1, negative > 0, hs=0): per epoch and
// sequence, each item is kept with probability min(1, (sqrt(c / t) + 1) t / c) where c
// is its count and t = sample * (retained words) (sample=0: keep all); on the kept
// sequence, each position draws a reduced window b uniform in [1, window] and every
// item within b positions is a context of it. For each (context, centre) pair the input
// vector of the context and the output vectors of the centre (label 1) and of
// `negatives` items drawn from count^ns_exponent (label 0; a draw equal to the centre is
// skipped) take the SGD step
//   g = lr (label - sigmoid(in . out));  e += g out;  out += g in;  and then in += e,
// with sigmoid from a 1000-entry table over [-6, 6] (saturated to 0 / 1 outside, as in
// word2vec.c). lr falls linearly from lr to min_lr over all epochs (by words processed).
// Input vectors start uniform in [-0.5, 0.5) / factors, output vectors at 0.
// The loss reported per epoch is the mean over (context, centre) pairs of
// -log sigmoid(in . out_centre) - sum over negatives of log sigmoid(-in . out_neg);
// metrics["words_per_second"] counts sequence items (before subsampling) per second.
//
// Parallelism: the sequences are cut into `threads` contiguous shards of about equal
// length (in items), one per thread.
//   default   (deterministic) every thread trains its shard on a private copy of the
//             vectors; every sync_words items (per thread) the threads stop and each
//             vector row touched in the round becomes base + sum over threads of
//             (thread's row - base), added in thread order, and every copy is
//             refreshed from the result. Each thread's random stream and its lr
//             schedule (by its own progress) are fixed, so the same seed and the same
//             thread count give the same model; with one thread it is exactly the
//             sequential algorithm. Memory: threads + 1 copies of both matrices.
//   hogwild=true  every thread writes into the one shared copy without locks, and lr
//             follows the global progress (word2vec.c / gensim). Depends on thread
//             timing: the documented non-deterministic exception, never the default.
//             (Racing float writes by design; do not run it under TSan.)
//
// Scoring (FactorModel: score(u, i) = P[u] . Q[i] + item bias):
//   scoring=context (default) Q = the output vectors, P from the raw input vectors:
//             the SGNS estimate of "appears near the history" (the model's own
//             objective); SimilarItems stays the cosine of input vectors (kept as
//             extra state).
//   scoring=cosine  Q = the unit-length input vectors: a user / session ranks items by
//             cosine to the weighted mean of its recent item vectors.
//   scoring=dot     Q = the raw input vectors.
// SimilarItems is always the cosine of input vectors (gensim's most_similar).
// Defaults tuned on ml-100k (docs/models/embedding.md): ns_exponent=-0.5 (negatives
// drawn mostly from rare items, Caselles-Dupre et al. 2018; word2vec's 0.75 leaves
// popular items under-scored), min_count=5, history=10.
// pop_weight > 0 adds the item bias pop_weight * log(count) (items without a vector:
// count 1/2): SGNS dot products estimate PMI(item, context) - log negatives, so with
// scoring=context and pop_weight=1 the score is log p(item | history) up to a constant.
// P[u] (ScoreUsers) and the fold-in vector of ScoreHistory are the same weighted mean
// over the last `history` items that have a vector (0 = all), items given oldest
// first: the j-th most recent (j = 0 newest) weighs recency^j. Values are ignored
// (sequences are implicit). A history without any item that has a vector, a user
// without training rows and a user index >= n_users() get the zero vector: every item
// scores its bias (0 without pop_weight; ties to the smaller index). Items without a
// vector (below min_count or unseen in train) have a zero Q row: they score their bias
// and are similar to nothing (cosine 0).
//
// Cost per epoch: O(words * window * (negatives + 1) * factors); Fit memory is the
// sequences (4 bytes per train row) plus the vectors (2 matrices of n_items x factors,
// times threads + 1 in the deterministic mode).
// Thread-safety: const methods are safe concurrently; Fit / LoadState need exclusive
// access.
#pragma once

#include <cstdint>
#include <vector>

#include "factor/factor_model.h"

namespace recforge::models {

class Item2VecModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit Item2VecModel(ParamValues params) : FactorModel(std::move(params)) {
    min_count_ = static_cast<std::uint64_t>(this->params().Int("min_count"));
  }

  // Cosine of input vectors (see above); empty for an item index >= n_items().
  RankedItems SimilarItems(ItemIndex item, std::size_t k) const override;

  // Training occurrences of each item (n_items; 0 after LoadState of an empty model).
  const std::vector<std::uint32_t>& item_counts() const { return item_counts_; }
  // Whether `item` has a vector (count >= min_count).
  bool HasVector(ItemIndex item) const;

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx,
               const TrainCallback& callback) override;
  // The weighted mean of the last `history` items with a vector (items oldest first).
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  // Extra payload: u32 vector item counts | f32 vector input vectors
  // (n_items x factors for scoring=context, else empty).
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  // Sets P from each user's sequence (items oldest first).
  void ComputeUserVectors(const std::vector<std::uint64_t>& offsets,
                          const std::vector<ItemIndex>& sequence_items, int threads);
  // The cosine source of SimilarItems: input_vectors_ when kept, else Q.
  const float* SimilarityRow(ItemIndex item) const;
  // Recomputes input_norms_ (empty unless input vectors are kept).
  void UpdateInputNorms();

  std::vector<std::uint32_t> item_counts_;
  std::uint64_t min_count_ = 1;  // from the params (cached: HasVector runs per history item)
  std::vector<float> input_vectors_;  // scoring=context only: raw input vectors, n_items x k
  std::vector<float> input_norms_;    // their norms (derived)
};

}  // namespace recforge::models
