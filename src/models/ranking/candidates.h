// The building blocks of two-stage's first stage and of its features, computed from one
// "window" of interactions: the feature window while the ranker is trained, the full
// train part at inference (docs/models/ranking.md "Training without leakage").
//
//   FeatureWindow   per-item popularity / recency / rating statistics, per-user recent
//                   history and statistics, item co-occurrence lists, category affinity
//   EmbeddingIndex  nearest items over item vectors (cosine): HNSW (hnswlib) for large
//                   catalogs, exact top-k otherwise
//
// Thread-safety: both are immutable after Build / Load; const methods may be called
// concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "recforge/core/csr.h"
#include "recforge/core/types.h"
#include "recforge/data/dataset.h"

namespace recforge::models {

class ModelWriter;
class ModelReader;

struct FeatureWindowOptions {
  std::size_t history = 10;         // last N items per user (cooc / similarity features)
  std::size_t cooc_neighbors = 200; // co-occurring items kept per item
  double recent_days = 30;          // "recent popularity" window before `now`
};

struct FeatureWindow {
  // Builds from the rows of the window; rows may be in any order. `item_info` /
  // `item_ids` (may be null) give categories for the affinity features.
  static FeatureWindow Build(const data::Interactions& rows, std::size_t n_users, std::size_t n_items,
                             const std::vector<data::ItemInfo>* item_info, const data::IdMap* item_ids,
                             const FeatureWindowOptions& options, int threads);

  std::size_t n_users = 0, n_items = 0;
  Timestamp now = 0;  // newest time in the window (the reference of every age feature)
  // Per item (n_items): interaction count, count in (now - recent_days, now], times of
  // the first / last interaction (valid when pop > 0), mean rating (0 when none).
  std::vector<float> pop, pop_recent, item_mean_rating;
  std::vector<Timestamp> item_first, item_last;
  std::vector<ItemIndex> by_pop;  // items by descending count, ties to the smaller index
  // Per user (n_users): count, mean rating, time of the last interaction (valid when
  // count > 0), and the last `history` distinct items oldest first (CSR, values = rating).
  std::vector<float> user_count, user_mean_rating;
  std::vector<Timestamp> user_last;
  CsrMatrix recent;
  // Per item: its top `cooc_neighbors` co-occurring items (number of users with both),
  // sorted by item index for lookup.
  CsrMatrix cooc;
  // Item categories (n_items rows, category ids) and each user's share of items per
  // category (n_users rows); both have zero columns when the data has no metadata.
  CsrMatrix item_categories;
  CsrMatrix user_categories;

  bool has_categories() const { return item_categories.n_cols > 0; }
  // Co-occurrence count of (a, b) from a's list (0 when b is not in it).
  float Cooc(ItemIndex a, ItemIndex b) const;

  void Save(ModelWriter& writer) const;
  static FeatureWindow Load(ModelReader& reader, std::size_t n_users, std::size_t n_items);
};

// Cosine nearest neighbours over item vectors. `ann`: "exact" scans every item
// (O(n_items k) per query); "hnsw" builds an hnswlib graph (M, ef_construction = 2 ef,
// fixed level seed, points added in item order: the same index every time) and
// searches it with `ef`; "auto" is hnsw from `ann_min_items` items on.
class EmbeddingIndex {
 public:
  EmbeddingIndex();
  ~EmbeddingIndex();
  EmbeddingIndex(EmbeddingIndex&&) noexcept;
  EmbeddingIndex& operator=(EmbeddingIndex&&) noexcept;

  // `vectors`: n_items x dim, row-major. Zero vectors are kept (cosine 0 to everything).
  void Build(std::span<const float> vectors, std::size_t n_items, std::size_t dim, const std::string& ann,
             std::size_t ann_min_items, std::size_t hnsw_m, std::size_t hnsw_ef);

  bool empty() const { return n_items_ == 0; }
  bool uses_hnsw() const { return hnsw_ != nullptr; }
  std::size_t dim() const { return dim_; }
  // Unit-length vector of an item (dim floats).
  const float* Unit(ItemIndex item) const { return unit_.data() + std::size_t{item} * dim_; }
  // The k items nearest to `item` (itself excluded): (item, cosine), best first.
  void Neighbours(ItemIndex item, std::size_t k, std::vector<std::pair<ItemIndex, float>>& out) const;

 private:
  struct Hnsw;
  std::size_t n_items_ = 0, dim_ = 0;
  std::vector<float> unit_;
  std::unique_ptr<Hnsw> hnsw_;
};

}  // namespace recforge::models
