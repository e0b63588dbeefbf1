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
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/memory.h"
#include "recforge/core/parallel.h"

namespace recforge::serve {

namespace {

// ---- Building: hnswlib's graph over half floats -----------------------------------
//
// hnswlib inserts the points and keeps the links; its vectors are IEEE half floats
// (_Float16), half the memory of float32 while the graph is built. The build distance
// 1 - dot(a, b) has an AVX2 + FMA + F16C kernel and a portable one, picked once at
// start-up (no -march=native; GCC 12 does not vectorise half-to-float conversions in
// target_clones code, so this is a hand dispatch with intrinsics).
using Half = _Float16;
using HalfDotFn = float (*)(const Half* a, const Half* b, std::size_t n);

float HalfDotPortable(const Half* a, const Half* b, std::size_t n) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += static_cast<float>(a[i]) * static_cast<float>(b[i]);
  return sum;
}

#define RECFORGE_AVX2 __attribute__((target("avx2,fma")))
#define RECFORGE_F16C __attribute__((target("avx2,fma,f16c")))
RECFORGE_AVX2 inline float Sum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
RECFORGE_F16C inline __m256 Widen8(const Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
RECFORGE_F16C float HalfDotF16C(const Half* a, const Half* b, std::size_t n) {
  const std::size_t body = n / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  for (std::size_t i = 0; i < body; i += 8) acc = _mm256_fmadd_ps(Widen8(a + i), Widen8(b + i), acc);
  float sum = Sum8(acc);
  for (std::size_t i = body; i < n; ++i) sum += static_cast<float>(a[i]) * static_cast<float>(b[i]);
  return sum;
}

bool HasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool HasF16C() { return HasAvx2Fma() && __builtin_cpu_supports("f16c"); }
const HalfDotFn HalfDot = HasF16C() ? &HalfDotF16C : &HalfDotPortable;

float HalfInnerProductDistance(const void* a, const void* b, const void* dim_ptr) {
  return 1.0f - HalfDot(static_cast<const Half*>(a), static_cast<const Half*>(b),
                        *static_cast<const std::size_t*>(dim_ptr));
}

class HalfInnerProductSpace : public hnswlib::SpaceInterface<float> {
 public:
  explicit HalfInnerProductSpace(std::size_t dim) : dim_(dim) {}
  std::size_t get_data_size() override { return dim_ * sizeof(Half); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &HalfInnerProductDistance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  std::size_t dim_;
};

// ---- Searching: our own layout --------------------------------------------------
//
// A search over 1M items waits on memory: each visited node costs its vector, each
// expanded node its links, read at random from hundreds of MB. hnswlib's level-0 block
// (links, vector, label: 268 bytes per node at 64 dims in half floats, not line-aligned)
// costs about 3 cache lines per visit and 3 per expansion. The search layout instead:
//   - codes: the vector as one byte per dimension, value = low[d] + step[d] * code
//     (per-dimension range, 255 steps), rows aligned so that 64 dims are one cache
//     line. The query is folded in once (query[d] * step[d], as int16); the low[d]
//     terms add the same constant to every item, so they do not change the ranking
//     and are added back only to the returned scores. Search bounds the error of
//     those scores, so the caller re-scores from the float32 factors only the
//     candidates that can still reach its top k;
//   - level-0 links: 2m node numbers per node (two cache lines at m 16), unused
//     slots kNoLink, the nodes numbered in breadth-first order (CopyLinks);
//   - upper layers: m links per level for the few nodes above level 0;
//   - big arrays on transparent huge pages: random reads over 200 MB on 4 KiB pages
//     miss the TLB on nearly every visit.
constexpr std::uint32_t kNoLink = 0xFFFFFFFFu;

// Zero-initialised, 64-byte aligned (2 MiB from 2 MiB up, advised to huge pages).
template <typename T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(std::size_t n) : size_(n) {
    if (n == 0) return;
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    const std::size_t align = n * sizeof(T) >= kHuge ? kHuge : 64;
    const std::size_t bytes = (n * sizeof(T) + align - 1) / align * align;
    data_.reset(static_cast<T*>(std::aligned_alloc(align, bytes)));
    if (!data_) throw std::bad_alloc();
    AdviseHugePages(data_.get(), bytes);
    std::memset(static_cast<void*>(data_.get()), 0, bytes);
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
  std::size_t size_ = 0;
};

// Distances -dot(query, codes of row ids[j]) for n rows, in integers: the query
// quantised to int16 (Search says how the error is bounded), each code widened to
// int16, pairs multiplied and summed into int32 (vpmaddwd). Rows of `stride` bytes,
// `padded_dim` codes each (a multiple of 16; the query's padding is zero). The sums
// are exact: |query| * 255 * padded_dim stays below 2^31 (QueryScale).
using CodeDistancesFn = void (*)(const std::int16_t* query, const std::uint8_t* codes, std::size_t stride,
                                 const std::uint32_t* ids, std::size_t n, std::size_t padded_dim, float* out);

void CodeDistancesPortable(const std::int16_t* query, const std::uint8_t* codes, std::size_t stride,
                           const std::uint32_t* ids, std::size_t n, std::size_t padded_dim, float* out) {
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint8_t* row = codes + std::size_t{ids[j]} * stride;
    std::int32_t sum = 0;
    for (std::size_t i = 0; i < padded_dim; ++i) sum += std::int32_t{query[i]} * std::int32_t{row[i]};
    out[j] = -static_cast<float>(sum);
  }
}

RECFORGE_AVX2 inline __m256i Products16(__m256i query, const std::uint8_t* row) {
  return _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row))), query);
}

