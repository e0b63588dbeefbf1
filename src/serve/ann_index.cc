#include "recforge/serve/ann_index.h"

// hnswlib 0.6.2 defines non-inline functions and variables in its headers (cpuid,
// xgetbv, AVXCapable, AVX512Capable, hnswlib::InnerProductSIMD16Ext, ...): two
// translation units of one binary that include it (src/models/ranking does too) would
// define them twice. The ones of this file are renamed; the system headers that use
// similar names come first.
#include <cpuid.h>
#include <immintrin.h>
#include <x86intrin.h>
#define cpuid recforge_serve_hnswlib_cpuid
#define xgetbv recforge_serve_hnswlib_xgetbv
#define AVXCapable recforge_serve_hnswlib_AVXCapable
#define AVX512Capable recforge_serve_hnswlib_AVX512Capable
#define InnerProductSIMD16Ext recforge_serve_InnerProductSIMD16Ext
#define InnerProductSIMD4Ext recforge_serve_InnerProductSIMD4Ext
#define InnerProductDistanceSIMD16Ext recforge_serve_InnerProductDistanceSIMD16Ext
#define InnerProductDistanceSIMD4Ext recforge_serve_InnerProductDistanceSIMD4Ext
#define L2SqrSIMD16Ext recforge_serve_L2SqrSIMD16Ext
#include <hnswlib/hnswlib.h>
#undef cpuid
#undef xgetbv
#undef AVXCapable
#undef AVX512Capable
#undef InnerProductSIMD16Ext
#undef InnerProductSIMD4Ext
#undef InnerProductDistanceSIMD16Ext
#undef InnerProductDistanceSIMD4Ext
#undef L2SqrSIMD16Ext

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"

