// The serving ANN path at scale (issue 5): HNSW build time, Recall@10 against exact
// search and single-query latency of the served path (AnnIndex::Search for
// `candidates` items, exact re-score, top 10) on a synthetic factor model.
//
//   recforge_bench_ann [--items 1000000] [--dim 32] [--m 16] [--ef-construction 64]
//                      [--ef 100,128,256] [--candidates 256] [--queries 2000]
//                      [--recall-queries 200] [--threads 2] [--bias] [--cache FILE]
//                      [--model FILE.rfm]
//
// Items: random directions with a popularity-like norm spread (0.2 .. 2, heavy head),
// as tests/unit/serve/ann_index_test.cc; queries: N(0, 1) user vectors. Latency is
// measured one query at a time on one thread (the HTTP server answers a request on
// one thread); p50 / p99 / max over `--queries`. With --cache the graph is loaded from
// FILE when present (AnnIndex::BuildOrLoad), so a second run shows the load time.
//
// --model: a trained factor model instead (e.g. the 1M-item model of
// bench/peer/serve_bench.py): its item factors and biases are the items, its user
// vectors (users spread evenly over the model) the queries, and --cache defaults to
// the graph `recforge serve` keeps beside the model (FILE.hnsw, keyed by its payload
// SHA-256).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../../src/models/factor/factor_model.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/serve/ann_index.h"

namespace {

using recforge::ItemIndex;
using recforge::ParallelFor;
using recforge::Rng;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

struct Args {
  std::size_t items = 1000000, dim = 32, candidates = 256, queries = 2000, recall_queries = 200;
  int m = 16, ef_construction = 64, threads = 2;
  std::vector<int> ef = {100, 128, 256};
  bool bias = false;
  std::string cache, model;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--items") a.items = std::stoull(next());
    else if (flag == "--dim") a.dim = std::stoull(next());
    else if (flag == "--m") a.m = std::stoi(next());
    else if (flag == "--ef-construction") a.ef_construction = std::stoi(next());
    else if (flag == "--candidates") a.candidates = std::stoull(next());
    else if (flag == "--queries") a.queries = std::stoull(next());
    else if (flag == "--recall-queries") a.recall_queries = std::stoull(next());
    else if (flag == "--threads") a.threads = std::stoi(next());
    else if (flag == "--bias") a.bias = true;
    else if (flag == "--cache") a.cache = next();
    else if (flag == "--model") a.model = next();
    else if (flag == "--ef") {
      a.ef.clear();
      std::string list = next();
      for (std::size_t at = 0; at < list.size();) {
        std::size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        a.ef.push_back(std::stoi(list.substr(at, comma - at)));
        at = comma + 1;
      }
    } else {
      std::fprintf(stderr, "unknown option %s (see the header of bench/micro/ann_bench.cc)\n", flag.c_str());
      std::exit(2);
    }
  }
  return a;
}

struct Items {
  std::size_t n = 0, dim = 0;
  std::vector<float> vectors, bias;
};

Items MakeItems(std::size_t n, std::size_t dim, bool with_bias, std::uint64_t seed, int threads) {
  Items s;
  s.n = n;
  s.dim = dim;
  s.vectors.resize(n * dim);
  if (with_bias) s.bias.resize(n);
  ParallelFor<std::size_t>(0, n, threads, [&](std::size_t i) {
    Rng rng(seed * 1000003 + i);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    float* row = s.vectors.data() + i * dim;
    double norm2 = 0;
    for (std::size_t f = 0; f < dim; ++f) {
      row[f] = normal(rng);
      norm2 += double{row[f]} * row[f];
    }
    const float target = 0.2f + 1.8f * std::pow(rng.UniformFloat(), 4.0f);
    const float scale = static_cast<float>(target / std::sqrt(norm2));
    for (std::size_t f = 0; f < dim; ++f) row[f] *= scale;
    if (with_bias) s.bias[i] = 0.1f * normal(rng);
  });
  return s;
}

float Score(const Items& s, const float* query, ItemIndex item) {
  const float* row = s.vectors.data() + std::size_t{item} * s.dim;
  float dot = 0;
  for (std::size_t f = 0; f < s.dim; ++f) dot += query[f] * row[f];
  return dot + (s.bias.empty() ? 0.0f : s.bias[item]);
}