RECFORGE_AVX2 inline std::int32_t Sum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Four rows at a time (four dot products in flight, reduced together); the caller
// prefetches the rows.
RECFORGE_AVX2 void CodeDistancesAvx2(const std::int16_t* query, const std::uint8_t* codes, std::size_t stride,
                                     const std::uint32_t* ids, std::size_t n, std::size_t padded_dim, float* out) {
  auto row = [&](std::size_t j) { return codes + std::size_t{ids[j]} * stride; };
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const std::uint8_t *r0 = row(j), *r1 = row(j + 1), *r2 = row(j + 2), *r3 = row(j + 3);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (std::size_t i = 0; i < padded_dim; i += 16) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(query + i));
      a0 = _mm256_add_epi32(a0, Products16(q, r0 + i));
      a1 = _mm256_add_epi32(a1, Products16(q, r1 + i));
      a2 = _mm256_add_epi32(a2, Products16(q, r2 + i));
      a3 = _mm256_add_epi32(a3, Products16(q, r3 + i));
    }
    // [a0 a1 a2 a3] pairwise, then the two halves: the four sums in one vector.
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    _mm_storeu_ps(out + j, _mm_sub_ps(_mm_setzero_ps(), _mm_cvtepi32_ps(sums)));
  }
  for (; j < n; ++j) {
    const std::uint8_t* r = row(j);
    __m256i a = _mm256_setzero_si256();
    for (std::size_t i = 0; i < padded_dim; i += 16) {
      a = _mm256_add_epi32(a, Products16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(query + i)), r + i));
    }
    out[j] = -static_cast<float>(Sum8(a));
  }
}
#undef RECFORGE_AVX2
#undef RECFORGE_F16C

const CodeDistancesFn CodeDistances = HasAvx2Fma() ? &CodeDistancesAvx2 : &CodeDistancesPortable;

std::size_t PaddedDim(std::size_t stored_dim) { return (stored_dim + 15) / 16 * 16; }
// Rows never straddle a cache line: 8 / 16 / 32 / 64 bytes, then whole lines.
std::size_t CodeStride(std::size_t padded_dim) {
  return padded_dim <= 64 ? std::bit_ceil(padded_dim) : (padded_dim + 63) / 64 * 64;
}

