// The recommendation logic of `recforge serve` (issue 5): a trained model plus its
// prepared dataset, answering top-k requests with exclude-seen, category filters,
// excluded items and session context, real-time events (fold-in for factor models),
// item-to-item similarity and popularity, and a fallback chain for users the model
// cannot answer. No HTTP here (server.h wraps it).
//
// Sources, tried in this order:
//   model                  known user (training or events) with >= min_history
//                          interactions; users with events fold in (factor models) or use
//                          the family's ScoreHistory; otherwise the chain below.
//   fallback:item-to-item  the user's recent items / context_items: the model's
//                          SimilarItems, or co-occurrence on the train matrix.
//   fallback:content       TF-IDF over categories + title tokens (content_index.h); the
//                          profile is the mean of the history/context items' vectors.
//                          Reaches metadata-only items that have no interactions.
//   fallback:popular       train counts (per category with a filter).
//
// Thread-safety: every const method may run concurrently with others and with AddEvent
// (the per-user event state is guarded by a shared mutex; the rest is immutable).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recforge/core/csr.h"
#include "recforge/core/types.h"
#include "recforge/data/dataset.h"
#include "recforge/models/recommender.h"

namespace recforge::models {
class FactorModel;
}

namespace recforge::serve {

class AnnIndex;
class ContentIndex;

struct ServedModelInfo {
  std::string name, version, spec, family, path, sha256;
};

struct RecommendRequest {
  std::string user_id;                         // may be empty when context_items are given
  std::size_t top_k = 10;                      // validated by the caller: 1..1000
  bool exclude_seen = true;
  std::vector<std::string> filter_categories;  // keep items having any of these (empty: no filter)
  std::vector<std::string> exclude_items;      // original item ids never returned
  std::vector<std::string> context_items;      // original item ids of the current session
};

// One entry of an answer. `title` and `categories` view the item metadata of the
// RecommendationService that made the entry (immutable for its life): valid while that
// service lives, as the server keeps it for the whole request. Not copying them saves
// two allocations per item on the hot path.
struct RecommendedItem {
  std::string item_id;
  float score = 0;
  std::string_view title;
  std::span<const std::string> categories;
};

enum class Source { kModel, kPopular, kItemToItem, kContent };
// "model", "fallback:popular", "fallback:item-to-item", "fallback:content"
std::string_view Name(Source s);

struct RecommendResponse {
  std::string user_id;
  std::vector<RecommendedItem> items;
  Source source = Source::kModel;
};

struct FallbackOptions {
  // Tried in order when the model cannot answer (unknown user, or fewer than
  // min_history interactions, or only context_items).
  std::vector<Source> chain = {Source::kItemToItem, Source::kContent, Source::kPopular};
  std::size_t min_history = 1;
};

struct AnnOptions {
  std::size_t min_items = 200000;  // HNSW only for catalogs at least this large
  int m = 16;
  int ef_construction = 128;       // Recall@10 >= 0.95 at 1M items (ann_index.h)
  int ef_search = 128;
  std::size_t candidates = 216;    // retrieved per request (seen items skipped), re-scored
  bool enabled = true;
  bool cache = true;               // keep the graph beside the model file (<model>.hnsw)
};

class RecommendationService {
 public:
  // `dataset` is the prepared dataset the model was trained on (ids, train part,
  // item_info); the service keeps it. `threads` is used for building indexes.
  RecommendationService(std::shared_ptr<const models::Recommender> model, data::PreparedDataset dataset,
                        ServedModelInfo info, FallbackOptions fallback = {}, AnnOptions ann = {},
                        int threads = 1);
  ~RecommendationService();
  RecommendationService(const RecommendationService&) = delete;
  RecommendationService& operator=(const RecommendationService&) = delete;

  const ServedModelInfo& info() const { return info_; }
  RecommendResponse Recommend(const RecommendRequest& request) const;
  // Throws NotFound for an unknown item.
  std::vector<RecommendedItem> SimilarItems(const std::string& item_id, std::size_t k) const;
  std::vector<RecommendedItem> Popular(std::size_t k, const std::string& category = "") const;
  // A real-time event: the user's in-memory history grows at once (a new user becomes
  // known); the next Recommend excludes the item and, for factor models, re-solves the
  // user's vector from the grown history by fold-in. Unknown items are kept in the
  // history but not scored.
  void AddEvent(const std::string& user_id, const std::string& item_id, float rating, std::int64_t timestamp);
  bool KnowsUser(const std::string& user_id) const;
  // Newest first (events, then training interactions by time).
  std::vector<RecommendedItem> History(const std::string& user_id, std::size_t limit) const;
  std::size_t n_users() const;  // incl. users that arrived by events
  std::size_t n_items() const;  // catalog incl. metadata-only items
  bool ann_enabled() const { return ann_ != nullptr; }
  // How the HNSW graph was obtained ("built in 12.3 s", "loaded from X in 0.4 s"); empty without ANN.
  const std::string& ann_status() const { return ann_status_; }
  std::vector<std::string> Categories() const;  // sorted, for the demo page

  // Additions beyond INTERFACES.md.
  const models::Recommender& model() const { return *model_; }
  std::size_t n_events() const;

