// `two-stage`: candidate generation followed by a learning-to-rank model
// (docs/models/ranking.md).
//
// Stage 1 — the candidates of a user are the union of
//   - the top-N of each model source, sub-models created through the registry (ials,
//     itemknn, and item2vec when that family is registered), by the sub-model's score;
//   - `emb`: items nearest (cosine over the ials item factors; HNSW for large catalogs,
//     exact top-k otherwise) to the user's last `history` items;
//   - `cooc`: items co-occurring most with the user's last `history` items;
//   - `pop`: the most popular items;
// never an item the user has already interacted with.
// Stage 2 — LambdaMART (XGBoost, objective rank:ndcg, one group per user) over features
// of each (user, candidate): every source's score and rank, embedding similarity and
// co-occurrence with the recent items, item popularity / recency / rating statistics,
// user statistics and time since the user's last interaction, user-category affinity
// (when the data has item metadata), and how many sources proposed the item.
//
// Training without leakage: the ranker learns on a label window strictly later than the
// feature window its candidates and features come from — the prepared dataset's val
// part when it has one (feature window = train), else the latest interactions of each
// user carved out of train by time (`window=user`) or every interaction from a global
// time cut on (`window=global`); the sources are then refitted on the full train part
// for inference.
//
// Spec: sub-model parameters are flattened into the two-stage spec as
// "<family>.<key>=value" (e.g. `two-stage:ials=200,ials.factors=64,itemknn=0`), so a
// sub-spec's commas and colons never nest, every key is validated by the sub-family's
// own field table, and the canonical spec round-trips.
//
// Scores: a candidate scores the ranker's margin; every other item (seen items
// included) scores below every candidate of that user: min margin - 1 - 0.5 (1 -
// pop / max pop), so full ranking works and non-candidates are ordered by popularity.
// A user the model has no history for (unknown or empty) scores by popularity.
//
// Thread-safety: const methods may be called concurrently; Fit / LoadState need
// exclusive access.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "candidates.h"
#include "recforge/models/recommender.h"
#include "xgb_ranker.h"

namespace recforge::models {

// The two windows the ranker is trained on, split out of `train` (see above):
// `global`: labels = rows at or after the time cut that leaves ~`fraction` of the rows
// after it, features = rows strictly before it; per user (`global` false): the latest
// max(1, floor(fraction * n_u)) rows by (time, item) of each user with at least 2 rows,
// moved earlier past ties so that every label row is strictly later than all of the
// user's feature rows (a user whose rows share one time keeps them all as features).
struct TimeWindows {
  data::Interactions features;
  data::Interactions labels;
};
TimeWindows SplitTimeWindows(const data::Interactions& train, std::size_t n_users, bool global, double fraction);

// What Fit did, for logs, tests and docs.
struct TwoStageSummary {
  std::string window;               // "val part", "per-user carve", "global carve"
  std::size_t feature_rows = 0, label_rows = 0;
  // Label rows not strictly later than the feature window (the user's latest feature
  // row; the newest feature row for window=global): 0 unless a val part overlaps train.
  std::size_t leaking_label_rows = 0;
  std::size_t ranker_users = 0, ranker_rows = 0, ranker_positives = 0;
  double mean_candidates = 0;       // per training user
  double candidate_recall = 0;      // label items found among the candidates
  bool hnsw = false;                // emb source searched an HNSW graph
};

class TwoStageModel final : public Recommender {
 public:
  static std::vector<ParamField> Fields();
  explicit TwoStageModel(ParamValues params);
  ~TwoStageModel() override;

  void ScoreUsers(std::span<const UserIndex> users, float* out) const override;
  // Fold-in: the history's order is taken as time order (the last items are the recent
  // ones) and its last interaction as "now". False when a model source cannot fold in.
  bool ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const override;
  // The ials sub-model's neighbours when present (else empty).
  RankedItems SimilarItems(ItemIndex item, std::size_t k) const override;

  // Payload (docs/models/ranking.md): u32 version | u32 sources | per source: family,
  // spec, sub-model state (strings) | feature window | feature names | importance |
  // XGBoost booster (UBJSON) | summary.
  void SaveState(ModelWriter& writer) const override;
  void LoadState(ModelReader& reader) override;

  const std::vector<std::string>& feature_names() const { return feature_names_; }
  // Gain importance per feature, sorted by descending total gain.
  const std::vector<FeatureImportance>& importance() const { return importance_; }
  const TwoStageSummary& summary() const { return summary_; }
  // Sub-model of a model source ("ials", "itemknn", "item2vec") or nullptr.
  const Recommender* source_model(const std::string& family) const;

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;

 private:
  struct Source {
    std::string family;
    std::size_t count = 0;  // candidates it proposes (0: features only)
    std::unique_ptr<Recommender> model;
  };
  struct UserInput;
  struct Scratch;

  void CreateSources();
  void FitSources(const TrainingData& data, const Context& ctx);
  void BuildEmbeddingIndex();
  std::vector<std::string> FeatureNames() const;
  // Stage 1 + features of one user: candidates (ascending item index) and their
  // feature rows (row-major, n_features each). `rows[s]` is source s's dense score row.
  void Candidates(const UserInput& user, Scratch& scratch, std::vector<ItemIndex>& candidates,
                  std::vector<float>& features) const;
  void ScoreFromInput(const UserInput& user, Scratch& scratch, float* out) const;

  std::vector<Source> sources_;
  std::size_t emb_count_, cooc_count_, pop_count_;
  FeatureWindowOptions window_options_;
  FeatureWindow window_;
  EmbeddingIndex emb_index_;
  XgbRanker ranker_;
  std::vector<std::string> feature_names_;
  std::vector<FeatureImportance> importance_;
  TwoStageSummary summary_;
};

}  // namespace recforge::models