void CheckOptions(const AnnIndexOptions& options) {
  if (options.m < 2 || options.ef_construction < 1 || options.ef_search < 1) {
    throw InvalidArgument("AnnIndex: m must be >= 2, ef_construction and ef_search >= 1");
  }
}

}  // namespace

struct AnnIndex::Impl {
  std::size_t n = 0, stored_dim = 0, padded_dim = 0, code_stride = 0;
  std::size_t links0 = 0, links_upper = 0;  // 2m and m
  std::uint32_t entry = 0;                  // the node searches start from
  std::uint32_t max_level = 0;              // its level, the graph's highest
  std::vector<float> low, step;             // per stored dimension
  AlignedArray<std::uint8_t> codes;         // n x code_stride
  AlignedArray<std::uint32_t> level0;       // n x links0
  // Node i's links above level 0: level l at upper_links[upper_begin[i] + (l - 1) m].
  std::vector<std::uint32_t> upper_begin;   // n + 1
  std::vector<std::uint32_t> upper_links;
  std::vector<std::uint32_t> item_of_node;  // n: the item each node stands for
  std::vector<std::uint32_t> node_of_item;  // its inverse

  void MapItems() {
    node_of_item.assign(n, kNoLink);
    for (std::size_t node = 0; node < n; ++node) node_of_item[item_of_node[node]] = static_cast<std::uint32_t>(node);
  }

  void Shape(std::size_t items, std::size_t dims, int m) {
    n = items;
    stored_dim = dims;
    padded_dim = PaddedDim(dims);
    code_stride = CodeStride(padded_dim);
    links0 = 2 * static_cast<std::size_t>(m);
    links_upper = static_cast<std::size_t>(m);
  }
  std::uint32_t Level(std::uint32_t node) const {
    return static_cast<std::uint32_t>((upper_begin[node + 1] - upper_begin[node]) / links_upper);
  }
  const std::uint32_t* Links(std::uint32_t node, std::uint32_t level) const {
    return level == 0 ? level0.data() + std::size_t{node} * links0
                      : upper_links.data() + upper_begin[node] + (level - 1) * links_upper;
  }

  // Codes of the stored rows [vectors[i], bias[i] if any], node by node (after CopyLinks).
  void Quantize(std::span<const float> vectors, std::span<const float> bias, std::size_t dim, int threads) {
    auto value = [&](std::size_t i, std::size_t d) { return d < dim ? vectors[i * dim + d] : bias[i]; };
    low.assign(stored_dim, 0.0f);
    std::vector<float> high(stored_dim, 0.0f);
    for (std::size_t d = 0; d < stored_dim; ++d) low[d] = high[d] = value(0, d);
    for (std::size_t i = 1; i < n; ++i) {
      for (std::size_t d = 0; d < stored_dim; ++d) {
        low[d] = std::min(low[d], value(i, d));
        high[d] = std::max(high[d], value(i, d));
      }
    }
    step.resize(stored_dim);
    for (std::size_t d = 0; d < stored_dim; ++d) step[d] = (high[d] - low[d]) / 255.0f;
    codes = AlignedArray<std::uint8_t>(n * code_stride);
    ParallelFor<std::size_t>(0, n, threads, [&](std::size_t i) {
      std::uint8_t* row = codes.data() + i * code_stride;  // node i
      const std::size_t item = item_of_node[i];
      for (std::size_t d = 0; d < stored_dim; ++d) {
        if (step[d] <= 0.0f) continue;  // one value in this dimension: code 0
        const float code = std::nearbyint((value(item, d) - low[d]) / step[d]);
        row[d] = static_cast<std::uint8_t>(std::clamp(code, 0.0f, 255.0f));
      }
    }, Schedule::kStatic, 4096);
  }

