#include "candidates.h"

#include <hnswlib/hnswlib.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

constexpr double kSecondsPerDay = 86400.0;

// CSR from per-row lists of (column, value).
CsrMatrix FromRows(const std::vector<std::vector<std::pair<std::uint32_t, float>>>& rows, std::size_t n_cols) {
  CsrMatrix matrix;
  matrix.n_rows = rows.size();
  matrix.n_cols = n_cols;
  matrix.indptr.assign(rows.size() + 1, 0);
  for (std::size_t r = 0; r < rows.size(); ++r) matrix.indptr[r + 1] = matrix.indptr[r] + rows[r].size();
  matrix.indices.reserve(matrix.indptr.back());
  matrix.values.reserve(matrix.indptr.back());
  for (const auto& row : rows) {
    for (const auto& [col, value] : row) {
      matrix.indices.push_back(col);
      matrix.values.push_back(value);
    }
  }
  return matrix;
}

void CheckCsr(const CsrMatrix& matrix, std::size_t n_rows, std::size_t n_cols, const ModelReader& reader,
              const char* what) {
  bool ok = matrix.n_rows == n_rows && (n_cols == 0 || matrix.n_cols == n_cols);
  for (auto col : matrix.indices) ok = ok && col < matrix.n_cols;
  if (!ok) throw FormatError(fmt::format("{}: two-stage {} do not match the model's shape", reader.source(), what));
}

}  // namespace

