#include "similarity.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <numeric>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"

namespace recforge::models {
namespace {

using Candidate = std::pair<float, std::uint32_t>;

bool Better(const Candidate& a, const Candidate& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Rows per work unit of the dynamic schedule: small, because row costs are very skewed
// (a popular item touches most of the catalogue, a rare one a few hundred rows).
constexpr std::size_t kChunkRows = 8;
// Software prefetch distances of the accumulation loop (in features of the row) and
// the number of 64-byte lines prefetched per list.
constexpr std::uint64_t kPrefetchFar = 24;
constexpr std::uint64_t kPrefetchNear = 12;
constexpr std::size_t kPrefetchLines = 8;
// Up to this many rows, row indices fit in 16 bits (the narrowed copy in RunKernel).
constexpr std::size_t kNarrowMaxRows = 65536;

// Per-thread state of the all-pairs kernel, allocated once per thread.
struct KernelScratch {
  std::vector<std::uint32_t> counts;   // unit weights: co-occurrence counts
  std::vector<double> dots;            // general weights: dot products
  std::vector<std::uint32_t> touched;  // rows with a non-zero accumulator, first-touch order
  std::vector<Candidate> candidates;

  KernelScratch(std::size_t n_rows, bool unit) {
    if (unit) {
      counts.assign(n_rows, 0);
    } else {
      dots.assign(n_rows, 0.0);
    }
    // One spare slot: the branch-free append below writes before it decides to keep.
    touched.resize(n_rows + 1);
  }
};

// Where the accumulation reads the other rows' weights (transpose.values).
struct StoredWeights {
  static constexpr std::size_t kPerLine = 16;
  const float* values;
  double operator[](std::uint64_t q) const { return values[q]; }
  const void* At(std::uint64_t q) const { return values + q; }
};

// Adds w(row, f) * w(other, f) for every feature f of `row` into the accumulator and
// returns how many distinct rows were touched (listed in scratch.touched). `others` is
// transpose.indices, possibly narrowed to 16 bits, and `weights` its values (unused
// with kUnit); see RunKernel.
template <bool kUnit, typename Index, typename Weights>
std::size_t Accumulate(const CsrMatrix& rows, const CsrMatrix& transpose, const Index* others,
                       const Weights& weights, std::size_t row, KernelScratch& scratch) {
  constexpr std::size_t kPerLine = 64 / sizeof(Index);
  std::size_t n_touched = 0;
  std::uint32_t* touched = scratch.touched.data();
  const std::uint64_t row_begin = rows.indptr[row];
  const std::uint64_t row_end = rows.indptr[row + 1];
  for (std::uint64_t p = row_begin; p < row_end; ++p) {
    // The other rows' lists live at scattered addresses of a matrix far larger than
    // the caches, and the loop is bound by fetching them: prefetch the offsets
    // kPrefetchFar features ahead and the list itself kPrefetchNear features ahead.
    if (p + kPrefetchFar < row_end)
      __builtin_prefetch(&transpose.indptr[rows.indices[p + kPrefetchFar]]);
    if (p + kPrefetchNear < row_end) {
      const std::uint32_t ahead = rows.indices[p + kPrefetchNear];
      const Index* list = others + transpose.indptr[ahead];
      const Index* list_end = others + transpose.indptr[ahead + 1];
      for (const Index* line = list; line < list_end && line < list + kPrefetchLines * kPerLine;
           line += kPerLine) {
        __builtin_prefetch(line);
      }
      if constexpr (!kUnit) {
        const std::uint64_t first = transpose.indptr[ahead];
        const std::uint64_t last = std::min<std::uint64_t>(
            transpose.indptr[ahead + 1], first + kPrefetchLines * Weights::kPerLine);
        for (std::uint64_t q = first; q < last; q += Weights::kPerLine) {
          __builtin_prefetch(weights.At(q));
        }
      }
    }
    const std::uint32_t feature = rows.indices[p];
    const std::uint64_t begin = transpose.indptr[feature];
    const std::uint64_t end = transpose.indptr[feature + 1];
    if constexpr (kUnit) {
      std::uint32_t* counts = scratch.counts.data();
      for (std::uint64_t q = begin; q < end; ++q) {
        const std::uint32_t other = others[q];
        // Branch-free first-touch test: about half of the updates are first touches,
        // so a branch here mispredicts constantly.
        touched[n_touched] = other;
        n_touched += counts[other] == 0;
        ++counts[other];
      }
    } else {
      // Weights are > 0, so an accumulator is +0.0 exactly when it was never touched;
      // testing its bits is cheaper than a floating-point compare.
      const double weight = rows.values[p];
      double* dots = scratch.dots.data();
      for (std::uint64_t q = begin; q < end; ++q) {
        const std::uint32_t other = others[q];
        touched[n_touched] = other;
        n_touched += std::bit_cast<std::uint64_t>(dots[other]) == 0;
        dots[other] += weight * weights[q];
      }
    }
  }
  return n_touched;
}

// Turns the accumulated dot products into scored candidates (resetting the
// accumulator) and keeps the best k.
template <PairMeasure kMeasure, bool kUnit>
void SelectRow(std::uint32_t self, float stat_self, std::span<const float> stat,
               const PairScorer& scorer, std::size_t n_touched, std::size_t k,
               KernelScratch& scratch) {
  auto& candidates = scratch.candidates;
  candidates.clear();
  // Popular rows touch most of the catalogue, so candidates are pruned on the fly:
  // whenever the buffer fills, it is cut to the best k and the k-th score becomes a
  // bar that later candidates must reach (ties stay in: they may win on the index).
  const std::size_t cap = std::max<std::size_t>(4 * k, 512);
  float bar = 0;
  double bar_margin = 0;
  for (std::size_t t = 0; t < n_touched; ++t) {
    const std::uint32_t other = scratch.touched[t];
    double dot;
    if constexpr (kUnit) {
      dot = scratch.counts[other];
      scratch.counts[other] = 0;
    } else {
      dot = scratch.dots[other];
      scratch.dots[other] = 0;
    }
    if (other == self || dot < scorer.min_dot) continue;
    if constexpr (kMeasure == PairMeasure::kCosine) {
      // Most candidates of a popular row fall far below the bar: reject them with a
      // multiplication instead of a division. The margin (2^-20 relative) exceeds the
      // rounding of the exact score to float, so no candidate that could reach the bar
      // is ever rejected here.
      if (dot < bar_margin * (static_cast<double>(stat_self) * stat[other] + scorer.shrink))
        continue;
    }
    const float score = scorer.ScoreAs<kMeasure>(stat_self, stat[other], dot);
    if (!(score > 0) || score < bar || k == 0) continue;  // !(> 0) also drops NaN
    candidates.emplace_back(score, other);
    if (candidates.size() >= cap) {
      SelectTopK(candidates, k, /*sorted=*/false);
      bar = candidates[k - 1].first;
      bar_margin = static_cast<double>(bar) * (1.0 - 0x1p-20);
    }
  }
  SelectTopK(candidates, k);
}

// One finished work unit: the kept pairs of kChunkRows consecutive rows.
struct ChunkResult {
  std::vector<std::uint32_t> lengths;
  std::vector<std::uint32_t> columns;
  std::vector<float> scores;
};

template <PairMeasure kMeasure, bool kUnit>
CsrMatrix RunKernel(const CsrMatrix& rows, const CsrMatrix& transpose, std::span<const float> stat,
                    const PairScorer& scorer, std::size_t k, const Context& ctx) {
  const std::size_t n_rows = rows.n_rows;
  const std::size_t n_chunks = (n_rows + kChunkRows - 1) / kChunkRows;
  std::vector<ChunkResult> chunks(n_chunks);
  std::atomic<std::size_t> next_chunk{0};
  const int threads = std::max(1, ctx.threads);
  // The kernel is bound by streaming the other rows' index lists (about 8 GB for 20M
  // interactions); with at most 65536 rows they fit in 16 bits, which halves that
  // traffic for the price of a temporary 2-byte copy of the indices.
  std::vector<std::uint16_t> narrow;
  if (n_rows <= kNarrowMaxRows && transpose.nnz() > 0) {
    narrow.resize(transpose.nnz());
    const std::size_t n_blocks = (narrow.size() + (1u << 20) - 1) >> 20;
    ParallelFor<std::size_t>(0, n_blocks, threads, [&](std::size_t block) {
      const std::size_t begin = block << 20;
      const std::size_t end = std::min(narrow.size(), begin + (1u << 20));
      for (std::size_t q = begin; q < end; ++q) {
        narrow[q] = static_cast<std::uint16_t>(transpose.indices[q]);
      }
    });
  }
  const StoredWeights weights{transpose.values.data()};
  auto accumulate = [&](std::size_t row, KernelScratch& scratch) {
    return narrow.empty()
               ? Accumulate<kUnit>(rows, transpose, transpose.indices.data(), weights, row, scratch)
               : Accumulate<kUnit>(rows, transpose, narrow.data(), weights, row, scratch);
  };
  // Dynamic schedule by hand over ParallelRegion, so that each thread owns one scratch
  // for its whole life; each row's result depends only on the row, never on which
  // thread computed it, so the output is the same for every thread count.
  ParallelRegion(threads, [&](int thread_index) {
    KernelScratch scratch(n_rows, kUnit);
    std::size_t reported = 0;
    for (;;) {
      const std::size_t chunk = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (chunk >= n_chunks) break;
      ChunkResult& result = chunks[chunk];
      const std::size_t begin = chunk * kChunkRows;
      const std::size_t end = std::min(n_rows, begin + kChunkRows);
      result.lengths.reserve(end - begin);
      for (std::size_t row = begin; row < end; ++row) {
        const std::size_t n_touched = accumulate(row, scratch);
        SelectRow<kMeasure, kUnit>(static_cast<std::uint32_t>(row), stat[row], stat, scorer,
                                   n_touched, k, scratch);
        result.lengths.push_back(static_cast<std::uint32_t>(scratch.candidates.size()));
        for (const auto& [score, other] : scratch.candidates) {
          result.columns.push_back(other);
          result.scores.push_back(score);
        }
      }
      // One reporting thread keeps the progress callback single-threaded.
      if (thread_index == 0 && chunk >= reported + 256) {
        reported = chunk;
        ctx.ReportProgress("similarity", std::min(n_rows, chunk * kChunkRows), n_rows);
      }
    }
  });
  ctx.ReportProgress("similarity", n_rows, n_rows);

  CsrMatrix out;
  out.n_rows = n_rows;
  out.n_cols = n_rows;
  out.indptr.assign(n_rows + 1, 0);
  std::size_t row = 0;
  for (const auto& chunk : chunks) {
    for (std::uint32_t length : chunk.lengths) {
      out.indptr[row + 1] = out.indptr[row] + length;
      ++row;
    }
  }
  out.indices.reserve(out.indptr[n_rows]);
  out.values.reserve(out.indptr[n_rows]);
  for (auto& chunk : chunks) {
    out.indices.insert(out.indices.end(), chunk.columns.begin(), chunk.columns.end());
    out.values.insert(out.values.end(), chunk.scores.begin(), chunk.scores.end());
    chunk = ChunkResult();  // give the memory back as we go
  }
  return out;
}

template <bool kUnit>
CsrMatrix DispatchMeasure(const CsrMatrix& rows, const CsrMatrix& transpose,
                          std::span<const float> stat, const PairScorer& scorer, std::size_t k,
                          const Context& ctx) {
  switch (scorer.measure) {
    case PairMeasure::kCosine:
      return RunKernel<PairMeasure::kCosine, kUnit>(rows, transpose, stat, scorer, k, ctx);
    case PairMeasure::kTanimoto:
      return RunKernel<PairMeasure::kTanimoto, kUnit>(rows, transpose, stat, scorer, k, ctx);
    case PairMeasure::kSupport:
      return RunKernel<PairMeasure::kSupport, kUnit>(rows, transpose, stat, scorer, k, ctx);
    case PairMeasure::kConfidence:
      return RunKernel<PairMeasure::kConfidence, kUnit>(rows, transpose, stat, scorer, k, ctx);
    case PairMeasure::kLift:
      return RunKernel<PairMeasure::kLift, kUnit>(rows, transpose, stat, scorer, k, ctx);
  }
  return {};
}

}  // namespace

void SelectTopK(std::vector<std::pair<float, std::uint32_t>>& candidates, std::size_t k,
                bool sorted) {
  if (candidates.size() > k) {
    if (k == 0) {
      candidates.clear();
      return;
    }
    // After this, [0, k - 1) are better than element k - 1, which is the k-th best.
    std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k - 1),
                     candidates.end(), Better);
    candidates.resize(k);
    if (!sorted) {
      // Keep the k-th best last: callers read it as the bar.
      return;
    }
  }
  if (sorted) std::sort(candidates.begin(), candidates.end(), Better);
}