  // hnswlib's links, its nodes renumbered in breadth-first order from the entry point
  // (nodes no link reaches last): the unnumbered neighbours of a node get consecutive
  // numbers, so the rows one expansion reads lie close together in memory.
  void CopyLinks(const hnswlib::HierarchicalNSW<float>& graph) {
    using hnswlib::tableint;
    const auto list = [&](std::size_t id, int level) {
      hnswlib::linklistsizeint* head = level == 0 ? graph.get_linklist0(static_cast<tableint>(id))
                                                  : graph.get_linklist(static_cast<tableint>(id), level);
      const std::size_t slots = level == 0 ? links0 : links_upper;
      return std::span<const tableint>(reinterpret_cast<const tableint*>(head + 1),
                                       std::min<std::size_t>(slots, graph.getListCount(head)));
    };
    std::vector<std::uint32_t> node_of(n, kNoLink);
    std::vector<std::size_t> order;  // order[node] = hnswlib's id
    order.reserve(n);
    const auto number = [&](std::size_t id) {
      if (node_of[id] != kNoLink) return;
      node_of[id] = static_cast<std::uint32_t>(order.size());
      order.push_back(id);
    };
    number(graph.enterpoint_node_);
    for (std::size_t head = 0, unreached = 0; order.size() < n || head < order.size(); ++head) {
      if (head == order.size()) {
        while (node_of[unreached] != kNoLink) ++unreached;
        number(unreached);
      }
      for (tableint next : list(order[head], 0)) number(next);
    }
    item_of_node.resize(n);
    upper_begin.assign(n + 1, 0);
    for (std::size_t node = 0; node < n; ++node) {
      item_of_node[node] = static_cast<std::uint32_t>(graph.getExternalLabel(static_cast<tableint>(order[node])));
      upper_begin[node + 1] = upper_begin[node] + static_cast<std::uint32_t>(graph.element_levels_[order[node]] * links_upper);
    }
    const auto copy = [&](std::span<const tableint> links, std::uint32_t* out, std::size_t slots) {
      for (std::size_t j = 0; j < slots; ++j) out[j] = j < links.size() ? node_of[links[j]] : kNoLink;
    };
    level0 = AlignedArray<std::uint32_t>(n * links0);
    upper_links.assign(upper_begin[n], kNoLink);
    for (std::size_t node = 0; node < n; ++node) {
      copy(list(order[node], 0), level0.data() + node * links0, links0);
      for (int level = 1; level <= graph.element_levels_[order[node]]; ++level) {
        copy(list(order[node], level), upper_links.data() + upper_begin[node] + (level - 1) * links_upper, links_upper);
      }
    }
    entry = node_of[graph.enterpoint_node_];
    MapItems();
    max_level = static_cast<std::uint32_t>(std::max(graph.maxlevel_, 0));
  }

};

AnnIndex::AnnIndex(std::size_t n, std::size_t dim, bool with_bias, const AnnIndexOptions& options)
    : n_(n), dim_(dim), stored_dim_(dim + (with_bias ? 1 : 0)), with_bias_(with_bias), options_(options) {
  CheckOptions(options);
  impl_ = std::make_unique<Impl>();
  impl_->Shape(n, stored_dim_, options.m);
}

AnnIndex::AnnIndex(std::span<const float> vectors, std::size_t n, std::size_t dim,
                   std::span<const float> item_bias, const AnnIndexOptions& options, int threads)
    : n_(n), dim_(dim), with_bias_(!item_bias.empty()), options_(options) {
  if (vectors.size() != n * dim) throw InvalidArgument("AnnIndex: vectors must hold n x dim floats");
  if (with_bias_ && item_bias.size() != n) throw InvalidArgument("AnnIndex: item_bias must hold n floats");
  if (n >= kNoLink) throw InvalidArgument("AnnIndex: at most 2^32 - 2 items");
  CheckOptions(options);
  // Stored rows: [Q[i], bias[i] if any]; queries get a trailing 1.
  stored_dim_ = dim + (with_bias_ ? 1 : 0);
  impl_ = std::make_unique<Impl>();
  impl_->Shape(n, stored_dim_, options.m);
  if (n == 0) return;
  HalfInnerProductSpace space(stored_dim_);
  hnswlib::HierarchicalNSW<float> graph(&space, n, static_cast<std::size_t>(options.m),
                                        static_cast<std::size_t>(options.ef_construction), options.seed);
  // The first point alone (hnswlib's entry point), then the rest in parallel.
  auto add = [&](std::size_t i) {
    thread_local std::vector<Half> row;
    row.resize(stored_dim_);
    for (std::size_t x = 0; x < dim; ++x) row[x] = static_cast<Half>(vectors[i * dim + x]);
    if (with_bias_) row[dim] = static_cast<Half>(item_bias[i]);
    graph.addPoint(row.data(), static_cast<hnswlib::labeltype>(i));
  };
  add(0);
  ParallelFor<std::size_t>(1, n, threads, add, Schedule::kDynamic, 1024);
  impl_->CopyLinks(graph);
  impl_->Quantize(vectors, item_bias, dim, threads);
}