namespace recforge::serve {

namespace {

// The graph stores the vectors as IEEE half floats (_Float16): half the memory of float32
// and half the cache lines per visited node, which is what a search over 1M items waits
// on. The relative rounding error (2^-11) only perturbs the order inside the candidate
// list: the service re-scores the candidates exactly from the model's float32 factors.
using Half = _Float16;

// Kernels: an AVX2 + FMA + F16C version (vcvtph2ps widens 8 halves at once) and a
// portable one, picked once at start-up from the running CPU (the build has no
// -march=native; GCC 12 does not vectorise half-to-float conversions in target_clones
// code, so this is a hand dispatch with intrinsics).
using DistanceBatchFn = void (*)(const float* query, const char* base, std::size_t stride, const std::uint32_t* ids,
                                 std::size_t n, std::size_t dim, float* out);
using HalfDotFn = float (*)(const Half* a, const Half* b, std::size_t n);

float HalfDotPortable(const Half* a, const Half* b, std::size_t n) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<float>(a[i]) * static_cast<float>(b[i]);
  return sum;
}

void DistanceBatchPortable(const float* query, const char* base, std::size_t stride, const std::uint32_t* ids,
                           std::size_t n, std::size_t dim, float* out) {
  for (std::size_t j = 0; j < n; ++j) {
    const auto* row = reinterpret_cast<const Half*>(base + ids[j] * stride);
    float sum = 0.0f;
    for (std::size_t i = 0; i < dim; ++i) sum += query[i] * static_cast<float>(row[i]);
    out[j] = 1.0f - sum;
  }
}

#define RECFORGE_F16C __attribute__((target("avx2,fma,f16c")))
RECFORGE_F16C inline __m256 Widen8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
RECFORGE_F16C inline float Sum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// query . row for one half row: 8 lanes at a time, then the tail.
RECFORGE_F16C inline float QueryDotF16C(const float* query, const Half* row, std::size_t dim) {
  const std::size_t body = dim / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  for (std::size_t i = 0; i < body; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(query + i), Widen8(row + i), acc);
  float sum = Sum8(acc);
  for (std::size_t i = body; i < dim; ++i) sum += query[i] * static_cast<float>(row[i]);
  return sum;
}

RECFORGE_F16C float HalfDotF16C(const Half* a, const Half* b, std::size_t n) {
  const std::size_t body = n / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  for (std::size_t i = 0; i < body; i += 8) acc = _mm256_fmadd_ps(Widen8(a + i), Widen8(b + i), acc);
  float sum = Sum8(acc);
  for (std::size_t i = body; i < n; ++i) sum += static_cast<float>(a[i]) * static_cast<float>(b[i]);
  return sum;
}

// Distances 1 - dot(query, row) for a float32 query and n half rows at base + ids[j] *
// stride (hnswlib's level-0 layout: links, vector, label per element). Four rows at a
// time, so four dot products are in flight together, while the next four rows are
// prefetched (all of them at once would fill the line-fill buffers and stall).
RECFORGE_F16C void DistanceBatchF16C(const float* query, const char* base, std::size_t stride,
                                     const std::uint32_t* ids, std::size_t n, std::size_t dim, float* out) {
  const std::size_t bytes = dim * sizeof(Half);
  const std::size_t body = dim / 8 * 8;
  for (std::size_t j = 0; j < std::min<std::size_t>(n, 4); ++j) models::kernels::PrefetchBytes(base + ids[j] * stride, bytes);
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    for (std::size_t ahead = j + 4; ahead < std::min(n, j + 8); ++ahead) {
      models::kernels::PrefetchBytes(base + ids[ahead] * stride, bytes);
    }
    const auto* r0 = reinterpret_cast<const Half*>(base + ids[j] * stride);
    const auto* r1 = reinterpret_cast<const Half*>(base + ids[j + 1] * stride);
    const auto* r2 = reinterpret_cast<const Half*>(base + ids[j + 2] * stride);
    const auto* r3 = reinterpret_cast<const Half*>(base + ids[j + 3] * stride);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (std::size_t i = 0; i < body; i += 8) {
      const __m256 q = _mm256_loadu_ps(query + i);
      a0 = _mm256_fmadd_ps(q, Widen8(r0 + i), a0);
      a1 = _mm256_fmadd_ps(q, Widen8(r1 + i), a1);
      a2 = _mm256_fmadd_ps(q, Widen8(r2 + i), a2);
      a3 = _mm256_fmadd_ps(q, Widen8(r3 + i), a3);
    }
    float s0 = Sum8(a0), s1 = Sum8(a1), s2 = Sum8(a2), s3 = Sum8(a3);
    for (std::size_t i = body; i < dim; ++i) {
      s0 += query[i] * static_cast<float>(r0[i]);
      s1 += query[i] * static_cast<float>(r1[i]);
      s2 += query[i] * static_cast<float>(r2[i]);
      s3 += query[i] * static_cast<float>(r3[i]);
    }
    out[j] = 1.0f - s0;
    out[j + 1] = 1.0f - s1;
    out[j + 2] = 1.0f - s2;
    out[j + 3] = 1.0f - s3;
  }
  for (; j < n; ++j) out[j] = 1.0f - QueryDotF16C(query, reinterpret_cast<const Half*>(base + ids[j] * stride), dim);
}
#undef RECFORGE_F16C

bool HasF16C() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
const bool kF16C = HasF16C();
const DistanceBatchFn InnerProductDistances = kF16C ? &DistanceBatchF16C : &DistanceBatchPortable;
const HalfDotFn HalfDot = kF16C ? &HalfDotF16C : &HalfDotPortable;

// 1 - dot(a, b) of two stored (half) vectors: hnswlib's distance while building.
float HalfInnerProductDistance(const void* a, const void* b, const void* dim_ptr) {
  return 1.0f - HalfDot(static_cast<const Half*>(a), static_cast<const Half*>(b),
                        *static_cast<const std::size_t*>(dim_ptr));
}

class InnerProductSpace : public hnswlib::SpaceInterface<float> {
 public:
  explicit InnerProductSpace(std::size_t dim) : dim_(dim) {}
  std::size_t get_data_size() override { return dim_ * sizeof(Half); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &HalfInnerProductDistance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  std::size_t dim_;
};

}  // namespace

struct AnnIndex::Impl {
  explicit Impl(std::size_t dim) : space(dim) {}
  InnerProductSpace space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
};