CsrMatrix TopKPairs(const CsrMatrix& rows, const CsrMatrix& transpose, std::span<const float> stat,
                    bool unit_weights, const PairScorer& scorer, std::size_t k,
                    const Context& ctx) {
  if (unit_weights) return DispatchMeasure<true>(rows, transpose, stat, scorer, k, ctx);
  return DispatchMeasure<false>(rows, transpose, stat, scorer, k, ctx);
}

// ---------------------------------------------------------------------------------

SimilarityKind ParseSimilarityKind(std::string_view name) {
  if (name == "cosine") return SimilarityKind::kCosine;
  if (name == "jaccard") return SimilarityKind::kJaccard;
  if (name == "bm25") return SimilarityKind::kBm25;
  if (name == "tfidf") return SimilarityKind::kTfidf;
  throw ConfigError(fmt::format("similarity={}: unknown similarity (valid: {})", name,
                                fmt::join(SimilarityKindNames(), ", ")));
}

std::string_view Name(SimilarityKind kind) {
  switch (kind) {
    case SimilarityKind::kCosine:
      return "cosine";
    case SimilarityKind::kJaccard:
      return "jaccard";
    case SimilarityKind::kBm25:
      return "bm25";
    case SimilarityKind::kTfidf:
      return "tfidf";
  }
  return "?";
}