FeatureWindow FeatureWindow::Build(const data::Interactions& rows, std::size_t n_users, std::size_t n_items,
                                   const std::vector<data::ItemInfo>* item_info, const data::IdMap* item_ids,
                                   const FeatureWindowOptions& options, int threads) {
  FeatureWindow window;
  window.n_users = n_users;
  window.n_items = n_items;
  const std::size_t n = rows.size();
  window.now = 0;
  for (std::size_t r = 0; r < n; ++r) window.now = r == 0 ? rows.times[r] : std::max(window.now, rows.times[r]);
  const double recent_from = static_cast<double>(window.now) - options.recent_days * kSecondsPerDay;

  // Items.
  window.pop.assign(n_items, 0.0f);
  window.pop_recent.assign(n_items, 0.0f);
  window.item_mean_rating.assign(n_items, 0.0f);
  window.item_first.assign(n_items, 0);
  window.item_last.assign(n_items, 0);
  std::vector<double> item_rating_sum(n_items, 0.0);
  window.user_count.assign(n_users, 0.0f);
  window.user_mean_rating.assign(n_users, 0.0f);
  window.user_last.assign(n_users, 0);
  std::vector<double> user_rating_sum(n_users, 0.0);
  for (std::size_t r = 0; r < n; ++r) {
    const ItemIndex item = rows.items[r];
    const UserIndex user = rows.users[r];
    const Timestamp time = rows.times[r];
    if (item >= n_items || user >= n_users) {
      throw InvalidArgument(fmt::format("two-stage: interaction row {} has user {} / item {} beyond {} x {}", r,
                                        user, item, n_users, n_items));
    }
    if (window.pop[item] == 0.0f) {
      window.item_first[item] = time;
      window.item_last[item] = time;
    }
    window.item_first[item] = std::min(window.item_first[item], time);
    window.item_last[item] = std::max(window.item_last[item], time);
    window.pop[item] += 1.0f;
    if (static_cast<double>(time) > recent_from) window.pop_recent[item] += 1.0f;
    item_rating_sum[item] += rows.ratings[r];
    window.user_last[user] = window.user_count[user] == 0.0f ? time : std::max(window.user_last[user], time);
    window.user_count[user] += 1.0f;
    user_rating_sum[user] += rows.ratings[r];
  }
  for (std::size_t i = 0; i < n_items; ++i) {
    if (window.pop[i] > 0) window.item_mean_rating[i] = static_cast<float>(item_rating_sum[i] / window.pop[i]);
  }
  for (std::size_t u = 0; u < n_users; ++u) {
    if (window.user_count[u] > 0) {
      window.user_mean_rating[u] = static_cast<float>(user_rating_sum[u] / window.user_count[u]);
    }
  }
  window.by_pop.resize(n_items);
  std::iota(window.by_pop.begin(), window.by_pop.end(), ItemIndex{0});
  std::stable_sort(window.by_pop.begin(), window.by_pop.end(),
                   [&](ItemIndex a, ItemIndex b) { return window.pop[a] > window.pop[b]; });

  // Each user's rows by (time, item); the last `history` distinct items, oldest first.
  std::vector<RowIndex> order(n);
  std::iota(order.begin(), order.end(), RowIndex{0});
  std::sort(order.begin(), order.end(), [&](RowIndex a, RowIndex b) {
    if (rows.users[a] != rows.users[b]) return rows.users[a] < rows.users[b];
    if (rows.times[a] != rows.times[b]) return rows.times[a] < rows.times[b];
    return rows.items[a] < rows.items[b];
  });
  std::vector<std::vector<std::pair<std::uint32_t, float>>> recent(n_users);
  std::vector<std::vector<std::uint32_t>> user_items(n_users);  // distinct, any order
  {
    std::size_t begin = 0;
    while (begin < n) {
      const UserIndex user = rows.users[order[begin]];
      std::size_t end = begin;
      while (end < n && rows.users[order[end]] == user) ++end;
      auto& list = recent[user];
      for (std::size_t k = end; k > begin && list.size() < options.history; --k) {
        const RowIndex row = order[k - 1];
        const ItemIndex item = rows.items[row];
        bool present = false;
        for (const auto& entry : list) present = present || entry.first == item;
        if (!present) list.emplace_back(item, rows.ratings[row]);
      }
      std::reverse(list.begin(), list.end());
      auto& items = user_items[user];
      for (std::size_t k = begin; k < end; ++k) items.push_back(rows.items[order[k]]);
      std::sort(items.begin(), items.end());
      items.erase(std::unique(items.begin(), items.end()), items.end());
      begin = end;
    }
  }
  window.recent = FromRows(recent, n_items);

  // Co-occurrence: for each item, count the co-users' other items; keep the top lists.
  std::vector<std::vector<std::uint32_t>> item_users(n_items);
  for (std::size_t u = 0; u < n_users; ++u) {
    for (auto item : user_items[u]) item_users[item].push_back(static_cast<std::uint32_t>(u));
  }
  std::vector<std::vector<std::pair<std::uint32_t, float>>> cooc(n_items);
  const int parts = std::max(1, threads);
  ParallelRegion(parts, [&](int part) {
    std::vector<float> counts(n_items, 0.0f);
    std::vector<std::uint32_t> touched;
    for (std::size_t item = static_cast<std::size_t>(part); item < n_items; item += static_cast<std::size_t>(parts)) {
      touched.clear();
      for (auto user : item_users[item]) {
        for (auto other : user_items[user]) {
          if (other == item) continue;
          if (counts[other] == 0.0f) touched.push_back(other);
          counts[other] += 1.0f;
        }
      }
      auto better = [&](std::uint32_t a, std::uint32_t b) {
        return counts[a] > counts[b] || (counts[a] == counts[b] && a < b);
      };
      const std::size_t keep = std::min(options.cooc_neighbors, touched.size());
      std::partial_sort(touched.begin(), touched.begin() + static_cast<std::ptrdiff_t>(keep), touched.end(), better);
      auto& list = cooc[item];
      for (std::size_t k = 0; k < keep; ++k) list.emplace_back(touched[k], counts[touched[k]]);
      std::sort(list.begin(), list.end());
      for (auto other : touched) counts[other] = 0.0f;
    }
  });
  window.cooc = FromRows(cooc, n_items);

  // Categories (metadata), ids in order of first appearance over the item table.
  std::vector<std::vector<std::pair<std::uint32_t, float>>> item_cats(n_items);
  std::map<std::string, std::uint32_t> category_ids;
  if (item_info != nullptr && item_ids != nullptr) {
    item_ids->BuildIndex();
    for (const auto& info : *item_info) {
      auto index = item_ids->Find(info.item_id);
      if (!index || *index >= n_items) continue;
      for (const auto& category : info.categories) {
        auto [it, inserted] = category_ids.emplace(category, static_cast<std::uint32_t>(category_ids.size()));
        auto& list = item_cats[*index];
        if (std::find_if(list.begin(), list.end(), [&](const auto& e) { return e.first == it->second; }) ==
            list.end()) {
          list.emplace_back(it->second, 1.0f);
        }
      }
    }
    for (auto& list : item_cats) std::sort(list.begin(), list.end());
  }
  const std::size_t n_categories = category_ids.size();
  window.item_categories = FromRows(item_cats, n_categories);
  std::vector<std::vector<std::pair<std::uint32_t, float>>> user_cats(n_users);
  if (n_categories > 0) {
    std::vector<float> share(n_categories, 0.0f);
    for (std::size_t u = 0; u < n_users; ++u) {
      if (user_items[u].empty()) continue;
      for (auto item : user_items[u]) {
        for (const auto& entry : item_cats[item]) share[entry.first] += 1.0f;
      }
      const float scale = 1.0f / static_cast<float>(user_items[u].size());
      for (std::uint32_t c = 0; c < n_categories; ++c) {
        if (share[c] > 0) user_cats[u].emplace_back(c, share[c] * scale);
        share[c] = 0.0f;
      }
    }
  }
  window.user_categories = FromRows(user_cats, n_categories);
  return window;
}

