// AnnIndex (HNSW, inner product): Recall@10 of the serving path (ANN candidates, exact
// re-score, top 10) against exact search on a synthetic factor model (100k items by
// default, RECFORGE_ANN_TEST_ITEMS for more; dim 32, M 16, ef_construction 100), plus the
// small-index contract.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>

#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/serve/ann_index.h"

namespace recforge::serve {
namespace {

struct Synthetic {
  std::size_t n = 0, dim = 0;
  std::vector<float> items;  // n x dim
  std::vector<float> bias;   // n (may be empty)
};

// Random directions with a popularity-like spread of norms (a few long vectors, a
// long tail of short ones), like trained item factors.
Synthetic MakeItems(std::size_t n, std::size_t dim, bool with_bias, std::uint64_t seed) {
  Synthetic s;
  s.n = n;
  s.dim = dim;
  s.items.resize(n * dim);
  if (with_bias) s.bias.resize(n);
  ParallelFor<std::size_t>(0, n, 2, [&](std::size_t i) {
    Rng rng(seed * 1000003 + i);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    float* row = s.items.data() + i * dim;
    double norm2 = 0;
    for (std::size_t f = 0; f < dim; ++f) {
      row[f] = normal(rng);
      norm2 += double{row[f]} * row[f];
    }
    // Norm: 0.2 .. 2 with a heavy head (log-normal-ish via the item's random rank).
    const float u = rng.UniformFloat();
    const float target = 0.2f + 1.8f * std::pow(u, 4.0f);
    const float scale = static_cast<float>(target / std::sqrt(norm2));
    for (std::size_t f = 0; f < dim; ++f) row[f] *= scale;
    if (with_bias) s.bias[i] = 0.1f * normal(rng);
  });
  return s;
}

std::vector<float> MakeQueries(std::size_t n, std::size_t dim, std::uint64_t seed) {
  std::vector<float> q(n * dim);
  Rng rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& x : q) x = normal(rng);
  return q;
}

float Score(const Synthetic& s, const float* query, ItemIndex item) {
  const float* row = s.items.data() + std::size_t{item} * s.dim;
  float dot = 0;
  for (std::size_t f = 0; f < s.dim; ++f) dot += query[f] * row[f];
  return dot + (s.bias.empty() ? 0.0f : s.bias[item]);
}

std::vector<ItemIndex> TopOf(std::vector<std::pair<float, ItemIndex>>& scored, std::size_t k) {
  k = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                    [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::vector<ItemIndex> top;
  for (std::size_t r = 0; r < k; ++r) top.push_back(scored[r].second);
  return top;
}

std::vector<ItemIndex> Exact(const Synthetic& s, const float* query, std::size_t k) {
  std::vector<std::pair<float, ItemIndex>> scored(s.n);
  for (std::size_t i = 0; i < s.n; ++i) scored[i] = {Score(s, query, static_cast<ItemIndex>(i)), static_cast<ItemIndex>(i)};
  return TopOf(scored, k);
}

std::vector<ItemIndex> Approximate(const AnnIndex& index, const Synthetic& s, const float* query, std::size_t k,
                                   std::size_t candidates) {
  std::vector<ItemIndex> found;
  index.Search(query, candidates, found);
  std::vector<std::pair<float, ItemIndex>> scored;
  for (ItemIndex item : found) scored.emplace_back(Score(s, query, item), item);
  return TopOf(scored, k);
}

double RecallAt10(std::size_t n_items, bool with_bias, int ef_construction, double* build_seconds) {
  const std::size_t dim = 32, n_queries = 200, k = 10, candidates = 256;
  Synthetic s = MakeItems(n_items, dim, with_bias, 11);
  auto queries = MakeQueries(n_queries, dim, 12);
  AnnIndexOptions options;
  options.m = 16;
  options.ef_construction = ef_construction;
  options.ef_search = 128;
  auto start = std::chrono::steady_clock::now();
  AnnIndex index(s.items, n_items, dim, s.bias, options, 2);
  *build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(index.size(), n_items);
  std::vector<double> recall(n_queries);
  ParallelFor<std::size_t>(0, n_queries, 2, [&](std::size_t q) {
    const float* query = queries.data() + q * dim;
    auto exact = Exact(s, query, k);
    auto approx = Approximate(index, s, query, k, candidates);
    std::set<ItemIndex> truth(exact.begin(), exact.end());
    std::size_t hit = 0;
    for (ItemIndex item : approx) hit += truth.count(item);
    recall[q] = static_cast<double>(hit) / k;
  });
  return std::accumulate(recall.begin(), recall.end(), 0.0) / n_queries;
}

TEST(AnnIndex, RecallAt10AgainstExactSearch) {
  // 100k items by default (about 25 s of CPU); RECFORGE_ANN_TEST_ITEMS=1000000
  // runs the full-size check (hnswlib 0.6.2 needs several minutes of CPU to build it).
  std::size_t n_items = 100000;
  if (const char* env = std::getenv("RECFORGE_ANN_TEST_ITEMS")) n_items = std::strtoull(env, nullptr, 10);
#ifndef NDEBUG
  n_items = std::min<std::size_t>(n_items, 50000);
#endif
  double build_seconds = 0;
  const double recall = RecallAt10(n_items, /*with_bias=*/false, 100, &build_seconds);
  RecordProperty("recall_at_10", std::to_string(recall));
  std::printf("[ ANN      ] %zu items, dim 32, M 16, ef_construction 100, ef_search 128, 256 candidates: "
              "Recall@10 = %.4f (build %.1f s)\n", n_items, recall, build_seconds);
  EXPECT_GE(recall, 0.95);
}

TEST(AnnIndex, ItemBiasIsPartOfTheSearch) {
  double build_seconds = 0;
  const double recall = RecallAt10(20000, /*with_bias=*/true, 100, &build_seconds);
  std::printf("[ ANN      ] 20000 items with bias: Recall@10 = %.4f (build %.2f s)\n", recall, build_seconds);
  EXPECT_GE(recall, 0.97);
}

TEST(AnnIndex, SmallIndexReturnsEverything) {
  Synthetic s = MakeItems(50, 8, false, 3);
  AnnIndex index(s.items, s.n, s.dim, {}, AnnIndexOptions{}, 1);
  auto query = MakeQueries(1, 8, 4);
  std::vector<ItemIndex> found;
  index.Search(query.data(), 100, found);
  EXPECT_EQ(std::set<ItemIndex>(found.begin(), found.end()).size(), 50u);
  auto approx = Approximate(index, s, query.data(), 5, 100);
  EXPECT_EQ(approx, Exact(s, query.data(), 5));
  AnnIndex empty(std::span<const float>(), 0, 8, {}, AnnIndexOptions{}, 1);
  empty.Search(query.data(), 10, found);
  EXPECT_TRUE(found.empty());
  EXPECT_THROW(AnnIndex(s.items, s.n + 1, s.dim, {}, AnnIndexOptions{}, 1), std::exception);
}

}  // namespace
}  // namespace recforge::serve