AnnIndex::~AnnIndex() = default;

void AnnIndex::SetEfSearch(int ef_search) {
  if (ef_search < 1) throw InvalidArgument("AnnIndex: ef_search must be >= 1");
  options_.ef_search = ef_search;
}

std::string AnnIndex::KeyText(std::string_view key) const {
  std::ostringstream text;
  text << "recforge-hnsw 3\n"
       << "built by hnswlib 0.6 over fp16\n"
       << "search layout u8 codes, aligned links\n"
       << "key " << key << "\n"
       << "items " << n_ << "\n"
       << "dim " << dim_ << "\n"
       << "item_bias " << (with_bias_ ? 1 : 0) << "\n"
       << "m " << options_.m << "\n"
       << "ef_construction " << options_.ef_construction << "\n"
       << "seed " << options_.seed << "\n";
  return text.str();
}

// The cache file (native byte order; the key file names the layout version):
//   "RFHNSW3\n" | u64 n, stored_dim, padded_dim, code_stride, links0, links_upper,
//   entry, max_level, upper link count | f32 low[stored_dim] | f32 step[stored_dim] |
//   u8 codes[n x code_stride] | u32 level0[n x links0] | u32 upper_begin[n + 1] |
//   u32 upper_links[upper link count] | u32 item_of_node[n]
namespace {
constexpr char kMagic[8] = {'R', 'F', 'H', 'N', 'S', 'W', '3', '\n'};
}  // namespace

void AnnIndex::Save(const std::string& path, std::string_view key) const {
  // The graph, then the key file (both under temporary names, then renamed): a key
  // file is only ever beside the complete graph it describes.
  const Impl& g = *impl_;
  const std::string key_path = path + ".key";
  const std::string graph_tmp = path + ".tmp";
  const std::string key_tmp = key_path + ".tmp";
  std::error_code ignored;
  std::filesystem::remove(key_path, ignored);
  {
    std::ofstream out(graph_tmp, std::ios::binary | std::ios::trunc);
    auto write = [&](const void* data, std::size_t bytes) {
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    };
    const std::uint64_t header[9] = {g.n,      g.stored_dim,  g.padded_dim, g.code_stride,      g.links0,
                                     g.links_upper, g.entry, g.max_level,  g.upper_links.size()};
    write(kMagic, sizeof kMagic);
    write(header, sizeof header);
    write(g.low.data(), g.low.size() * sizeof(float));
    write(g.step.data(), g.step.size() * sizeof(float));
    write(g.codes.data(), g.codes.size());
    write(g.level0.data(), g.level0.size() * sizeof(std::uint32_t));
    write(g.upper_begin.data(), g.upper_begin.size() * sizeof(std::uint32_t));
    write(g.upper_links.data(), g.upper_links.size() * sizeof(std::uint32_t));
    write(g.item_of_node.data(), g.item_of_node.size() * sizeof(std::uint32_t));
    out.close();
    if (!out) {
      std::filesystem::remove(graph_tmp, ignored);
      throw IoError(path + ": cannot write the HNSW index");
    }
  }
  {
    std::ofstream out(key_tmp, std::ios::binary | std::ios::trunc);
    out << KeyText(key);
    out.close();
    if (!out) {
      std::filesystem::remove(graph_tmp, ignored);
      throw IoError(key_tmp + ": cannot write the HNSW key file");
    }
  }
  std::error_code error;
  std::filesystem::rename(graph_tmp, path, error);
  if (!error) std::filesystem::rename(key_tmp, key_path, error);
  if (error) {
    std::filesystem::remove(graph_tmp, ignored);
    std::filesystem::remove(key_tmp, ignored);
    throw IoError(path + ": cannot write the HNSW index: " + error.message());
  }
}