  // Scores fallback:content (and the similar items of an item the served model cannot
  // relate) with a `hybrid` model (models/hybrid/hybrid.h) instead of TF-IDF: every
  // catalog item gets the hybrid's item vector (metadata-only items: the sum of their
  // metadata feature embeddings), the profile is the mean of the recent / context items'
  // unit vectors and items rank by cosine with it. Set automatically when the served
  // model is a hybrid (`recforge serve --content-model FILE` sets another). Call before
  // serving (not concurrently with requests). Throws InvalidArgument when `model` is not
  // a hybrid model or was trained on another item catalog.
  void SetContentModel(std::shared_ptr<const models::Recommender> model);
  bool has_content_model() const { return content_model_ != nullptr; }

 private:
  struct Event {
    ItemIndex item = kInvalidIndex;  // catalog index; kInvalidIndex: unknown item (kept for History)
    std::string item_id;
    float rating = 1;
    std::int64_t timestamp = 0;
  };
  struct UserState {
    UserIndex train_user = kInvalidIndex;  // index in the training data, if any
    std::vector<Event> events;             // in arrival order
  };
  struct Query;  // per-request state (recommendation_service.cc)

  // Catalog index of an original item id (training items first, then metadata-only
  // items), or kInvalidIndex.
  ItemIndex FindItem(std::string_view item_id) const;
  // Category position of a name (exact, then case-insensitive), or kInvalidIndex.
  std::uint32_t FindCategory(std::string_view name) const;
  RecommendedItem MakeItem(ItemIndex item, float score) const;
  void BuildQuery(const RecommendRequest& request, Query& query) const;
  void BuildSequence(Query& query) const;
  bool Admissible(const Query& query, ItemIndex item) const;
  bool AnswerModel(const Query& query, std::vector<RecommendedItem>& out) const;
  bool AnswerAnn(const Query& query, const float* user_vector, float user_bias,
                 std::vector<RecommendedItem>& out) const;
  bool AnswerItemToItem(const Query& query, std::vector<RecommendedItem>& out) const;
  bool AnswerContent(const Query& query, std::vector<RecommendedItem>& out) const;
  bool AnswerPopular(const Query& query, std::vector<RecommendedItem>& out) const;
  // Item-to-item scores of `sources` (model SimilarItems, else co-occurrence), summed.
  void SimilarScores(std::span<const ItemIndex> sources, std::size_t depth,
                     std::vector<std::pair<ItemIndex, float>>& out) const;

  std::shared_ptr<const models::Recommender> model_;
  const models::FactorModel* factor_model_ = nullptr;  // model_ as a FactorModel, if it is one
  data::PreparedDataset dataset_;
  ServedModelInfo info_;
  FallbackOptions fallback_;
  AnnOptions ann_options_;
  int threads_ = 1;

  std::size_t n_model_items_ = 0;              // items the model scores (training id map)
  data::IdMap catalog_;                        // training item ids + metadata-only item ids
  std::vector<std::int32_t> item_info_index_;  // catalog item -> index in dataset_.item_info, or -1
  CsrMatrix train_;                            // users x model items (train + val, summed)
  CsrMatrix train_t_;                          // model items x users
  // Per training user, the train (+ val) rows newest first: items, ratings, times.
  std::vector<std::uint64_t> timeline_ptr_;
  std::vector<ItemIndex> timeline_items_;
  std::vector<float> timeline_ratings_;
  std::vector<std::int64_t> timeline_times_;
  std::vector<float> popularity_;          // train counts per catalog item (0: metadata-only)
  std::vector<ItemIndex> by_popularity_;   // catalog, most popular first (ties: index)
  std::vector<std::string> category_names_;                        // sorted
  std::unordered_map<std::string, std::uint32_t> category_index_;   // name -> position
  std::unordered_map<std::string, std::uint32_t> category_folded_;  // lower-cased name -> position
  std::vector<std::vector<ItemIndex>> category_items_;    // per category, ascending catalog items
  std::vector<std::vector<ItemIndex>> category_popular_;  // per category, by popularity
  std::vector<std::vector<std::uint32_t>> item_categories_;  // catalog item -> sorted category positions
  std::unique_ptr<AnnIndex> ann_;
  std::string ann_status_;
  std::unique_ptr<ContentIndex> content_;
  // SetContentModel: the hybrid model and the catalog's unit vectors (catalog x
  // content_factors_; a zero row: no content), used instead of content_ when set.
  std::shared_ptr<const models::Recommender> content_model_;
  std::size_t content_factors_ = 0;
  std::vector<float> content_vectors_;
  std::vector<std::uint8_t> content_present_;  // per catalog item: a non-zero vector
  std::vector<std::pair<ItemIndex, float>> ContentScores(std::span<const ItemIndex> profile_items, std::size_t k,
                                                         const std::function<bool(ItemIndex)>& admissible) const;

  mutable std::shared_mutex mutex_;                   // guards users_, n_new_users_, n_events_
  std::unordered_map<std::string, UserState> users_;  // users that sent events
  std::size_t n_new_users_ = 0;
  std::size_t n_events_ = 0;
};

}  // namespace recforge::serve
