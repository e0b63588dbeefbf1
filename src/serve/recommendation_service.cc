#include "recforge/serve/recommendation_service.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <mutex>

#include "factor/factor_model.h"
#include "hybrid/hybrid.h"
#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/log.h"
#include "recforge/serve/ann_index.h"
#include "recforge/serve/content_index.h"

namespace recforge::serve {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Recent items an item-to-item answer starts from.
constexpr std::size_t kItemToItemSources = 5;
// Users of a source item visited by co-occurrence (the most recent rows of the column).
constexpr std::size_t kCoOccurrenceUsers = 2000;

std::string Folded(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Calls FactorModel::FoldIn (protected) through a derived class's member pointer: the
// service needs the folded-in user vector itself (for the ANN path), not a score row.
struct FoldInAccess : models::FactorModel {
  static bool Run(const models::FactorModel& model, std::span<const ItemIndex> items, std::span<const float> values,
                  float* user_vector, float* user_bias) {
    auto fold_in = &FoldInAccess::FoldIn;
    return (model.*fold_in)(items, values, user_vector, user_bias);
  }
};

bool Better(const std::pair<ItemIndex, float>& a, const std::pair<ItemIndex, float>& b) {
  return a.second != b.second ? a.second > b.second : a.first < b.first;
}

void TopKPairs(std::vector<std::pair<ItemIndex, float>>& pairs, std::size_t k) {
  if (pairs.size() > k) {
    std::partial_sort(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(k), pairs.end(), Better);
    pairs.resize(k);
  } else {
    std::sort(pairs.begin(), pairs.end(), Better);
  }
}

}  // namespace

std::string_view Name(Source s) {
  switch (s) {
    case Source::kModel: return "model";
    case Source::kPopular: return "fallback:popular";
    case Source::kItemToItem: return "fallback:item-to-item";
    case Source::kContent: return "fallback:content";
  }
  return "model";
}

// Everything a request needs, resolved once. Reused per thread (thread_local) so the
// vectors keep their capacity.
struct RecommendationService::Query {
  const RecommendRequest* request = nullptr;
  std::size_t k = 0;
  bool exclude_seen = true;
  UserIndex train_user = kInvalidIndex;  // a training user with interactions, or invalid
  bool has_events = false;
  std::size_t history_count = 0;  // training interactions + events on known items
  // The user's model-item history (train + events + context), merged by item, for fold-in.
  std::vector<ItemIndex> history_items;
  std::vector<float> history_values;
  // The same history in time order, oldest first (train timeline, events, context; a
  // repeated item keeps its latest position): what order-aware families (seq,
  // item2vec) read in RecommendHistory.
  std::vector<ItemIndex> sequence_items;
  std::vector<float> sequence_values;
  std::size_t n_event_history = 0;  // leading entries of history_items that are events
  std::vector<ItemIndex> recent;    // catalog items, newest first (context, events, train)
  std::vector<ItemIndex> context;   // catalog items of context_items
  std::vector<ItemIndex> excluded;  // sorted catalog items never returned (exclude_items; events + context when exclude_seen)
  std::vector<ItemIndex> model_excluded;  // `excluded` restricted to model items
  bool has_filter = false;
  std::vector<std::uint32_t> filter;      // sorted category positions (empty with has_filter: nothing passes)
  std::vector<ItemIndex> candidates;      // model items of the filter (only for several categories)
  std::span<const ItemIndex> candidate_span;