std::vector<std::string> SimilarityKindNames() { return {"cosine", "jaccard", "bm25", "tfidf"}; }

std::vector<ParamField> SimilarityFields(const std::string& default_kind, double default_shrink,
                                         bool default_binary) {
  return {
      ChoiceParam(
          "similarity", default_kind, SimilarityKindNames(),
          "Pair similarity: cosine, jaccard (Tanimoto), or cosine of bm25 / tfidf weighted vectors",
          {"sim"}),
      FloatParam("shrink", default_shrink, 0, 1e9,
                 "Added to the similarity denominator: damps pairs with little support"),
      BoolParam("binary", default_binary,
                "Every interaction counts as 1 (false: use the stored rating values)",
                {"implicit"}),
      FloatParam("bm25_k1", 1.2, 0, 1e6, "BM25 term-frequency saturation (similarity=bm25)",
                 {"k1"}),
      FloatParam("bm25_b", 0.75, 0, 1,
                 "BM25 length normalisation, 0 = none, 1 = full (similarity=bm25)", {"b"}),
  };
}

SimilarityOptions SimilarityOptionsFrom(const ParamValues& params) {
  SimilarityOptions options;
  options.kind = ParseSimilarityKind(params.Choice("similarity"));
  options.shrink = params.Float("shrink");
  options.binary = params.Bool("binary");
  options.bm25_k1 = params.Float("bm25_k1");
  options.bm25_b = params.Float("bm25_b");
  return options;
}