namespace {

void CheckOptions(const AnnIndexOptions& options) {
  if (options.m < 2 || options.ef_construction < 1 || options.ef_search < 1) {
    throw InvalidArgument("AnnIndex: m must be >= 2, ef_construction and ef_search >= 1");
  }
}

}  // namespace

AnnIndex::AnnIndex(std::size_t n, std::size_t dim, bool with_bias, const AnnIndexOptions& options)
    : n_(n), dim_(dim), stored_dim_(dim + (with_bias ? 1 : 0)), with_bias_(with_bias), options_(options) {
  CheckOptions(options);
  impl_ = std::make_unique<Impl>(stored_dim_);
}

AnnIndex::AnnIndex(std::span<const float> vectors, std::size_t n, std::size_t dim,
                   std::span<const float> item_bias, const AnnIndexOptions& options, int threads)
    : n_(n), dim_(dim), with_bias_(!item_bias.empty()), options_(options) {
  if (vectors.size() != n * dim) throw InvalidArgument("AnnIndex: vectors must hold n x dim floats");
  if (with_bias_ && item_bias.size() != n) throw InvalidArgument("AnnIndex: item_bias must hold n floats");
  CheckOptions(options);
  // Stored rows: [Q[i], bias[i] if any]; queries get a trailing 1.
  const std::size_t stored_dim = dim + (with_bias_ ? 1 : 0);
  stored_dim_ = stored_dim;
  impl_ = std::make_unique<Impl>(stored_dim);
  impl_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      &impl_->space, std::max<std::size_t>(n, 1), static_cast<std::size_t>(options.m),
      static_cast<std::size_t>(options.ef_construction), options.seed);
  impl_->graph->setEf(static_cast<std::size_t>(options.ef_search));
  if (n == 0) return;
  // The first point alone (hnswlib's entry point), then the rest in parallel.
  auto add = [&](std::size_t i) {
    thread_local std::vector<Half> row;
    row.resize(stored_dim);
    for (std::size_t x = 0; x < dim; ++x) row[x] = static_cast<Half>(vectors[i * dim + x]);
    if (with_bias_) row[dim] = static_cast<Half>(item_bias[i]);
    impl_->graph->addPoint(row.data(), static_cast<hnswlib::labeltype>(i));
  };
  add(0);
  ParallelFor<std::size_t>(1, n, threads, add, Schedule::kDynamic, 1024);
}

AnnIndex::~AnnIndex() = default;

void AnnIndex::SetEfSearch(int ef_search) {
  if (ef_search < 1) throw InvalidArgument("AnnIndex: ef_search must be >= 1");
  options_.ef_search = ef_search;
  impl_->graph->setEf(static_cast<std::size_t>(ef_search));
}

std::string AnnIndex::KeyText(std::string_view key) const {
  std::ostringstream text;
  text << "recforge-hnsw 2\n"
       << "hnswlib 0.6\n"
       << "vectors fp16\n"
       << "key " << key << "\n"
       << "items " << n_ << "\n"
       << "dim " << dim_ << "\n"
       << "item_bias " << (with_bias_ ? 1 : 0) << "\n"
       << "m " << options_.m << "\n"
       << "ef_construction " << options_.ef_construction << "\n"
       << "seed " << options_.seed << "\n";
  return text.str();
}

void AnnIndex::Save(const std::string& path, std::string_view key) const {
  // The graph, then the key file (both under temporary names, then renamed): a key
  // file is only ever beside the complete graph it describes.
  const std::string key_path = path + ".key";
  const std::string graph_tmp = path + ".tmp";
  const std::string key_tmp = key_path + ".tmp";
  std::error_code ignored;
  std::filesystem::remove(key_path, ignored);
  try {
    impl_->graph->saveIndex(graph_tmp);
  } catch (const std::exception& e) {
    throw IoError(path + ": cannot write the HNSW index: " + e.what());
  }
  {
    std::ofstream out(key_tmp, std::ios::binary | std::ios::trunc);
    out << KeyText(key);
    out.close();
    if (!out) throw IoError(key_tmp + ": cannot write the HNSW key file");
  }
  std::error_code error;
  std::filesystem::rename(graph_tmp, path, error);
  if (!error) std::filesystem::rename(key_tmp, key_path, error);
  if (error) {
    std::filesystem::remove(graph_tmp, ignored);
    std::filesystem::remove(key_tmp, ignored);
    throw IoError(path + ": cannot write the HNSW index: " + error.message());
  }
  // saveIndex() reports nothing: check the size it must have written.
  const std::uintmax_t bytes = std::filesystem::file_size(path, error);
  if (error || bytes < n_ * stored_dim_ * sizeof(Half)) {
    std::filesystem::remove(key_path, ignored);
    throw IoError(path + ": the HNSW index was not written completely");
  }
}