float FeatureWindow::Cooc(ItemIndex a, ItemIndex b) const {
  auto items = cooc.RowIndices(a);
  auto it = std::lower_bound(items.begin(), items.end(), b);
  if (it == items.end() || *it != b) return 0.0f;
  return cooc.values[cooc.indptr[a] + static_cast<std::size_t>(it - items.begin())];
}

void FeatureWindow::Save(ModelWriter& writer) const {
  writer.Write<std::int64_t>(now);
  writer.WriteVector(pop);
  writer.WriteVector(pop_recent);
  writer.WriteVector(item_mean_rating);
  writer.WriteVector(item_first);
  writer.WriteVector(item_last);
  writer.WriteVector(by_pop);
  writer.WriteVector(user_count);
  writer.WriteVector(user_mean_rating);
  writer.WriteVector(user_last);
  writer.WriteCsr(recent);
  writer.WriteCsr(cooc);
  writer.WriteCsr(item_categories);
  writer.WriteCsr(user_categories);
}

FeatureWindow FeatureWindow::Load(ModelReader& reader, std::size_t n_users, std::size_t n_items) {
  FeatureWindow window;
  window.n_users = n_users;
  window.n_items = n_items;
  window.now = reader.Read<std::int64_t>();
  window.pop = reader.ReadVector<float>();
  window.pop_recent = reader.ReadVector<float>();
  window.item_mean_rating = reader.ReadVector<float>();
  window.item_first = reader.ReadVector<Timestamp>();
  window.item_last = reader.ReadVector<Timestamp>();
  window.by_pop = reader.ReadVector<ItemIndex>();
  window.user_count = reader.ReadVector<float>();
  window.user_mean_rating = reader.ReadVector<float>();
  window.user_last = reader.ReadVector<Timestamp>();
  window.recent = reader.ReadCsr();
  window.cooc = reader.ReadCsr();
  window.item_categories = reader.ReadCsr();
  window.user_categories = reader.ReadCsr();
  const bool sizes_ok = window.pop.size() == n_items && window.pop_recent.size() == n_items &&
                        window.item_mean_rating.size() == n_items && window.item_first.size() == n_items &&
                        window.item_last.size() == n_items && window.by_pop.size() == n_items &&
                        window.user_count.size() == n_users && window.user_mean_rating.size() == n_users &&
                        window.user_last.size() == n_users &&
                        std::all_of(window.by_pop.begin(), window.by_pop.end(),
                                    [&](ItemIndex item) { return item < n_items; });
  if (!sizes_ok) throw FormatError(fmt::format("{}: two-stage feature window does not match the model's shape",
                                               reader.source()));
  CheckCsr(window.recent, n_users, n_items, reader, "recent histories");
  CheckCsr(window.cooc, n_items, n_items, reader, "co-occurrence lists");
  CheckCsr(window.item_categories, n_items, 0, reader, "item categories");
  CheckCsr(window.user_categories, n_users, window.item_categories.n_cols, reader, "user categories");
  return window;
}

