#include "recforge/models/recommender.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"

namespace recforge::models {

TrainingData TrainingData::FromPrepared(const data::PreparedDataset& prepared, int threads) {
  TrainingData data;
  data.n_users = prepared.users.size();
  data.n_items = prepared.items.size();
  const auto& train = prepared.train;
  data.user_items = std::make_shared<const CsrMatrix>(
      CsrMatrix::FromCoordinates(data.n_users, data.n_items, train.users, train.items, train.ratings,
                                               threads));
  data.item_users = data.user_items->Transpose();
  data.train = &prepared.train;
  data.validation = prepared.val ? &*prepared.val : nullptr;
  data.item_info = &prepared.item_info;
  data.item_ids = &prepared.items;
  data.dataset_hash = prepared.meta.value("content_hash", std::string());
  return data;
}

const CsrMatrix Recommender::kNoInteractions;

void Recommender::Fit(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  n_users_ = data.n_users;
  n_items_ = data.n_items;
  dataset_hash_ = data.dataset_hash;
  // Shared, not copied: the model keeps the training matrix for exclude-seen and
  // fold-in without a second copy of it in memory.
  seen_ = data.user_items;
  FitImpl(data, ctx, callback);
}

bool Recommender::ScoreHistory(std::span<const ItemIndex>, std::span<const float>, float*) const { return false; }

RankedItems Recommender::SimilarItems(ItemIndex, std::size_t) const { return {}; }

void Recommender::PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items, float* out) const {
  // Generic path: one dense score row per distinct user, in order of appearance.
  std::vector<float> row(n_items_);
  UserIndex current = kInvalidIndex;
  for (std::size_t k = 0; k < users.size(); ++k) {
    if (users[k] != current) {
      current = users[k];
      ScoreUsers(std::span<const UserIndex>(&users[k], 1), row.data());
    }
    out[k] = items[k] < n_items_ ? row[items[k]] : 0.0f;
  }
}

namespace {

// Whether any of 16 scores is > threshold, with GCC vector extensions (4 x SSE compares
// on the baseline; the plain loop stays scalar: GCC unrolls it and gives up).
bool AnyAbove16(const float* scores, float threshold) {
  typedef float Float4 __attribute__((vector_size(16)));
  typedef int Int4 __attribute__((vector_size(16)));
  Float4 v[4];
  std::memcpy(v, scores, sizeof v);
  const Float4 t = {threshold, threshold, threshold, threshold};
  const Int4 above = (v[0] > t) | (v[1] > t) | (v[2] > t) | (v[3] > t);
  return (above[0] | above[1] | above[2] | above[3]) != 0;
}

}  // namespace

void TopK(const float* scores, std::size_t n_items, std::size_t k, RankedItems& out) {
  out.items.clear();
  out.scores.clear();
  if (k == 0) return;
  // Min-heap on "worse first": lower score, or equal score and larger index.
  struct Entry {
    float score;
    ItemIndex item;
  };
  auto worse = [](const Entry& a, const Entry& b) {
    return a.score > b.score || (a.score == b.score && a.item < b.item);
  };
  std::vector<Entry> heap;
  heap.reserve(k + 1);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  float threshold = kNegInf;
  constexpr std::size_t kBlock = 16;
  for (std::size_t i = 0; i < n_items; ++i) {
    if (heap.size() == k) {
      // Once the heap is full almost every score is below the threshold: skip whole
      // blocks with one branch-free (vectorised) comparison. A NaN or -inf never
      // passes `> threshold`, as in the scalar path below.
      while (i + kBlock <= n_items && !AnyAbove16(scores + i, threshold)) i += kBlock;
      if (i >= n_items) break;
    }
    float score = scores[i];
    if (score == kNegInf || std::isnan(score)) continue;
    if (heap.size() < k) {
      heap.push_back({score, static_cast<ItemIndex>(i)});
      std::push_heap(heap.begin(), heap.end(), worse);
      if (heap.size() == k) threshold = heap.front().score;
    } else if (score > threshold) {
      // Items arrive in ascending index order, so an equal score never displaces.
      std::pop_heap(heap.begin(), heap.end(), worse);
      heap.back() = {score, static_cast<ItemIndex>(i)};
      std::push_heap(heap.begin(), heap.end(), worse);
      threshold = heap.front().score;
    }
  }
  std::sort(heap.begin(), heap.end(), worse);
  for (const auto& entry : heap) {
    out.items.push_back(entry.item);
    out.scores.push_back(entry.score);
  }
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Applies candidates / exclusions / exclude-seen to one dense score row in place.
void MaskRow(float* scores, std::size_t n_items, std::span<const ItemIndex> seen, const RecommendOptions& options,
             std::vector<float>& scratch) {
  if (!options.candidates.empty()) {
    scratch.assign(n_items, kNegInf);
    for (ItemIndex item : options.candidates) {
      if (item < n_items) scratch[item] = scores[item];
    }
    std::copy(scratch.begin(), scratch.end(), scores);
  }
  if (options.exclude_seen) {
    for (ItemIndex item : seen) scores[item] = kNegInf;
  }
  for (ItemIndex item : options.excluded) {
    if (item < n_items) scores[item] = kNegInf;
  }
}

}  // namespace

void Recommender::RecommendBatch(std::span<const UserIndex> users, const RecommendOptions& options,
                                 RankedItems* out) const {
  // Sub-batches keep the dense score block near 8 MB whatever the catalog size.
  const std::size_t rows = std::max<std::size_t>(1, (2u << 20) / n_items_ + 1);
  thread_local std::vector<float> block, scratch;
  for (std::size_t begin = 0; begin < users.size(); begin += rows) {
    const std::size_t end = std::min(users.size(), begin + rows);
    block.resize((end - begin) * n_items_);
    ScoreUsers(users.subspan(begin, end - begin), block.data());
    for (std::size_t k = begin; k < end; ++k) {
      float* row = block.data() + (k - begin) * n_items_;
      std::span<const ItemIndex> seen_items;
      if (users[k] < seen().n_rows) seen_items = seen().RowIndices(users[k]);
      MaskRow(row, n_items_, seen_items, options, scratch);
      TopK(row, n_items_, options.k, out[k]);
    }
  }
}

std::vector<RankedItems> Recommender::Recommend(std::span<const UserIndex> users, const RecommendOptions& options,
                                                int threads) const {
  std::vector<RankedItems> results(users.size());
  if (users.empty() || n_items_ == 0) return results;
  // Up to 256 users per task, fewer when that leaves threads idle.
  const std::size_t per_thread = (users.size() + std::max(1, threads) - 1) / std::max(1, threads);
  const std::size_t batch = std::clamp<std::size_t>(per_thread / 4, 1, 256);
  const std::size_t n_batches = (users.size() + batch - 1) / batch;
  ParallelFor<std::size_t>(
      0, n_batches, threads,
      [&](std::size_t b) {
        const std::size_t begin = b * batch;
        const std::size_t end = std::min(users.size(), begin + batch);
        RecommendBatch(users.subspan(begin, end - begin), options, results.data() + begin);
      },
      Schedule::kDynamic, 1);
  return results;
}

RankedItems Recommender::RecommendHistory(std::span<const ItemIndex> items, std::span<const float> values,
                                          const RecommendOptions& options) const {
  RankedItems result;
  std::vector<float> row(n_items_), scratch;
  if (!ScoreHistory(items, values, row.data())) return result;
  MaskRow(row.data(), n_items_, items, options, scratch);
  TopK(row.data(), n_items_, options.k, result);
  return result;
}

}  // namespace recforge::models