std::unique_ptr<AnnIndex> AnnIndex::BuildOrLoad(std::span<const float> vectors, std::size_t n, std::size_t dim,
                                                std::span<const float> item_bias, const AnnIndexOptions& options,
                                                int threads, const std::string& cache_path, std::string_view key,
                                                AnnBuildInfo* info) {
  AnnBuildInfo local;
  AnnBuildInfo& status = info ? *info : local;
  status = AnnBuildInfo{};
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (!cache_path.empty() && n > 0) {
    const bool with_bias = !item_bias.empty();
    auto index = std::unique_ptr<AnnIndex>(new AnnIndex(n, dim, with_bias, options));
    std::ifstream key_file(cache_path + ".key", std::ios::binary);
    if (key_file) {
      std::ostringstream stored;
      stored << key_file.rdbuf();
      if (stored.str() == index->KeyText(key)) {
        try {
          index->impl_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(&index->impl_->space, cache_path,
                                                                                   false, n);
          if (static_cast<std::size_t>(index->impl_->graph->cur_element_count) != n) {
            throw FormatError("holds " + std::to_string(static_cast<std::size_t>(index->impl_->graph->cur_element_count)) +
                              " items, not " + std::to_string(n));
          }
          index->impl_->graph->setEf(static_cast<std::size_t>(options.ef_search));
          status.loaded = true;
          status.seconds = elapsed();
          return index;
        } catch (const std::exception& e) {
          status.cache_error = cache_path + ": unreadable HNSW cache (" + e.what() + "), rebuilding";
        }
      } else {
        status.cache_error = cache_path + ".key: made for another model or other options, rebuilding";
      }
    }
  }
  auto index = std::make_unique<AnnIndex>(vectors, n, dim, item_bias, options, threads);
  status.seconds = elapsed();
  if (!cache_path.empty() && n > 0) {
    try {
      index->Save(cache_path, key);
      status.saved = true;
    } catch (const std::exception& e) {
      if (!status.cache_error.empty()) status.cache_error += "; ";
      status.cache_error += e.what();
    }
  }
  return index;
}