// hnswlib's space must outlive its index: both live here, the space first.
struct EmbeddingIndex::Hnsw {
  Hnsw(std::size_t dim, std::size_t n_items, std::size_t m, std::size_t ef_construction)
      : space(dim), index(&space, n_items, m, ef_construction, /*random_seed=*/100) {}
  hnswlib::InnerProductSpace space;
  hnswlib::HierarchicalNSW<float> index;
};

EmbeddingIndex::EmbeddingIndex() = default;
EmbeddingIndex::~EmbeddingIndex() = default;
EmbeddingIndex::EmbeddingIndex(EmbeddingIndex&&) noexcept = default;
EmbeddingIndex& EmbeddingIndex::operator=(EmbeddingIndex&&) noexcept = default;

void EmbeddingIndex::Build(std::span<const float> vectors, std::size_t n_items, std::size_t dim,
                           const std::string& ann, std::size_t ann_min_items, std::size_t hnsw_m,
                           std::size_t hnsw_ef) {
  hnsw_.reset();
  n_items_ = n_items;
  dim_ = dim;
  unit_.assign(vectors.begin(), vectors.end());
  for (std::size_t i = 0; i < n_items; ++i) {
    float* row = unit_.data() + i * dim;
    const float norm = std::sqrt(kernels::SquaredNorm(row, dim));
    if (norm > 0) kernels::Scale(1.0f / norm, row, dim);
  }
  const bool hnsw = ann == "hnsw" || (ann == "auto" && n_items >= ann_min_items);
  if (!hnsw || n_items == 0) return;
  // Sequential insertion in item order with hnswlib's fixed level seed: the same graph
  // on every run, whatever the thread count.
  hnsw_ = std::make_unique<Hnsw>(dim, n_items, hnsw_m, 2 * hnsw_ef);
  for (std::size_t i = 0; i < n_items; ++i) hnsw_->index.addPoint(unit_.data() + i * dim, i);
  hnsw_->index.setEf(hnsw_ef);
}

void EmbeddingIndex::Neighbours(ItemIndex item, std::size_t k, std::vector<std::pair<ItemIndex, float>>& out) const {
  out.clear();
  if (item >= n_items_ || k == 0) return;
  const float* query = Unit(item);
  if (hnsw_ != nullptr) {
    auto found = hnsw_->index.searchKnn(query, std::min(k + 1, n_items_));
    while (!found.empty()) {
      const auto [distance, label] = found.top();
      found.pop();
      if (label != item) out.emplace_back(static_cast<ItemIndex>(label), 1.0f - distance);
    }
  } else {
    out.reserve(n_items_);
    for (std::size_t other = 0; other < n_items_; ++other) {
      if (other == item) continue;
      out.emplace_back(static_cast<ItemIndex>(other), kernels::Dot(query, Unit(static_cast<ItemIndex>(other)), dim_));
    }
  }
  auto better = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
  const std::size_t keep = std::min(k, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(), better);
  out.resize(keep);
}

}  // namespace recforge::models
