// The one abstract recommender (STYLE.md §6). Every model family implements Fit,
// ScoreUsers and the state I/O; batch recommend, fold-in, similar items and rating
// prediction have generic implementations that families override where they can do
// better.
//
// Thread-safety: const methods may be called concurrently from many threads (serving,
// batch recommend). Fit and LoadState need exclusive access.
//
// Users and items the model has never seen: a user index >= n_users() or a user with
// no training interactions scores with the family's documented "empty user" behaviour
// (factor models: a zero vector, so every item scores 0 and ties go to the smaller
// item index; neighbourhood models: all zeros; pop: popularity). Callers that want a
// fallback (serve) check HasUser() first.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/core/csr.h"
#include "recforge/core/types.h"
#include "recforge/data/dataset.h"
#include "recforge/models/params.h"

namespace recforge::models {

class ModelWriter;
class ModelReader;

// What Fit sees of a prepared dataset: the train part as CSR in both orientations
// (values are ratings or implicit weights; repeated pairs were summed, which cannot
// happen after `data prepare`), plus read-only views for families that need more.
struct TrainingData {
  std::size_t n_users = 0;
  std::size_t n_items = 0;
  std::shared_ptr<const CsrMatrix> user_items;        // n_users x n_items (the model keeps it)
  CsrMatrix item_users;                               // its transpose
  const data::Interactions* train = nullptr;          // rows with times (pop time decay, sequences)
  const data::Interactions* validation = nullptr;     // the val part, when present
  const std::vector<data::ItemInfo>* item_info = nullptr;
  const data::IdMap* item_ids = nullptr;
  std::string dataset_hash;                           // content hash of the prepared dataset

  // Builds from the train part (and val, if present) of a prepared dataset. The
  // prepared dataset must outlive the result.
  static TrainingData FromPrepared(const data::PreparedDataset& prepared, int threads);
};

// Per-call options of Recommend (kept apart from the model's structure, STYLE.md §5).
struct RecommendOptions {
  std::size_t k = 10;
  bool exclude_seen = true;                  // drop the user's own training items
  std::span<const ItemIndex> candidates;     // if non-empty: rank only these items
  std::span<const ItemIndex> excluded;       // never return these items
};

// One ranked list: parallel arrays, best first. Ties go to the smaller item index.
struct RankedItems {
  std::vector<ItemIndex> items;
  std::vector<float> scores;
};

// What a trainer reports after each epoch / iteration. `metrics` may be filled by the
// callback (e.g. validation NDCG computed by the caller).
struct EpochReport {
  int epoch = 0;       // 1-based
  int epochs = 0;      // planned total
  double seconds = 0;  // wall time of this epoch
  double loss = 0;     // training objective (family-specific, documented in docs/models.md)
  bool has_loss = false;
  std::map<std::string, double> metrics;

  // An epoch that reports its training objective (most families).
  static EpochReport WithLoss(int epoch, int epochs, double seconds, double loss) {
    EpochReport report;
    report.epoch = epoch;
    report.epochs = epochs;
    report.seconds = seconds;
    report.loss = loss;
    report.has_loss = true;
    return report;
  }
};
class Recommender;
// Called after every epoch with the model in a consistent, scoreable state.
using TrainCallback = std::function<void(const Recommender& model, EpochReport& report)>;

class Recommender {
 public:
  explicit Recommender(ParamValues params) : params_(std::move(params)) {}
  virtual ~Recommender() = default;

  const std::string& family() const { return params_.family(); }
  const ParamValues& params() const { return params_; }
  std::string Spec() const { return params_.CanonicalSpec(); }

  std::size_t n_users() const { return n_users_; }
  std::size_t n_items() const { return n_items_; }
  const std::string& dataset_hash() const { return dataset_hash_; }
  // The training interactions (for exclude-seen and fold-in), shared with the
  // TrainingData the model was fitted on; restored by LoadModel, or set with SetSeen.
  const CsrMatrix& seen() const { return seen_ ? *seen_ : kNoInteractions; }
  void SetSeen(std::shared_ptr<const CsrMatrix> seen) { seen_ = std::move(seen); }
  void SetSeen(CsrMatrix seen) { seen_ = std::make_shared<const CsrMatrix>(std::move(seen)); }
  bool HasUser(UserIndex user) const {
    return user < n_users_ && !seen().indptr.empty() && seen().RowLength(user) > 0;
  }

  // Trains on `data`. Deterministic for a given ctx.seed and ctx.threads.
  void Fit(const TrainingData& data, const Context& ctx, const TrainCallback& callback = {});

  // Dense scores of `users` for every item: out[u * n_items() + i], row-major.
  // Higher is better. Cost and threading are family-specific; single-threaded
  // (callers parallelise over batches).
  virtual void ScoreUsers(std::span<const UserIndex> users, float* out) const = 0;

  // Scores every item for an ad-hoc user given by a history (item, value) — fold-in.
  // Returns false when the family cannot (the caller then falls back).
  virtual bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const;

  // Items most similar to `item`, best first (excluding the item itself). Returns an
  // empty list when the family has no notion of item similarity.
  virtual RankedItems SimilarItems(ItemIndex item, std::size_t k) const;

  // Predicted ratings for (user, item) pairs (rating models; others return scores).
  virtual void PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items, float* out) const;
  // True for explicit-rating models (mf, svd, nmf, als): RMSE/MAE are meaningful.
  virtual bool PredictsRatings() const { return false; }

  // Top-k for a batch of users, in parallel over `threads` (exclude-seen uses seen()).
  std::vector<RankedItems> Recommend(std::span<const UserIndex> users, const RecommendOptions& options,
                                     int threads) const;
  // Top-k for an ad-hoc history (fold-in); empty if ScoreHistory is unsupported.
  RankedItems RecommendHistory(std::span<const ItemIndex> items, std::span<const float> values,
                               const RecommendOptions& options) const;

  // Learned state only (the spec and sizes are written by SaveModel).
  virtual void SaveState(ModelWriter& writer) const = 0;
  virtual void LoadState(ModelReader& reader) = 0;

  // Called by LoadModel before LoadState.
  void SetShape(std::size_t n_users, std::size_t n_items, std::string dataset_hash) {
    n_users_ = n_users;
    n_items_ = n_items;
    dataset_hash_ = std::move(dataset_hash);
  }

 protected:
  // The family's training. n_users()/n_items()/seen() are set before it is called.
  virtual void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) = 0;

  // Top-k of one batch of users into out[0, users.size()); Recommend calls it from many
  // threads at once. The default scores densely (ScoreUsers), masks and selects with
  // TopK; a family with a faster exact method overrides it and must return the same
  // lists (same items, same order, ties to the smaller index).
  virtual void RecommendBatch(std::span<const UserIndex> users, const RecommendOptions& options,
                              RankedItems* out) const;

 private:
  ParamValues params_;
  std::size_t n_users_ = 0;
  std::size_t n_items_ = 0;
  std::string dataset_hash_;
  std::shared_ptr<const CsrMatrix> seen_;
  static const CsrMatrix kNoInteractions;
};

// Selects the top-k of `scores` (n_items values) into `out`, best first, ties to the
// smaller index, skipping items whose score is -infinity. Exposed for families and
// tests; O(n_items) with a small heap.
void TopK(const float* scores, std::size_t n_items, std::size_t k, RankedItems& out);

}  // namespace recforge::models