// The search runs over hnswlib's graph with our own loop instead of searchKnn(), which
// (0.6.2) counts hops and distance computations in atomics shared by every searching
// thread, takes the deleted-elements path for a loaded graph (num_deleted_ is left
// uninitialised by loadIndex) and prefetches only the first cache line of each
// neighbour's vector. Here: the neighbours of an expanded node that are not yet visited
// are collected, every line of their vectors prefetched, and their distances computed
// four at a time. Same algorithm: greedy descent through the upper layers, then a
// best-first search of the bottom layer keeping the ef nearest.
void AnnIndex::Search(const float* query, std::size_t k, std::vector<ItemIndex>& out) const {
  out.clear();
  if (n_ == 0 || k == 0) return;
  thread_local std::vector<float> q;
  const float* data = query;
  if (stored_dim_ != dim_) {
    q.resize(stored_dim_);
    std::memcpy(q.data(), query, dim_ * sizeof(float));
    if (with_bias_) q[dim_] = 1.0f;
    data = q.data();
  }
  const auto& graph = *impl_->graph;
  using Id = hnswlib::tableint;
  const char* vectors = graph.data_level0_memory_ + graph.offsetData_;
  const std::size_t stride = graph.size_data_per_element_;
  const std::size_t dim = stored_dim_;
  auto distance = [&](Id id) {
    float d;
    InnerProductDistances(data, vectors, stride, &id, 1, dim, &d);
    return d;
  };

  // Upper layers: move to the nearest neighbour while that gets closer.
  Id current = static_cast<Id>(graph.enterpoint_node_);
  float current_distance = distance(current);
  thread_local std::vector<Id> batch;
  thread_local std::vector<float> distances;
  for (int level = graph.maxlevel_; level > 0; --level) {
    for (bool changed = true; changed;) {
      changed = false;
      const hnswlib::linklistsizeint* links = graph.get_linklist(current, level);
      const std::size_t count = graph.getListCount(const_cast<hnswlib::linklistsizeint*>(links));
      const Id* neighbours = reinterpret_cast<const Id*>(links + 1);
      distances.resize(count);
      InnerProductDistances(data, vectors, stride, neighbours, count, dim, distances.data());
      for (std::size_t j = 0; j < count; ++j) {
        if (distances[j] < current_distance) {
          current_distance = distances[j];
          current = neighbours[j];
          changed = true;
        }
      }
    }
  }

  // Bottom layer. Visited marks: a per-thread bitset (128 KB for 1M items, so it stays in
  // L2, where a stamp array of 4 MB missed on most lookups), cleared after the search
  // through the list of the nodes it marked.
  thread_local std::vector<std::uint64_t> visited;
  thread_local std::vector<Id> marked;
  visited.resize(std::max(visited.size(), graph.cur_element_count / 64 + 1), 0);
  marked.clear();
  const auto visit = [&](Id id) {
    std::uint64_t& word = visited[id >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (id & 63);
    if (word & bit) return false;
    word |= bit;
    marked.push_back(id);
    return true;
  };
  const std::size_t ef = std::max<std::size_t>(static_cast<std::size_t>(options_.ef_search), std::min(k, n_));
  using Entry = std::pair<float, Id>;
  // results: max-heap of the ef nearest so far; frontier: min-heap of nodes to expand.
  thread_local std::vector<Entry> results, frontier;
  results.clear();
  frontier.clear();
  const auto farther = [](const Entry& a, const Entry& b) { return a.first < b.first; };
  const auto nearer = [](const Entry& a, const Entry& b) { return a.first > b.first; };
  visit(current);
  results.emplace_back(current_distance, current);
  frontier.emplace_back(current_distance, current);
  while (!frontier.empty()) {
    std::pop_heap(frontier.begin(), frontier.end(), nearer);
    const Entry next = frontier.back();
    frontier.pop_back();
    if (results.size() >= ef && next.first > results.front().first) break;
    const hnswlib::linklistsizeint* links = graph.get_linklist0(next.second);
    const std::size_t count = graph.getListCount(const_cast<hnswlib::linklistsizeint*>(links));
    const Id* neighbours = reinterpret_cast<const Id*>(links + 1);
    batch.clear();
    for (std::size_t j = 0; j < count; ++j) {
      if (visit(neighbours[j])) batch.push_back(neighbours[j]);
    }
    distances.resize(batch.size());
    InnerProductDistances(data, vectors, stride, batch.data(), batch.size(), dim, distances.data());
    for (std::size_t j = 0; j < batch.size(); ++j) {
      const float d = distances[j];
      if (results.size() < ef || d < results.front().first) {
        frontier.emplace_back(d, batch[j]);
        std::push_heap(frontier.begin(), frontier.end(), nearer);
        // The links of a likely next expansion.
        __builtin_prefetch(graph.get_linklist0(frontier.front().second));
        results.emplace_back(d, batch[j]);
        std::push_heap(results.begin(), results.end(), farther);
        if (results.size() > ef) {
          std::pop_heap(results.begin(), results.end(), farther);
          results.pop_back();
        }
      }
    }
  }
  for (Id id : marked) visited[id >> 6] = 0;
  // The k nearest of the ef found, as item indices.
  std::sort_heap(results.begin(), results.end(), farther);
  const std::size_t take = std::min(k, results.size());
  out.reserve(take);
  for (std::size_t j = 0; j < take; ++j) out.push_back(static_cast<ItemIndex>(graph.getExternalLabel(results[j].second)));
}

}  // namespace recforge::serve
