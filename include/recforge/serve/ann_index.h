// Approximate maximum-inner-product search over item vectors for `recforge serve`:
// an HNSW graph (built by hnswlib over half-float vectors) over the item factors of a
// factor model, searched by our own loop over our own layout (ann_index.cc): one
// byte per dimension (per-dimension range, 255 steps; 64 dims are one cache line),
// line-aligned links, nodes numbered in breadth-first order, big arrays on huge
// pages, an AVX2 integer kernel or a portable one picked at start-up. Search returns
// approximate scores with a rigorous error bound, so callers re-score exactly only the
// candidates that can still reach their top k. (The MIPS-to-L2 transform,
// sqrt(max|x|^2 - |x|^2) as an extra coordinate, was measured worse: Recall@10 0.52 vs
// 1.00 on 20k items with a popularity-like norm spread.)
//
// Bias terms. A factor model scores mu + b_u + b_i + p_u . q_i: mu and b_u are the same
// for every item of one request, so they do not change the ranking and are left out;
// the item bias b_i is folded into the search by appending it to the item vector and a
// 1 to the query, so the graph ranks by p_u . q_i + b_i. Callers re-score the returned
// candidates exactly (recommendation_service.cc) before filtering and taking the top k.
//
// Build inserts the points in parallel (hnswlib's addPoint is thread-safe for distinct
// labels) on `threads` threads (ParallelFor); the graph depends on the insertion
// order, so it is not bit-identical across thread counts (search results agree to
// the measured recall). Search is const and safe to call from many threads.
//
// Cache. Building a 1M-item graph takes minutes of CPU, so BuildOrLoad() can keep it
// beside the model file: `cache_path` (the search layout, ann_index.cc gives the format;
// every link is checked on load) and `cache_path + ".key"`
// (a small text file: format version, the caller's key, e.g. the model file's SHA-256,
// the shape and the build options). A cache whose key file does not match exactly is
// rebuilt and overwritten (files written to a temporary name, then renamed).
//
// Defaults (M 16, ef_construction 128, ef_search 100): Recall@10 of the served path
// (216 candidates re-scored exactly) against exact search >= 0.95 on 1M synthetic
// items of 32-64 dims (tests/unit/serve/ann_index_test.cc; figures, build times and
// latencies in docs/benchmarks.md, bench/micro/ann_bench.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/core/types.h"

namespace recforge::serve {

struct AnnIndexOptions {
  int m = 16;                // graph degree (2 * m links on the bottom layer)
  int ef_construction = 128;  // candidate list while inserting
  int ef_search = 100;       // candidate list while searching (at least k is used)
  std::size_t seed = 100;    // hnswlib's level generator
};

// One item found by Search(), with its approximate score.
struct AnnCandidate {
  ItemIndex item;
  float score;
};

// Work done by Search() calls, summed (for benchmarks and tests).
struct AnnSearchStats {
  std::size_t visited = 0;   // nodes whose distance was computed on the bottom layer
  std::size_t expanded = 0;  // nodes whose links were followed there
};

// What BuildOrLoad() did.
struct AnnBuildInfo {
  bool loaded = false;        // read from the cache
  bool saved = false;         // built and written to the cache
  double seconds = 0;         // build or load time
  std::string cache_error;    // why the cache was not used / not written (empty: fine)
};

class AnnIndex {
 public:
  // `vectors`: n x dim row-major; `item_bias`: empty or n values. The vectors are
  // copied into the graph.
  AnnIndex(std::span<const float> vectors, std::size_t n, std::size_t dim, std::span<const float> item_bias,
           const AnnIndexOptions& options, int threads);
  ~AnnIndex();
  AnnIndex(const AnnIndex&) = delete;
  AnnIndex& operator=(const AnnIndex&) = delete;

  // Loads the graph from `cache_path` when its key file matches (key, n, dim, bias or
  // not, m, ef_construction); otherwise builds it and, when cache_path is not empty,
  // saves it there. Cache problems (unreadable, corrupt, not writable) never fail the
  // call: they are reported in info->cache_error and the graph is built.
  static std::unique_ptr<AnnIndex> BuildOrLoad(std::span<const float> vectors, std::size_t n, std::size_t dim,
                                               std::span<const float> item_bias, const AnnIndexOptions& options,
                                               int threads, const std::string& cache_path, std::string_view key,
                                               AnnBuildInfo* info = nullptr);

  // Writes the graph to `path` and its key file to `path + ".key"`. Throws IoError.
  void Save(const std::string& path, std::string_view key) const;

  std::size_t size() const { return n_; }
  std::size_t dim() const { return dim_; }

  // Changes the search candidate list (not thread-safe against concurrent Search).
  void SetEfSearch(int ef_search);

  // Up to `k` items with the largest approximate score of dot(query, Q[i]) +
  // item_bias[i], best first (the graph explores max(ef_search, k) candidates), each
  // with that score. `query` has dim() floats. Returns max_error: for every item,
  // |approximate score - exact score| <= max_error, so a caller that wants the exact
  // top-n of the candidates only needs to re-score those whose approximate score is at
  // least the n-th best approximate score - 2 max_error. Items in `skip` (e.g. the
  // user's training items; any order) are walked through but never returned, so they
  // take no place among the candidates. The search is our own loop over the graph
  // hnswlib built (ann_index.cc says why).
  float Search(const float* query, std::size_t k, std::vector<AnnCandidate>& out,
               std::span<const ItemIndex> skip = {}, AnnSearchStats* stats = nullptr) const;

 private:
  struct Impl;
  AnnIndex(std::size_t n, std::size_t dim, bool with_bias, const AnnIndexOptions& options);
  std::string KeyText(std::string_view key) const;
  void Load(const std::string& path);

  std::unique_ptr<Impl> impl_;
  std::size_t n_ = 0;
  std::size_t dim_ = 0;
  std::size_t stored_dim_ = 0;
  bool with_bias_ = false;
  AnnIndexOptions options_;
};

}  // namespace recforge::serve