// Reads a cache file written by Save for this shape; every link is checked, since the
// search follows them without bounds checks. Throws FormatError.
void AnnIndex::Load(const std::string& path) {
  Impl& g = *impl_;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("cannot open");
  auto read = [&](void* data, std::size_t bytes) {
    in.read(static_cast<char*>(data), static_cast<std::streamsize>(bytes));
    if (static_cast<std::size_t>(in.gcount()) != bytes) throw FormatError("truncated");
  };
  char magic[sizeof kMagic];
  read(magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) throw FormatError("not a recforge HNSW file");
  std::uint64_t header[9];
  read(header, sizeof header);
  const std::uint64_t expected[8] = {g.n, g.stored_dim, g.padded_dim, g.code_stride, g.links0, g.links_upper};
  for (int f = 0; f < 6; ++f) {
    if (header[f] != expected[f]) throw FormatError("made for another shape");
  }
  if (header[6] >= g.n || header[8] > std::uint64_t{kNoLink}) throw FormatError("bad header");
  g.entry = static_cast<std::uint32_t>(header[6]);
  g.max_level = static_cast<std::uint32_t>(header[7]);
  g.low.resize(g.stored_dim);
  g.step.resize(g.stored_dim);
  read(g.low.data(), g.low.size() * sizeof(float));
  read(g.step.data(), g.step.size() * sizeof(float));
  g.codes = AlignedArray<std::uint8_t>(g.n * g.code_stride);
  read(g.codes.data(), g.codes.size());
  g.level0 = AlignedArray<std::uint32_t>(g.n * g.links0);
  read(g.level0.data(), g.level0.size() * sizeof(std::uint32_t));
  g.upper_begin.resize(g.n + 1);
  read(g.upper_begin.data(), g.upper_begin.size() * sizeof(std::uint32_t));
  g.upper_links.resize(header[8]);
  read(g.upper_links.data(), g.upper_links.size() * sizeof(std::uint32_t));
  g.item_of_node.resize(g.n);
  read(g.item_of_node.data(), g.item_of_node.size() * sizeof(std::uint32_t));
  if (in.peek() != std::ifstream::traits_type::eof()) throw FormatError("trailing bytes");
  const auto valid = [&](const std::uint32_t* links, std::size_t count) {
    return std::all_of(links, links + count, [&](std::uint32_t id) { return id == kNoLink || id < g.n; });
  };
  if (!valid(g.level0.data(), g.level0.size()) || !valid(g.upper_links.data(), g.upper_links.size())) {
    throw FormatError("a link points past the last item");
  }
  if (g.upper_begin[0] != 0 || g.upper_begin[g.n] != g.upper_links.size()) throw FormatError("bad upper layers");
  for (std::size_t i = 0; i < g.n; ++i) {
    const std::uint32_t span = g.upper_begin[i + 1] - g.upper_begin[i];
    if (g.upper_begin[i + 1] < g.upper_begin[i] || span % g.links_upper != 0 || span / g.links_upper > g.max_level) {
      throw FormatError("bad upper layers");
    }
  }
  if (g.Level(g.entry) != g.max_level) throw FormatError("the entry point is not on the top level");
  std::vector<bool> seen(g.n, false);
  for (std::uint32_t item : g.item_of_node) {
    if (item >= g.n || seen[item]) throw FormatError("the node-to-item map is not a permutation");
    seen[item] = true;
  }
  g.MapItems();
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
          index->Load(cache_path);
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

// Greedy descent through the upper layers, then a best-first search of the bottom
// layer keeping the ef nearest (hnswlib's algorithm, over the layout above). The
// neighbours of an expanded node that are not yet visited are collected, all their
// rows prefetched, then scored four at a time.
float AnnIndex::Search(const float* query, std::size_t k, std::vector<AnnCandidate>& out,
                       std::span<const ItemIndex> skip, AnnSearchStats* stats) const {
  out.clear();
  if (n_ == 0 || k == 0) return 0.0f;
  const Impl& g = *impl_;
  using Id = std::uint32_t;
  using Entry = std::pair<float, Id>;
  // Per-thread scratch, reused across calls (looked up once: each thread_local access
  // costs a TLS lookup).
  struct Scratch {
    std::vector<double> scaled;
    std::vector<std::int16_t> query16;
    std::vector<float> batch_distances;
    std::vector<Id> skipped, batch, marked;
    std::vector<std::uint64_t> visited;
    std::vector<Entry> results, frontier;
  };
  thread_local Scratch scratch_of_thread;
  Scratch& scratch = scratch_of_thread;
  auto& [scaled, query16, batch_distances, skipped, batch, marked, visited, results, frontier] = scratch;
  // The query in code units, scaled[d] = query[d] * step[d] (the bias coordinate's
  // query is 1), then as int16: scaled[d] ~ sigma * query16[d], with sigma such that
  // the kernel's int32 sums cannot overflow. The approximate score is offset + sigma *
  // dot(query16, codes). Against the exact score it errs by at most
  //   - half a step per dimension (the codes' rounding),
  //   - 255 |scaled[d] - sigma query16[d]| per dimension (the query's rounding),
  //   - the float rounding of the distances (int32 to float) and of the caller's exact
  //     float dot product (terms up to |q| max|x|): a float sum of n terms errs by at
  //     most about n 2^-24 times the sum of their magnitudes, taken 4 times here.
  scaled.assign(g.stored_dim, 0.0);
  double offset = 0.0, half_steps = 0.0, magnitude = 0.0, largest = 0.0;
  for (std::size_t d = 0; d < g.stored_dim; ++d) {
    const double q = d < dim_ ? query[d] : 1.0;
    scaled[d] = q * g.step[d];
    offset += q * g.low[d];
    half_steps += 0.5 * std::fabs(q) * g.step[d];
    magnitude += std::fabs(q) * std::max(std::fabs(double{g.low[d]}), std::fabs(g.low[d] + 255.0 * g.step[d]));
    largest = std::max(largest, std::fabs(scaled[d]));
  }
  const double limit = std::min(32767.0, std::floor(2147483647.0 / (255.0 * static_cast<double>(g.padded_dim))));
  const double sigma = largest > 0.0 ? largest / limit : 1.0;
  query16.assign(g.padded_dim, 0);
  double query_rounding = 0.0;
  for (std::size_t d = 0; d < g.stored_dim; ++d) {
    const double value = std::clamp(std::nearbyint(scaled[d] / sigma), -limit, limit);
    query16[d] = static_cast<std::int16_t>(value);
    query_rounding += 255.0 * std::fabs(scaled[d] - sigma * value);
  }
  const double rounding = 4.0 * static_cast<double>(g.padded_dim + 1) * 0x1p-24;
  const double max_error = half_steps + query_rounding + rounding * (510.0 * half_steps + magnitude);
  const auto prefetch_codes = [&](Id id) {
    models::kernels::PrefetchBytes(g.codes.data() + std::size_t{id} * g.code_stride, g.padded_dim);
  };
  const auto distances = [&](const Id* ids, std::size_t count, float* result) {
    CodeDistances(query16.data(), g.codes.data(), g.code_stride, ids, count, g.padded_dim, result);
  };
  const auto link_count = [](const Id* links, std::size_t slots) {
    std::size_t count = 0;
    while (count < slots && links[count] != kNoLink) ++count;
    return count;
  };

  // The skipped items as node numbers, sorted: they are walked through, not kept.
  skipped.clear();
  for (ItemIndex item : skip) {
    if (item < n_) skipped.push_back(g.node_of_item[item]);
  }
  std::sort(skipped.begin(), skipped.end());
  const auto kept = [&](Id node) {
    return skipped.empty() || !std::binary_search(skipped.begin(), skipped.end(), node);
  };

  Id current = g.entry;
  float current_distance;
  distances(&current, 1, &current_distance);
  for (std::uint32_t level = g.max_level; level > 0; --level) {
    for (bool changed = true; changed;) {
      changed = false;
      const Id* links = g.Links(current, level);
      const std::size_t count = link_count(links, g.links_upper);
      for (std::size_t j = 0; j < count; ++j) prefetch_codes(links[j]);
      batch_distances.resize(count);
      distances(links, count, batch_distances.data());
      for (std::size_t j = 0; j < count; ++j) {
        if (batch_distances[j] < current_distance) {
          current_distance = batch_distances[j];
          current = links[j];
          changed = true;
        }
      }
    }
  }

  // Bottom layer. Visited marks: a per-thread bitset (128 KB for 1M items, so it stays in
  // L2, where a stamp array of 4 MB missed on most lookups), cleared after the search
  // through the list of the nodes it marked.
  visited.resize(std::max(visited.size(), n_ / 64 + 1), 0);
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
  // results: max-heap of the ef nearest so far; frontier: min-heap of nodes to expand.
  results.clear();
  frontier.clear();
  const auto farther = [](const Entry& a, const Entry& b) { return a.first < b.first; };
  const auto nearer = [](const Entry& a, const Entry& b) { return a.first > b.first; };
  visit(current);
  if (kept(current)) results.emplace_back(current_distance, current);
  frontier.emplace_back(current_distance, current);
  std::size_t expanded = 0;
  while (!frontier.empty()) {
    std::pop_heap(frontier.begin(), frontier.end(), nearer);
    const Entry next = frontier.back();
    frontier.pop_back();
    if (results.size() >= ef && next.first > results.front().first) break;
    // The links of the likely next expansion, while this one is scored.
    if (!frontier.empty()) models::kernels::PrefetchBytes(g.Links(frontier.front().second, 0), g.links0 * sizeof(Id));
    ++expanded;
    const Id* links = g.Links(next.second, 0);
    const std::size_t count = link_count(links, g.links0);
    batch.clear();
    for (std::size_t j = 0; j < count; ++j) {
      if (visit(links[j])) {
        // All of them at once: the loads overlap (the CPU tracks a few dozen misses).
        prefetch_codes(links[j]);
        batch.push_back(links[j]);
      }
    }
    batch_distances.resize(batch.size());
    distances(batch.data(), batch.size(), batch_distances.data());
    for (std::size_t j = 0; j < batch.size(); ++j) {
      const float d = batch_distances[j];
      if (results.size() < ef || d < results.front().first) {
        frontier.emplace_back(d, batch[j]);
        std::push_heap(frontier.begin(), frontier.end(), nearer);
        // The links of a likely next expansion.
        models::kernels::PrefetchBytes(g.Links(frontier.front().second, 0), g.links0 * sizeof(Id));
        if (!kept(batch[j])) continue;
        results.emplace_back(d, batch[j]);
        std::push_heap(results.begin(), results.end(), farther);
        if (results.size() > ef) {
          std::pop_heap(results.begin(), results.end(), farther);
          results.pop_back();
        }
      }
    }
  }
  if (stats != nullptr) {
    stats->visited += marked.size();
    stats->expanded += expanded;
  }
  for (Id id : marked) visited[id >> 6] = 0;
  // The k nearest of the ef found, as items, with their approximate scores.
  std::sort_heap(results.begin(), results.end(), farther);
  const std::size_t take = std::min(k, results.size());
  out.reserve(take);
  for (std::size_t j = 0; j < take; ++j) {
    out.push_back({static_cast<ItemIndex>(g.item_of_node[results[j].second]),
                   static_cast<float>(offset - sigma * results[j].first)});
  }
  return static_cast<float>(max_error);
}

}  // namespace recforge::serve