RowSimilarity::RowSimilarity(const CsrMatrix& rows, const CsrMatrix* transpose,
                             const SimilarityOptions& options)
    : options_(options) {
  const bool plain =
      options.kind == SimilarityKind::kCosine || options.kind == SimilarityKind::kJaccard;
  const bool binary = options.binary;
  auto usable = [binary](float value) { return binary || value > 0; };  // NaN is not > 0

  // Row lengths and document frequencies over the usable entries.
  std::vector<double> length(rows.n_rows, 0.0);
  std::vector<std::uint32_t> df(rows.n_cols, 0);
  std::size_t non_empty = 0;
  bool all_usable = true;
  for (std::size_t row = 0; row < rows.n_rows; ++row) {
    bool any = false;
    for (std::uint64_t p = rows.indptr[row]; p < rows.indptr[row + 1]; ++p) {
      const float value = rows.values[p];
      if (!usable(value)) {
        all_usable = false;
        continue;
      }
      length[row] += binary ? 1.0 : static_cast<double>(value);
      ++df[rows.indices[p]];
      any = true;
    }
    non_empty += any ? 1 : 0;
  }
  if (!plain) {
    idf_.resize(rows.n_cols);
    const double log_n = std::log(static_cast<double>(std::max<std::size_t>(non_empty, 1)));
    for (std::size_t f = 0; f < rows.n_cols; ++f)
      idf_[f] = log_n - std::log1p(static_cast<double>(df[f]));
    average_length_ =
        non_empty > 0 ? std::accumulate(length.begin(), length.end(), 0.0) / non_empty : 1.0;
  }
  unit_weights_ = plain && binary;

  if (plain && transpose != nullptr && all_usable) {
    borrowed_rows_ = &rows;
    borrowed_transpose_ = transpose;
  } else {
    weighted_.n_rows = rows.n_rows;
    weighted_.n_cols = rows.n_cols;
    weighted_.indptr.assign(rows.n_rows + 1, 0);
    weighted_.indices.reserve(rows.nnz());
    weighted_.values.reserve(rows.nnz());
    for (std::size_t row = 0; row < rows.n_rows; ++row) {
      for (std::uint64_t p = rows.indptr[row]; p < rows.indptr[row + 1]; ++p) {
        const float value = rows.values[p];
        if (!usable(value)) continue;
        const float weight =
            static_cast<float>(Weight(binary ? 1.0 : value, length[row], rows.indices[p]));
        if (!(weight > 0)) continue;
        weighted_.indices.push_back(rows.indices[p]);
        weighted_.values.push_back(weight);
      }
      weighted_.indptr[row + 1] = weighted_.indices.size();
    }
    transpose_ = weighted_.Transpose();
  }

  const CsrMatrix& kept = this->rows();
  stats_.resize(kept.n_rows);
  for (std::size_t row = 0; row < kept.n_rows; ++row) {
    double squares = 0;
    for (std::uint64_t p = kept.indptr[row]; p < kept.indptr[row + 1]; ++p) {
      const double weight = unit_weights_ ? 1.0 : static_cast<double>(kept.values[p]);
      squares += weight * weight;
    }
    stats_[row] =
        static_cast<float>(options.kind == SimilarityKind::kJaccard ? squares : std::sqrt(squares));
  }
}