void Top(std::vector<std::pair<float, ItemIndex>>& scored, std::size_t k, std::vector<ItemIndex>& out) {
  k = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(k), scored.end(),
                    [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  out.clear();
  for (std::size_t r = 0; r < k; ++r) out.push_back(scored[r].second);
}

// The served path: candidates from the graph, exact re-score of those that can still
// reach the top k (within 2 max_error of the k-th approximate score), top k.
void AnnTop(const recforge::serve::AnnIndex& index, const Items& s, const float* query, std::size_t candidates,
            std::size_t k, std::vector<recforge::serve::AnnCandidate>& found,
            std::vector<std::pair<float, ItemIndex>>& scored, std::vector<ItemIndex>& out,
            recforge::serve::AnnSearchStats* stats = nullptr) {
  const float max_error = index.Search(query, candidates, found, {}, stats);
  scored.clear();
  float threshold = -std::numeric_limits<float>::infinity();
  for (const auto& candidate : found) {
    if (candidate.score < threshold) break;
    scored.emplace_back(Score(s, query, candidate.item), candidate.item);
    if (scored.size() == k) threshold = candidate.score - 2.0f * max_error;
  }
  Top(scored, k, out);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  constexpr std::size_t k = 10;
  auto start = Clock::now();
  const std::size_t n_queries = std::max(a.queries, a.recall_queries);
  Items s;
  std::vector<float> queries;
  std::string key = "ann_bench synthetic seed 11";
  std::string cache = a.cache;
  if (!a.model.empty()) {
    auto model = recforge::models::LoadModel(a.model);
    const auto* factors = dynamic_cast<const recforge::models::FactorModel*>(model.get());
    if (factors == nullptr || factors->factors() == 0 || factors->user_factors().empty()) {
      std::fprintf(stderr, "%s: not a trained factor model\n", a.model.c_str());
      return 2;
    }
    s.dim = factors->factors();
    s.n = factors->item_factors().size() / s.dim;
    s.vectors.assign(factors->item_factors().begin(), factors->item_factors().end());
    s.bias.assign(factors->item_bias().begin(), factors->item_bias().end());
    const std::size_t users = factors->user_factors().size() / s.dim;
    for (std::size_t q = 0; q < n_queries; ++q) {
      const float* row = factors->UserVector(static_cast<recforge::UserIndex>(q * users / n_queries));
      queries.insert(queries.end(), row, row + s.dim);
    }
    key = recforge::models::ReadModelHeader(a.model).payload_sha256;  // as `recforge serve` keys it
    if (cache.empty()) cache = a.model + ".hnsw";
    std::printf("model %s: %zu items, dim %zu%s, %zu users, loaded in %.1f s\n", a.model.c_str(), s.n, s.dim,
                s.bias.empty() ? "" : " + item bias", users, Seconds(start));
  } else {
    s = MakeItems(a.items, a.dim, a.bias, 11, a.threads);
    queries.resize(n_queries * a.dim);
    Rng rng(12);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& x : queries) x = normal(rng);
    std::printf("items %zu, dim %zu%s, generated in %.1f s\n", a.items, a.dim, a.bias ? " + item bias" : "",
                Seconds(start));
  }
  const std::size_t dim = s.dim;

  // Exact top 10 of the recall queries (brute force, in parallel).
  start = Clock::now();
  std::vector<std::vector<ItemIndex>> exact(a.recall_queries);
  ParallelFor<std::size_t>(0, a.recall_queries, a.threads, [&](std::size_t q) {
    std::vector<std::pair<float, ItemIndex>> scored(s.n);
    for (std::size_t i = 0; i < s.n; ++i) {
      scored[i] = {Score(s, queries.data() + q * dim, static_cast<ItemIndex>(i)), static_cast<ItemIndex>(i)};
    }
    Top(scored, k, exact[q]);
  });
  std::printf("exact top 10 of %zu queries: %.1f s\n", a.recall_queries, Seconds(start));

  recforge::serve::AnnIndexOptions options;
  options.m = a.m;
  options.ef_construction = a.ef_construction;
  options.ef_search = a.ef.empty() ? 100 : a.ef.front();
  recforge::serve::AnnBuildInfo info;
  auto index = recforge::serve::AnnIndex::BuildOrLoad(s.vectors, s.n, s.dim, s.bias, options, a.threads, cache, key,
                                                      &info);
  std::printf("HNSW M %d, ef_construction %d, %d threads: %s in %.1f s%s%s\n", a.m, a.ef_construction, a.threads,
              info.loaded ? "loaded" : "built", info.seconds, info.saved ? " (saved)" : "",
              info.cache_error.empty() ? "" : (" [" + info.cache_error + "]").c_str());

  std::printf("%8s %10s %9s %9s %9s %9s %9s %9s\n", "ef", "candidates", "recall@10", "p50 us", "p99 us", "max us",
              "visited", "expanded");
  for (int ef : a.ef) {
    index->SetEfSearch(ef);
    std::vector<double> recall(a.recall_queries);
    ParallelFor<std::size_t>(0, a.recall_queries, a.threads, [&](std::size_t q) {
      std::vector<recforge::serve::AnnCandidate> found;
      std::vector<ItemIndex> top;
      std::vector<std::pair<float, ItemIndex>> scored;
      AnnTop(*index, s, queries.data() + q * dim, a.candidates, k, found, scored, top);
      std::set<ItemIndex> truth(exact[q].begin(), exact[q].end());
      std::size_t hit = 0;
      for (ItemIndex item : top) hit += truth.count(item);
      recall[q] = static_cast<double>(hit) / k;
    });
    const double mean_recall =
        a.recall_queries == 0 ? 0 : std::accumulate(recall.begin(), recall.end(), 0.0) / a.recall_queries;
    // Latency: one thread, one query at a time, after 100 warm-up queries.
    std::vector<recforge::serve::AnnCandidate> found;
    std::vector<ItemIndex> top;
    std::vector<std::pair<float, ItemIndex>> scored;
    for (std::size_t q = 0; q < std::min<std::size_t>(100, a.queries); ++q) {
      AnnTop(*index, s, queries.data() + q * dim, a.candidates, k, found, scored, top);
    }
    std::vector<double> micros(a.queries);
    recforge::serve::AnnSearchStats stats;
    for (std::size_t q = 0; q < a.queries; ++q) {
      auto t = Clock::now();
      AnnTop(*index, s, queries.data() + q * dim, a.candidates, k, found, scored, top, &stats);
      micros[q] = Seconds(t) * 1e6;
    }
    std::sort(micros.begin(), micros.end());
    auto at = [&](double quantile) {
      return micros.empty() ? 0.0 : micros[std::min(micros.size() - 1, static_cast<std::size_t>(quantile * micros.size()))];
    };
    const double per_query = 1.0 / static_cast<double>(std::max<std::size_t>(a.queries, 1));
    std::printf("%8d %10zu %9.4f %9.0f %9.0f %9.0f %9.0f %9.0f\n", ef, a.candidates, mean_recall, at(0.5), at(0.99),
                micros.empty() ? 0.0 : micros.back(), static_cast<double>(stats.visited) * per_query,
                static_cast<double>(stats.expanded) * per_query);
  }
  return 0;
}