  void Clear() {
    request = nullptr;
    k = 0;
    exclude_seen = true;
    train_user = kInvalidIndex;
    has_events = false;
    history_count = 0;
    history_items.clear();
    history_values.clear();
    sequence_items.clear();
    sequence_values.clear();
    n_event_history = 0;
    recent.clear();
    context.clear();
    excluded.clear();
    model_excluded.clear();
    has_filter = false;
    filter.clear();
    candidates.clear();
    candidate_span = {};
  }
};

RecommendationService::RecommendationService(std::shared_ptr<const models::Recommender> model,
                                             data::PreparedDataset dataset, ServedModelInfo info,
                                             FallbackOptions fallback, AnnOptions ann, int threads)
    : model_(std::move(model)), dataset_(std::move(dataset)), info_(std::move(info)),
      fallback_(std::move(fallback)), ann_options_(ann), threads_(std::max(1, threads)) {
  if (!model_) throw InvalidArgument("RecommendationService: no model");
  factor_model_ = dynamic_cast<const models::FactorModel*>(model_.get());
  n_model_items_ = dataset_.items.size();
  if (model_->n_items() != n_model_items_ || model_->n_users() > dataset_.users.size()) {
    throw InvalidArgument("RecommendationService: the model (" + std::to_string(model_->n_users()) + " users, " +
                          std::to_string(model_->n_items()) + " items) does not match the dataset (" +
                          std::to_string(dataset_.users.size()) + " users, " + std::to_string(n_model_items_) +
                          " items)");
  }
  dataset_.users.BuildIndex();
  dataset_.items.BuildIndex();

  // The catalog: training items, then items known only from metadata.
  std::vector<std::string> catalog_ids = dataset_.items.ids();
  std::unordered_map<std::string_view, ItemIndex> metadata_only;
  item_info_index_.assign(n_model_items_, -1);
  for (std::size_t k = 0; k < dataset_.item_info.size(); ++k) {
    const auto& id = dataset_.item_info[k].item_id;
    if (auto found = dataset_.items.Find(id)) {
      if (item_info_index_[*found] < 0) item_info_index_[*found] = static_cast<std::int32_t>(k);
    } else if (metadata_only.emplace(id, static_cast<ItemIndex>(catalog_ids.size())).second) {
      catalog_ids.push_back(id);
      item_info_index_.push_back(static_cast<std::int32_t>(k));
    }
  }
  catalog_ = data::IdMap(std::move(catalog_ids));
  catalog_.BuildIndex();
  const std::size_t n_catalog = catalog_.size();

  // Training interactions (train + val: what TrainingData::FromPrepared fits on).
  const std::size_t n_users = dataset_.users.size();
  {
    std::vector<std::uint32_t> rows, cols;
    std::vector<float> values;
    std::vector<std::int64_t> times;
    auto append = [&](const data::Interactions& part) {
      rows.insert(rows.end(), part.users.begin(), part.users.end());
      cols.insert(cols.end(), part.items.begin(), part.items.end());
      values.insert(values.end(), part.ratings.begin(), part.ratings.end());
      times.insert(times.end(), part.times.begin(), part.times.end());
    };
    append(dataset_.train);
    if (dataset_.val) append(*dataset_.val);
    train_ = CsrMatrix::FromCoordinates(n_users, n_model_items_, rows, cols, values, threads_);
    train_t_ = train_.Transpose();
    // Timelines: rows grouped by user, newest first (ties: later row first).
    timeline_ptr_.assign(n_users + 1, 0);
    for (auto u : rows) ++timeline_ptr_[u + 1];
    for (std::size_t u = 0; u < n_users; ++u) timeline_ptr_[u + 1] += timeline_ptr_[u];
    std::vector<std::uint64_t> order(rows.size()), fill(timeline_ptr_.begin(), timeline_ptr_.end() - 1);
    for (std::size_t r = 0; r < rows.size(); ++r) order[fill[rows[r]]++] = r;
    timeline_items_.resize(rows.size());
    timeline_ratings_.resize(rows.size());
    timeline_times_.resize(rows.size());
    for (std::size_t u = 0; u < n_users; ++u) {
      auto begin = order.begin() + static_cast<std::ptrdiff_t>(timeline_ptr_[u]);
      auto end = order.begin() + static_cast<std::ptrdiff_t>(timeline_ptr_[u + 1]);
      std::stable_sort(begin, end, [&](std::uint64_t a, std::uint64_t b) {
        return times[a] != times[b] ? times[a] > times[b] : a > b;
      });
    }
    for (std::size_t p = 0; p < order.size(); ++p) {
      timeline_items_[p] = cols[order[p]];
      timeline_ratings_[p] = values[order[p]];
      timeline_times_[p] = times[order[p]];
    }
  }

  // Popularity: number of training users per item.
  popularity_.assign(n_catalog, 0.0f);
  for (std::size_t i = 0; i < n_model_items_; ++i) popularity_[i] = static_cast<float>(train_t_.RowLength(i));
  by_popularity_.resize(n_catalog);
  for (std::size_t i = 0; i < n_catalog; ++i) by_popularity_[i] = static_cast<ItemIndex>(i);
  std::stable_sort(by_popularity_.begin(), by_popularity_.end(),
                   [&](ItemIndex a, ItemIndex b) { return popularity_[a] > popularity_[b]; });

  // Categories and titles.
  std::vector<std::string> titles(n_catalog);
  std::vector<std::vector<std::string>> categories(n_catalog);
  for (std::size_t i = 0; i < n_catalog; ++i) {
    if (item_info_index_[i] < 0) continue;
    const auto& meta = dataset_.item_info[static_cast<std::size_t>(item_info_index_[i])];
    titles[i] = meta.title;
    categories[i] = meta.categories;
    for (const auto& c : meta.categories) category_names_.push_back(c);
  }
  std::sort(category_names_.begin(), category_names_.end());
  category_names_.erase(std::unique(category_names_.begin(), category_names_.end()), category_names_.end());
  for (std::size_t c = 0; c < category_names_.size(); ++c) {
    category_index_.emplace(category_names_[c], static_cast<std::uint32_t>(c));
    category_folded_.emplace(Folded(category_names_[c]), static_cast<std::uint32_t>(c));
  }
  category_items_.assign(category_names_.size(), {});
  item_categories_.assign(n_catalog, {});
  for (std::size_t i = 0; i < n_catalog; ++i) {
    auto& cats = item_categories_[i];
    for (const auto& c : categories[i]) cats.push_back(category_index_.at(c));
    std::sort(cats.begin(), cats.end());
    cats.erase(std::unique(cats.begin(), cats.end()), cats.end());
    for (auto c : cats) category_items_[c].push_back(static_cast<ItemIndex>(i));
  }
  category_popular_.assign(category_names_.size(), {});
  for (ItemIndex item : by_popularity_) {
    for (auto c : item_categories_[item]) category_popular_[c].push_back(item);
  }
  content_ = std::make_unique<ContentIndex>(titles, categories);
  if (model_->family() == "hybrid") SetContentModel(model_);  // its own content vectors

  if (ann_options_.enabled && factor_model_ && n_model_items_ > 0 && n_model_items_ >= ann_options_.min_items &&
      factor_model_->factors() > 0) {
    AnnIndexOptions options;
    options.m = ann_options_.m;
    options.ef_construction = ann_options_.ef_construction;
    options.ef_search = ann_options_.ef_search;
    // A model file gets its graph cached beside it, keyed by the file's checksum, so a
    // restart or a reload of the same model loads the graph instead of rebuilding it.
    const std::string cache_path = ann_options_.cache && !info_.path.empty() && !info_.sha256.empty()
                                       ? info_.path + ".hnsw"
                                       : std::string();
    AnnBuildInfo build;
    ann_ = AnnIndex::BuildOrLoad(factor_model_->item_factors(), n_model_items_, factor_model_->factors(),
                                 factor_model_->item_bias(), options, threads_, cache_path, info_.sha256, &build);
    ann_status_ = fmt::format("HNSW graph {} in {:.1f} s", build.loaded ? "loaded from " + cache_path : "built",
                              build.seconds);
    if (build.saved) ann_status_ += ", cached in " + cache_path;
    if (!build.cache_error.empty()) ann_status_ += " (cache: " + build.cache_error + ")";
  }
}

RecommendationService::~RecommendationService() = default;

ItemIndex RecommendationService::FindItem(std::string_view item_id) const {
  auto found = catalog_.Find(item_id);
  return found ? *found : kInvalidIndex;
}

std::uint32_t RecommendationService::FindCategory(std::string_view name) const {
  if (auto it = category_index_.find(std::string(name)); it != category_index_.end()) return it->second;
  if (auto it = category_folded_.find(Folded(name)); it != category_folded_.end()) return it->second;
  return kInvalidIndex;
}

RecommendedItem RecommendationService::MakeItem(ItemIndex item, float score) const {
  RecommendedItem out;
  out.item_id = catalog_.id(item);
  out.score = score;
  if (item < item_info_index_.size() && item_info_index_[item] >= 0) {
    const auto& meta = dataset_.item_info[static_cast<std::size_t>(item_info_index_[item])];
    out.title = meta.title;
    out.categories = meta.categories;
  }
  return out;
}

void RecommendationService::BuildSequence(Query& query) const {
  // Oldest first: the training timeline (stored newest first), the events (stored
  // oldest first), then the session's context items.
  thread_local std::vector<std::pair<ItemIndex, float>> ordered;
  ordered.clear();
  if (query.train_user != kInvalidIndex) {
    const UserIndex u = query.train_user;
    for (std::uint64_t p = timeline_ptr_[u + 1]; p > timeline_ptr_[u]; --p) {
      ordered.emplace_back(timeline_items_[p - 1], timeline_ratings_[p - 1]);
    }
  }
  // The events are the first n_event_history entries of history_items, newest first.
  for (std::size_t j = query.n_event_history; j > 0; --j) {
    ordered.emplace_back(query.history_items[j - 1], query.history_values[j - 1]);
  }
  for (std::size_t j = 0; j < query.context.size(); ++j) {
    if (query.context[j] < n_model_items_) ordered.emplace_back(query.context[j], 1.0f);
  }
  // A repeated item: values summed, kept at its latest position.
  thread_local std::vector<std::size_t> last;
  thread_local std::vector<std::pair<ItemIndex, std::size_t>> by_item;
  by_item.clear();
  for (std::size_t j = 0; j < ordered.size(); ++j) by_item.emplace_back(ordered[j].first, j);
  std::sort(by_item.begin(), by_item.end());
  last.clear();
  for (std::size_t j = 0; j < by_item.size(); ++j) {
    const bool final_occurrence = j + 1 == by_item.size() || by_item[j + 1].first != by_item[j].first;
    if (!final_occurrence) {
      ordered[by_item[j + 1].second].second += ordered[by_item[j].second].second;
    } else {
      last.push_back(by_item[j].second);
    }
  }
  std::sort(last.begin(), last.end());
  for (std::size_t position : last) {
    query.sequence_items.push_back(ordered[position].first);
    query.sequence_values.push_back(ordered[position].second);
  }
}

void RecommendationService::BuildQuery(const RecommendRequest& request, Query& query) const {
  query.Clear();
  query.request = &request;
  query.k = request.top_k;
  query.exclude_seen = request.exclude_seen;
  for (const auto& id : request.context_items) {
    ItemIndex item = FindItem(id);
    if (item != kInvalidIndex) query.context.push_back(item);
  }
  for (const auto& id : request.exclude_items) {
    ItemIndex item = FindItem(id);
    if (item != kInvalidIndex) query.excluded.push_back(item);
  }
  if (request.exclude_seen) query.excluded.insert(query.excluded.end(), query.context.begin(), query.context.end());

  // The user: training rows, then events (copied under the shared lock).
  std::size_t n_events_known = 0;
  if (!request.user_id.empty()) {
    auto found = dataset_.users.Find(request.user_id);
    if (found && *found < train_.n_rows && train_.RowLength(*found) > 0) query.train_user = *found;
    std::shared_lock lock(mutex_);
    if (auto it = users_.find(request.user_id); it != users_.end() && !it->second.events.empty()) {
      query.has_events = true;
      const auto& events = it->second.events;
      for (auto e = events.rbegin(); e != events.rend(); ++e) {
        if (e->item == kInvalidIndex) continue;
        ++n_events_known;
        query.recent.push_back(e->item);
        if (request.exclude_seen) query.excluded.push_back(e->item);
        if (e->item < n_model_items_) {
          query.history_items.push_back(e->item);
          query.history_values.push_back(e->rating);
          ++query.n_event_history;
        }
      }
    }
  }
  // Context first in `recent` (the current session is the freshest signal).
  query.recent.insert(query.recent.begin(), query.context.begin(), query.context.end());
  if (query.train_user != kInvalidIndex) {
    const UserIndex u = query.train_user;
    query.history_count = train_.RowLength(u);
    const std::uint64_t end = std::min<std::uint64_t>(timeline_ptr_[u + 1], timeline_ptr_[u] + 4 * kItemToItemSources);
    for (std::uint64_t p = timeline_ptr_[u]; p < end; ++p) query.recent.push_back(timeline_items_[p]);
    auto items = train_.RowIndices(u);
    auto values = train_.RowValues(u);
    query.history_items.insert(query.history_items.end(), items.begin(), items.end());
    query.history_values.insert(query.history_values.end(), values.begin(), values.end());
  }
  query.history_count += n_events_known;
  for (ItemIndex item : query.context) {
    if (item < n_model_items_) {
      query.history_items.push_back(item);
      query.history_values.push_back(1.0f);
    }
  }
  // Merge the history by item (values summed), as the training matrix would.
  if (query.has_events || !query.context.empty()) {
    BuildSequence(query);
    thread_local std::vector<std::pair<ItemIndex, float>> merged;
    merged.clear();
    for (std::size_t j = 0; j < query.history_items.size(); ++j) {
      merged.emplace_back(query.history_items[j], query.history_values[j]);
    }
    std::sort(merged.begin(), merged.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    query.history_items.clear();
    query.history_values.clear();
    for (const auto& [item, value] : merged) {
      if (!query.history_items.empty() && query.history_items.back() == item) {
        query.history_values.back() += value;
      } else {
        query.history_items.push_back(item);
        query.history_values.push_back(value);
      }
    }
  }
  // Recent: distinct, order kept.
  {
    thread_local std::vector<ItemIndex> seen_recent;
    seen_recent.clear();
    std::size_t out = 0;
    for (std::size_t j = 0; j < query.recent.size(); ++j) {
      ItemIndex item = query.recent[j];
      if (std::find(seen_recent.begin(), seen_recent.end(), item) != seen_recent.end()) continue;
      seen_recent.push_back(item);
      query.recent[out++] = item;
      if (out == kItemToItemSources) break;
    }
    query.recent.resize(out);
  }
  std::sort(query.excluded.begin(), query.excluded.end());
  query.excluded.erase(std::unique(query.excluded.begin(), query.excluded.end()), query.excluded.end());
  for (ItemIndex item : query.excluded) {
    if (item < n_model_items_) query.model_excluded.push_back(item);
  }

  // Category filter: positions, and the model items passing it (candidates).
  if (!request.filter_categories.empty()) {
    query.has_filter = true;
    for (const auto& name : request.filter_categories) {
      std::uint32_t c = FindCategory(name);
      if (c != kInvalidIndex) query.filter.push_back(c);
    }
    std::sort(query.filter.begin(), query.filter.end());
    query.filter.erase(std::unique(query.filter.begin(), query.filter.end()), query.filter.end());
    auto model_prefix = [&](std::uint32_t c) {
      const auto& items = category_items_[c];
      auto end = std::lower_bound(items.begin(), items.end(), static_cast<ItemIndex>(n_model_items_));
      return std::span<const ItemIndex>(items.data(), static_cast<std::size_t>(end - items.begin()));
    };
    if (query.filter.size() == 1) {
      query.candidate_span = model_prefix(query.filter[0]);
    } else if (query.filter.size() > 1) {
      for (auto c : query.filter) {
        auto items = model_prefix(c);
        query.candidates.insert(query.candidates.end(), items.begin(), items.end());
      }
      std::sort(query.candidates.begin(), query.candidates.end());
      query.candidates.erase(std::unique(query.candidates.begin(), query.candidates.end()), query.candidates.end());
      query.candidate_span = query.candidates;
    }
  }
}

bool RecommendationService::Admissible(const Query& query, ItemIndex item) const {
  if (item >= catalog_.size()) return false;
  if (std::binary_search(query.excluded.begin(), query.excluded.end(), item)) return false;
  if (query.exclude_seen && query.train_user != kInvalidIndex && item < n_model_items_ &&
      train_.Contains(query.train_user, item)) {
    return false;
  }
  if (query.has_filter) {
    const auto& cats = item_categories_[item];
    bool any = false;
    for (auto c : cats) {
      if (std::binary_search(query.filter.begin(), query.filter.end(), c)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

bool RecommendationService::AnswerModel(const Query& query, std::vector<RecommendedItem>& out) const {
  if (query.has_filter && query.candidate_span.empty()) return false;  // no model item passes the filter
  models::RecommendOptions options;
  options.k = query.k;
  options.exclude_seen = query.exclude_seen;
  options.candidates = query.candidate_span;
  options.excluded = query.model_excluded;
  const bool trained_user = query.train_user != kInvalidIndex && query.train_user < model_->n_users();
  const bool adhoc = query.has_events || !query.context.empty() || !trained_user;

  // Factor models: score the user vector directly against the ANN candidates or, for a
  // category filter narrower than a tenth of the catalog, against the filter's items.
  const bool narrow_filter = query.has_filter && query.candidate_span.size() * 10 <= n_model_items_;
  if (factor_model_ && (ann_ || narrow_filter)) {
    const std::size_t k = factor_model_->factors();
    thread_local std::vector<float> vector;
    vector.assign(k, 0.0f);
    float bias = 0.0f;
    bool ok = true;
    if (!adhoc) {
      std::copy_n(factor_model_->UserVector(query.train_user), k, vector.data());
      auto user_bias = factor_model_->user_bias();
      bias = query.train_user < user_bias.size() ? user_bias[query.train_user] : 0.0f;
    } else {
      ok = !query.history_items.empty() &&
           FoldInAccess::Run(*factor_model_, query.history_items, query.history_values, vector.data(), &bias);
    }
    if (ok && AnswerAnn(query, vector.data(), bias, out)) return true;
  }

  models::RankedItems ranked;
  if (adhoc && !query.history_items.empty()) {
    // Time order for the model (a set for fold-in families, a sequence for seq/item2vec).
    const bool ordered = !query.sequence_items.empty();
    ranked = model_->RecommendHistory(ordered ? query.sequence_items : query.history_items,
                                      ordered ? query.sequence_values : query.history_values, options);
  }
  if (ranked.items.empty() && trained_user) {
    // No fold-in for this family: the trained user, with the event items excluded.
    const UserIndex user = query.train_user;
    ranked = std::move(model_->Recommend(std::span<const UserIndex>(&user, 1), options, 1)[0]);
  }
  if (ranked.items.empty()) return false;
  out.reserve(ranked.items.size());
  for (std::size_t r = 0; r < ranked.items.size(); ++r) out.push_back(MakeItem(ranked.items[r], ranked.scores[r]));
  return true;
}

bool RecommendationService::AnswerAnn(const Query& query, const float* user_vector, float user_bias,
                                      std::vector<RecommendedItem>& out) const {
  const std::size_t k = factor_model_->factors();
  // The user's training items are skipped inside the graph search (they take no place
  // among the candidates); the other exclusions widen the search instead.
  std::span<const ItemIndex> seen;
  if (query.exclude_seen && query.train_user != kInvalidIndex) seen = train_.RowIndices(query.train_user);
  const std::size_t want = std::min(ann_options_.candidates + query.excluded.size() + query.k, n_model_items_);
  // Fold-in users: their history is seen too (Admissible covers training rows and events).
  const auto admissible = [&](ItemIndex item) {
    return Admissible(query, item) &&
           !(query.exclude_seen && query.has_events &&
             std::binary_search(query.history_items.begin(), query.history_items.end(), item));
  };
  thread_local std::vector<ItemIndex> kept;
  kept.clear();
  bool complete = false;  // every item that passes the filter was considered
  if (query.has_filter && (!ann_ || query.candidate_span.size() <= want)) {
    // A narrow filter: score its items exactly (cheaper than the graph, and complete).
    for (ItemIndex item : query.candidate_span) {
      if (admissible(item)) kept.push_back(item);
    }
    complete = true;
  } else {
    thread_local std::vector<AnnCandidate> found;
    const float max_error = ann_->Search(user_vector, want, found, seen);
    // Best first by approximate score; only the admissible candidates within 2 max_error
    // of the k-th best can still be in the exact top k (ann_index.h), so only those are
    // re-scored: about 20 rows of the factors instead of 256 (the rest would cost a
    // cache miss each).
    std::size_t passed = 0;
    float threshold = -std::numeric_limits<float>::infinity();
    for (const AnnCandidate& candidate : found) {
      if (candidate.score < threshold) break;
      if (!admissible(candidate.item)) continue;
      kept.push_back(candidate.item);
      if (++passed == query.k) threshold = candidate.score - 2.0f * max_error;
    }
  }
  // Exact scores of the survivors: one gathered pass over their (prefetched) rows.
  thread_local std::vector<float> dots;
  thread_local std::vector<std::pair<ItemIndex, float>> scored;
  dots.resize(kept.size());
  models::kernels::GatherDot(factor_model_->item_factors().data(), k, kept.data(), kept.size(), user_vector,
                             dots.data());
  scored.clear();
  const auto item_bias = factor_model_->item_bias();
  const float offset = factor_model_->global_bias() + user_bias;
  for (std::size_t j = 0; j < kept.size(); ++j) {
    scored.emplace_back(kept[j], offset + dots[j] + (item_bias.empty() ? 0.0f : item_bias[kept[j]]));
  }
  if (scored.empty() || (scored.size() < query.k && !complete)) return false;  // too few survive: exact path
  TopKPairs(scored, query.k);
  out.reserve(scored.size());
  for (const auto& [item, score] : scored) out.push_back(MakeItem(item, score));
  return true;
}

void RecommendationService::SimilarScores(std::span<const ItemIndex> sources, std::size_t depth,
                                          std::vector<std::pair<ItemIndex, float>>& out) const {
  out.clear();
  thread_local std::vector<float> acc;
  thread_local std::vector<ItemIndex> touched;
  if (acc.size() < n_model_items_) acc.assign(n_model_items_, 0.0f);
  touched.clear();
  auto add = [&](ItemIndex item, float score) {
    if (acc[item] == 0.0f) touched.push_back(item);
    acc[item] += score;
    if (acc[item] == 0.0f) acc[item] = 1e-30f;
  };
  for (ItemIndex source : sources) {
    if (source >= n_model_items_) continue;
    models::RankedItems similar = model_->SimilarItems(source, depth);
    if (!similar.items.empty()) {
      for (std::size_t r = 0; r < similar.items.size(); ++r) {
        if (similar.scores[r] > 0.0f && similar.items[r] < n_model_items_) add(similar.items[r], similar.scores[r]);
      }
      continue;
    }
    // Co-occurrence on the training matrix: cosine of the item columns (binary).
    const auto users = train_t_.RowIndices(source);
    const std::size_t n_users = std::min(users.size(), kCoOccurrenceUsers);
    if (n_users == 0) continue;
    thread_local std::vector<float> counts;
    thread_local std::vector<ItemIndex> counted;
    if (counts.size() < n_model_items_) counts.assign(n_model_items_, 0.0f);
    counted.clear();
    for (std::size_t j = 0; j < n_users; ++j) {
      for (ItemIndex other : train_.RowIndices(users[j])) {
        if (other == source) continue;
        if (counts[other] == 0.0f) counted.push_back(other);
        counts[other] += 1.0f;
      }
    }
    const float source_pop = popularity_[source];
    for (ItemIndex other : counted) {
      add(other, counts[other] / std::sqrt(source_pop * std::max(1.0f, popularity_[other])));
      counts[other] = 0.0f;
    }
  }
  out.reserve(touched.size());
  for (ItemIndex item : touched) {
    out.emplace_back(item, acc[item]);
    acc[item] = 0.0f;
  }
}

bool RecommendationService::AnswerItemToItem(const Query& query, std::vector<RecommendedItem>& out) const {
  if (query.recent.empty()) return false;
  thread_local std::vector<std::pair<ItemIndex, float>> scored;
  const std::size_t depth = std::min(n_model_items_, 4 * query.k + query.excluded.size() + 50);
  SimilarScores(query.recent, depth, scored);
  std::size_t kept = 0;
  for (const auto& pair : scored) {
    if (!Admissible(query, pair.first)) continue;
    if (std::find(query.recent.begin(), query.recent.end(), pair.first) != query.recent.end()) continue;
    scored[kept++] = pair;
  }
  scored.resize(kept);
  if (scored.empty()) return false;
  TopKPairs(scored, query.k);
  for (const auto& [item, score] : scored) out.push_back(MakeItem(item, score));
  return true;
}

bool RecommendationService::AnswerContent(const Query& query, std::vector<RecommendedItem>& out) const {
  if (query.recent.empty()) return false;
  auto result = ContentScores(query.recent, query.k, [&](ItemIndex item) { return Admissible(query, item); });
  if (result.empty()) return false;
  for (const auto& [item, score] : result) out.push_back(MakeItem(item, score));
  return true;
}

void RecommendationService::SetContentModel(std::shared_ptr<const models::Recommender> model) {
  const auto* hybrid = dynamic_cast<const models::HybridModel*>(model.get());
  if (hybrid == nullptr) {
    throw InvalidArgument("content model: a hybrid model is needed (got family '" +
                          (model ? model->family() : std::string("none")) + "')");
  }
  if (hybrid->n_items() != n_model_items_ ||
      (!hybrid->dataset_hash().empty() && !model_->dataset_hash().empty() &&
       hybrid->dataset_hash() != model_->dataset_hash())) {
    throw InvalidArgument("content model: trained on another dataset (" + std::to_string(hybrid->n_items()) +
                          " items, dataset " + hybrid->dataset_hash().substr(0, 12) + ") than the served model (" +
                          std::to_string(n_model_items_) + " items, dataset " +
                          model_->dataset_hash().substr(0, 12) + ")");
  }
  const std::size_t f = hybrid->factors();
  const std::size_t n = catalog_.size();
  std::vector<float> vectors(n * f, 0.0f);
  std::vector<std::uint8_t> present(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    float* row = vectors.data() + i * f;
    float bias = 0.0f;
    if (i < n_model_items_) {
      std::copy_n(hybrid->ItemVector(static_cast<ItemIndex>(i)), f, row);
    } else if (item_info_index_[i] >= 0) {
      hybrid->ContentVector(dataset_.item_info[static_cast<std::size_t>(item_info_index_[i])], row, &bias);
    }
    const float norm = std::sqrt(models::kernels::SquaredNorm(row, f));
    if (norm > 0.0f) {
      models::kernels::Scale(1.0f / norm, row, f);
      present[i] = 1;
    }
  }
  content_factors_ = f;
  content_vectors_ = std::move(vectors);
  content_present_ = std::move(present);
  content_model_ = std::move(model);
}

std::vector<std::pair<ItemIndex, float>> RecommendationService::ContentScores(
    std::span<const ItemIndex> profile_items, std::size_t k, const std::function<bool(ItemIndex)>& admissible) const {
  if (!content_model_) return content_->Query(profile_items, k, admissible);
  const std::size_t f = content_factors_;
  const std::size_t n = content_present_.size();
  thread_local std::vector<float> profile, scores;
  profile.assign(f, 0.0f);
  bool any = false;
  for (ItemIndex item : profile_items) {
    if (item >= n || !content_present_[item]) continue;
    models::kernels::Axpy(1.0f, content_vectors_.data() + std::size_t{item} * f, profile.data(), f);
    any = true;
  }
  const float norm = any ? std::sqrt(models::kernels::SquaredNorm(profile.data(), f)) : 0.0f;
  if (!(norm > 0.0f) || k == 0) return {};
  scores.resize(n);
  models::kernels::GemmNT(1, n, f, 1.0f / norm, profile.data(), content_vectors_.data(), 0.0f, scores.data());
  std::vector<std::pair<ItemIndex, float>> out;
  for (std::size_t i = 0; i < n; ++i) {
    const auto item = static_cast<ItemIndex>(i);
    if (!content_present_[i]) continue;
    if (std::find(profile_items.begin(), profile_items.end(), item) != profile_items.end()) continue;
    if (admissible && !admissible(item)) continue;
    out.emplace_back(item, scores[i]);
  }
  TopKPairs(out, k);
  return out;
}

bool RecommendationService::AnswerPopular(const Query& query, std::vector<RecommendedItem>& out) const {
  thread_local std::vector<std::pair<ItemIndex, float>> picked;
  picked.clear();
  auto take = [&](const std::vector<ItemIndex>& list) {
    std::size_t n = 0;
    for (ItemIndex item : list) {
      if (n == query.k) break;
      if (!Admissible(query, item)) continue;
      picked.emplace_back(item, popularity_[item]);
      ++n;
    }
  };
  if (query.has_filter) {
    for (auto c : query.filter) take(category_popular_[c]);
    // Several categories: merge (an item may be listed under more than one).
    std::sort(picked.begin(), picked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    picked.erase(std::unique(picked.begin(), picked.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
                 picked.end());
    // Ties keep the popularity order (by_popularity_ is stable by index).
  } else {
    take(by_popularity_);
  }
  if (picked.empty()) return false;
  TopKPairs(picked, query.k);
  for (const auto& [item, score] : picked) out.push_back(MakeItem(item, score));
  return true;
}

RecommendResponse RecommendationService::Recommend(const RecommendRequest& request) const {
  RecommendResponse response;
  response.user_id = request.user_id;
  response.source = Source::kModel;
  if (request.top_k == 0) return response;
  thread_local Query query;
  BuildQuery(request, query);
  const bool known = query.train_user != kInvalidIndex || query.has_events;
  if (!request.user_id.empty() && known && query.history_count >= fallback_.min_history) {
    if (AnswerModel(query, response.items)) return response;
    response.items.clear();
  }
  for (Source source : fallback_.chain) {
    response.source = source;
    bool answered = false;
    switch (source) {
      case Source::kModel: answered = false; break;
      case Source::kItemToItem: answered = AnswerItemToItem(query, response.items); break;
      case Source::kContent: answered = AnswerContent(query, response.items); break;
      case Source::kPopular: answered = AnswerPopular(query, response.items); break;
    }
    if (answered) return response;
    response.items.clear();
  }
  response.source = Source::kPopular;
  return response;
}

std::vector<RecommendedItem> RecommendationService::SimilarItems(const std::string& item_id, std::size_t k) const {
  const ItemIndex item = FindItem(item_id);
  if (item == kInvalidIndex) throw NotFound("unknown item '" + item_id + "'");
  std::vector<RecommendedItem> out;
  if (k == 0) return out;
  std::vector<std::pair<ItemIndex, float>> scored;
  if (item < n_model_items_) {
    SimilarScores(std::span<const ItemIndex>(&item, 1), std::min(n_model_items_, k + 1), scored);
    scored.erase(std::remove_if(scored.begin(), scored.end(), [&](const auto& p) { return p.first == item; }),
                 scored.end());
    TopKPairs(scored, k);
  }
  if (scored.empty()) scored = ContentScores(std::span<const ItemIndex>(&item, 1), k, {});
  out.reserve(scored.size());
  for (const auto& [other, score] : scored) out.push_back(MakeItem(other, score));
  return out;
}

std::vector<RecommendedItem> RecommendationService::Popular(std::size_t k, const std::string& category) const {
  std::vector<RecommendedItem> out;
  const std::vector<ItemIndex>* list = &by_popularity_;
  if (!category.empty()) {
    const std::uint32_t c = FindCategory(category);
    if (c == kInvalidIndex) return out;
    list = &category_popular_[c];
  }
  const std::size_t n = std::min(k, list->size());
  out.reserve(n);
  for (std::size_t r = 0; r < n; ++r) out.push_back(MakeItem((*list)[r], popularity_[(*list)[r]]));
  return out;
}

void RecommendationService::AddEvent(const std::string& user_id, const std::string& item_id, float rating,
                                     std::int64_t timestamp) {
  if (user_id.empty()) throw InvalidArgument("event: user_id must not be empty");
  if (item_id.empty()) throw InvalidArgument("event: item_id must not be empty");
  Event event;
  event.item = FindItem(item_id);
  event.item_id = item_id;
  event.rating = rating;
  event.timestamp = timestamp;
  auto train_user = dataset_.users.Find(user_id);
  std::unique_lock lock(mutex_);
  auto [it, inserted] = users_.try_emplace(user_id);
  if (inserted) {
    it->second.train_user = train_user ? *train_user : kInvalidIndex;
    if (!train_user) ++n_new_users_;
  }
  it->second.events.push_back(std::move(event));
  ++n_events_;
}

bool RecommendationService::KnowsUser(const std::string& user_id) const {
  auto found = dataset_.users.Find(user_id);
  if (found && *found < train_.n_rows && train_.RowLength(*found) > 0) return true;
  std::shared_lock lock(mutex_);
  auto it = users_.find(user_id);
  return it != users_.end() && !it->second.events.empty();
}

std::vector<RecommendedItem> RecommendationService::History(const std::string& user_id, std::size_t limit) const {
  struct Row {
    std::int64_t time;
    std::size_t order;  // larger: newer on equal times
    ItemIndex item;
    std::string item_id;
    float rating;
  };
  std::vector<Row> rows;
  auto found = dataset_.users.Find(user_id);
  if (found && *found < train_.n_rows) {
    const UserIndex u = *found;
    const std::uint64_t n = timeline_ptr_[u + 1] - timeline_ptr_[u];
    for (std::uint64_t p = timeline_ptr_[u]; p < timeline_ptr_[u + 1]; ++p) {
      rows.push_back({timeline_times_[p], static_cast<std::size_t>(n - (p - timeline_ptr_[u])),
                      timeline_items_[p], {}, timeline_ratings_[p]});
    }
  }
  {
    std::shared_lock lock(mutex_);
    if (auto it = users_.find(user_id); it != users_.end()) {
      const std::size_t base = rows.size() + 1;
      for (std::size_t e = 0; e < it->second.events.size(); ++e) {
        const auto& event = it->second.events[e];
        rows.push_back({event.timestamp, base + e, event.item, event.item_id, event.rating});
      }
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.time != b.time ? a.time > b.time : a.order > b.order; });
  if (rows.size() > limit) rows.resize(limit);
  std::vector<RecommendedItem> out;
  out.reserve(rows.size());
  for (const auto& row : rows) {
    if (row.item != kInvalidIndex) {
      out.push_back(MakeItem(row.item, row.rating));
    } else {
      RecommendedItem item;
      item.item_id = row.item_id;
      item.score = row.rating;
      out.push_back(std::move(item));
    }
  }
  return out;
}

std::size_t RecommendationService::n_users() const {
  std::shared_lock lock(mutex_);
  return dataset_.users.size() + n_new_users_;
}

std::size_t RecommendationService::n_items() const { return catalog_.size(); }

std::vector<std::string> RecommendationService::Categories() const { return category_names_; }

std::size_t RecommendationService::n_events() const {
  std::shared_lock lock(mutex_);
  return n_events_;
}

}  // namespace recforge::serve