double RowSimilarity::Weight(double value, double length, std::uint32_t feature) const {
  switch (options_.kind) {
    case SimilarityKind::kCosine:
    case SimilarityKind::kJaccard:
      return value;
    case SimilarityKind::kTfidf:
      return std::sqrt(value) * idf_[feature];
    case SimilarityKind::kBm25: {
      const double k1 = options_.bm25_k1, b = options_.bm25_b;
      const double length_norm = (1.0 - b) + b * length / average_length_;
      return value * (k1 + 1.0) / (k1 * length_norm + value) * idf_[feature];
    }
  }
  return 0;
}

PairScorer RowSimilarity::Scorer() const {
  PairScorer scorer;
  scorer.measure =
      options_.kind == SimilarityKind::kJaccard ? PairMeasure::kTanimoto : PairMeasure::kCosine;
  scorer.shrink = options_.shrink;
  return scorer;
}

CsrMatrix RowSimilarity::AllNeighbors(std::size_t k, const Context& ctx) const {
  return TopKPairs(rows(), transpose(), stats_, unit_weights_, Scorer(), k, ctx);
}

void RowSimilarity::Query(std::span<const std::uint32_t> features, std::span<const float> values,
                          std::size_t k, Scratch& scratch, std::vector<std::uint32_t>& rows_out,
                          std::vector<float>& scores_out) const {
  rows_out.clear();
  scores_out.clear();
  if (empty()) return;
  const CsrMatrix& other_rows = transpose();
  const std::size_t n_features = other_rows.n_rows;
  const bool binary = options_.binary;

  // The query row as sorted, merged (feature, value) entries, like a CSR row.
  auto& entries = scratch.entries;
  entries.clear();
  for (std::size_t t = 0; t < features.size(); ++t) {
    if (features[t] >= n_features) continue;
    entries.emplace_back(features[t], values.size() == features.size() ? values[t] : 1.0f);
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::size_t merged = 0;
  for (std::size_t t = 0; t < entries.size(); ++t) {
    if (merged > 0 && entries[merged - 1].first == entries[t].first) {
      entries[merged - 1].second += entries[t].second;
    } else {
      entries[merged++] = entries[t];
    }
  }
  entries.resize(merged);
  double length = 0;
  std::size_t kept = 0;
  for (const auto& [feature, value] : entries) {
    if (!binary && !(value > 0)) continue;
    length += binary ? 1.0 : static_cast<double>(value);
    entries[kept++] = {feature, binary ? 1.0f : value};
  }
  entries.resize(kept);
  // Weights exactly as the constructor computes them for a training row.
  kept = 0;
  double squares = 0;
  for (const auto& [feature, value] : entries) {
    const float weight = static_cast<float>(Weight(value, length, feature));
    if (!(weight > 0)) continue;
    squares += static_cast<double>(weight) * static_cast<double>(weight);
    entries[kept++] = {feature, weight};
  }
  entries.resize(kept);
  const float stat_self =
      static_cast<float>(options_.kind == SimilarityKind::kJaccard ? squares : std::sqrt(squares));

  const std::size_t n_rows = other_rows.n_cols;
  if (scratch.accumulator.size() < n_rows) scratch.accumulator.assign(n_rows, 0.0);
  if (scratch.touched.size() < n_rows + 1) scratch.touched.resize(n_rows + 1);
  double* dots = scratch.accumulator.data();
  std::uint32_t* touched = scratch.touched.data();
  std::size_t n_touched = 0;
  for (const auto& [feature, weight] : entries) {
    for (std::uint64_t q = other_rows.indptr[feature]; q < other_rows.indptr[feature + 1]; ++q) {
      const std::uint32_t other = other_rows.indices[q];
      touched[n_touched] = other;
      n_touched += dots[other] == 0;
      dots[other] += unit_weights_
                         ? 1.0
                         : static_cast<double>(weight) * static_cast<double>(other_rows.values[q]);
    }
  }
  const PairScorer scorer = Scorer();
  auto& candidates = scratch.candidates;
  candidates.clear();
  for (std::size_t t = 0; t < n_touched; ++t) {
    const std::uint32_t other = touched[t];
    const double dot = dots[other];
    dots[other] = 0;
    const float score = scorer.Score(stat_self, stats_[other], dot);
    if (score > 0) candidates.emplace_back(score, other);
  }
  SelectTopK(candidates, k);
  for (const auto& [score, other] : candidates) {
    rows_out.push_back(other);
    scores_out.push_back(score);
  }
}

}  // namespace recforge::models
