// Sparse all-pairs similarity for the neighbourhood families (itemknn, userknn, assoc).
//
// The rows of a CSR matrix (items of item_users for item-kNN, users of user_items for
// user-kNN) are compared through the features they share. For every row r the kernel
// walks r's features f and, through the transpose, every other row s that has f, adding
// w(r, f) * w(s, f) into a per-thread dense accumulator; only rows that share a feature
// are ever touched, so the cost is sum over features of (rows with that feature)^2 and
// no dense rows x rows matrix exists. A pair score is then computed from the dot product
// and per-row statistics, and the top k rows are kept.
//
// Exactness: products of two float weights are exact in double, the accumulator is a
// double (or an integer count when every weight is 1) and features are added in
// ascending order, so every dot product equals a brute-force sum over the sorted
// intersection of the two rows, bit for bit, whatever the thread count; the score is
// then one documented double expression of it and the float row statistics, rounded
// to float once.
//
// Tie order: score descending, then row index ascending. Only pairs with a score > 0
// are kept (with positive weights every co-occurring pair qualifies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "recforge/core/context.h"
#include "recforge/core/csr.h"
#include "recforge/models/params.h"

namespace recforge::models {

// How a pair score is computed from the dot product of two weighted rows a and b and
// a per-row statistic stat[] (see TopKPairs).
enum class PairMeasure {
  kCosine,      // dot / (stat[a] * stat[b] + shrink), stat = Euclidean norm
  kTanimoto,    // dot / (stat[a] + stat[b] - dot + shrink), stat = squared norm
                // (Jaccard |A n B| / |A u B| when every weight is 1)
  kSupport,     // dot * scale (scale = 1 / number of baskets)
  kConfidence,  // dot / stat[a], stat = row count (rule a -> b)
  kLift,        // dot * scale / (stat[a] * stat[b]), scale = number of baskets
};

struct PairScorer {
  PairMeasure measure = PairMeasure::kCosine;
  double shrink = 0;   // kCosine, kTanimoto: damps pairs of rarely seen rows
  double min_dot = 0;  // pairs whose dot product is below this are never candidates
  double scale = 1;    // kSupport, kLift

  // The score, computed in double and rounded to float once.
  float Score(double stat_a, double stat_b, double dot) const {
    switch (measure) {
      case PairMeasure::kCosine:
        return ScoreAs<PairMeasure::kCosine>(stat_a, stat_b, dot);
      case PairMeasure::kTanimoto:
        return ScoreAs<PairMeasure::kTanimoto>(stat_a, stat_b, dot);
      case PairMeasure::kSupport:
        return ScoreAs<PairMeasure::kSupport>(stat_a, stat_b, dot);
      case PairMeasure::kConfidence:
        return ScoreAs<PairMeasure::kConfidence>(stat_a, stat_b, dot);
      case PairMeasure::kLift:
        return ScoreAs<PairMeasure::kLift>(stat_a, stat_b, dot);
    }
    return 0;
  }
  // The same with the measure fixed at compile time (the kernels' inner loops).
  template <PairMeasure kMeasure>
  float ScoreAs(double stat_a, double stat_b, double dot) const {
    double score = 0;
    if constexpr (kMeasure == PairMeasure::kCosine) {
      score = dot / (stat_a * stat_b + shrink);
    } else if constexpr (kMeasure == PairMeasure::kTanimoto) {
      score = dot / (stat_a + stat_b - dot + shrink);
    } else if constexpr (kMeasure == PairMeasure::kSupport) {
      score = dot * scale;
    } else if constexpr (kMeasure == PairMeasure::kConfidence) {
      score = dot / stat_a;
    } else {
      score = dot * scale / (stat_a * stat_b);
    }
    return static_cast<float>(score);
  }
};

// For every row r of `rows` (n_rows x n_features, weights > 0, columns ascending),
// the k other rows with the highest scorer.Score(stat[r], stat[s], dot(r, s)) among
// those sharing at least one feature with r and with dot >= min_dot and score > 0.
// Returns an n_rows x n_rows CSR matrix whose row r lists those rows best first (so
// columns are NOT ascending) with their scores. `transpose` must be rows.Transpose().
// `unit_weights` promises that every weight is exactly 1 (counts are then accumulated
// as integers, which is faster and gives the same numbers).
//
// Cost: O(sum_f n_f^2) accumulations (n_f = rows having feature f) plus the selection
// over each row's co-occurring rows, which prunes candidates against the running k-th
// best score. Memory per thread: 8 bytes per row with unit weights, 12 otherwise
// (accumulator and touched list), plus the candidate buffer; output 8 bytes per kept
// pair; with at most 65536 rows a temporary 16-bit copy of transpose's indices (2
// bytes per entry) halves the memory traffic of the accumulation. Runs on ctx.threads
// threads with dynamic scheduling; deterministic for any thread count. Reports
// progress as stage "similarity" (from one thread).
CsrMatrix TopKPairs(const CsrMatrix& rows, const CsrMatrix& transpose, std::span<const float> stat,
                    bool unit_weights, const PairScorer& scorer, std::size_t k, const Context& ctx);

// ---------------------------------------------------------------------------------
// Similarity of the neighbourhood models: a feature weighting, then a pair measure.

enum class SimilarityKind {
  kCosine,   // cosine of the (binary or rating) vectors
  kJaccard,  // Tanimoto of the vectors (Jaccard of the sets when binary)
  kBm25,     // cosine of BM25-weighted vectors
  kTfidf,    // cosine of TF-IDF-weighted vectors
};
// "cosine", "jaccard", "bm25", "tfidf". Parse throws ConfigError listing the values.
SimilarityKind ParseSimilarityKind(std::string_view name);
std::string_view Name(SimilarityKind kind);
// The choice list for a params table, in the order above.
std::vector<std::string> SimilarityKindNames();

struct SimilarityOptions {
  SimilarityKind kind = SimilarityKind::kCosine;
  double shrink = 0;     // added to the denominator (cosine, jaccard, bm25, tfidf)
  bool binary = true;    // every stored interaction counts as 1 (else its value)
  double bm25_k1 = 1.2;  // BM25 term-frequency saturation
  double bm25_b = 0.75;  // BM25 length normalisation (0 = none, 1 = full)
};

// The similarity params shared by itemknn and userknn (the defaults differ per
// family): similarity, shrink, binary, bm25_k1, bm25_b. The family adds its own
// (neighbors, ...).
std::vector<ParamField> SimilarityFields(const std::string& default_kind, double default_shrink,
                                         bool default_binary);
// Reads those params back (names as in SimilarityFields).
SimilarityOptions SimilarityOptionsFrom(const ParamValues& params);

// The weighted rows and per-row statistics of one similarity, built once and shared
// by the all-pairs fit and by ad-hoc queries (fold-in).
//
// Weighting of entry (r, f) with value v (v = 1 for every stored entry when binary;
// otherwise the stored value, and entries with v <= 0 or NaN are dropped): with
// N = rows having >= 1 entry, df_f = rows having f, idf_f = log(N) - log1p(df_f),
// len_r = sum of r's values and avg_len = mean len_r over the N non-empty rows,
//   cosine, jaccard: w = v
//   tfidf:           w = float(sqrt(v) * idf_f)
//   bm25:            w = float(v * (k1 + 1) / (k1 * ((1 - b) + b * len_r / avg_len) + v) * idf_f)
// Weights <= 0 (a feature present in every row has idf <= 0) are dropped. The
// statistic of a row is its squared norm (jaccard) or norm (the others): the sum of
// squared weights, accumulated in double in ascending feature order (sqrt for norm),
// rounded to float. With binary data the bm25 row factor cancels in the cosine, so
// bm25 and tfidf then rank alike; they differ on rating or count values.
//
// Thread-safety: const methods may be called concurrently (each with its own Scratch).
class RowSimilarity {
 public:
  RowSimilarity() = default;
  // `rows` is n_rows x n_features. When `transpose` (= rows.Transpose()) is given and
  // the weights are the stored entries unchanged (cosine or jaccard, binary or with
  // every value > 0), no copy is made and both matrices must outlive this object;
  // otherwise the weighted matrix and its transpose are built and owned (memory ~2x
  // the matrix). Cost O(nnz).
  RowSimilarity(const CsrMatrix& rows, const CsrMatrix* transpose,
                const SimilarityOptions& options);

  // Top-k most similar other rows of every row (see TopKPairs).
  CsrMatrix AllNeighbors(std::size_t k, const Context& ctx) const;

  // Per-call scratch for Query (reused across calls on one thread).
  struct Scratch {
    std::vector<double> accumulator;
    std::vector<std::uint32_t> touched;
    std::vector<std::pair<std::uint32_t, float>> entries;
    std::vector<std::pair<float, std::uint32_t>> candidates;
  };
  // The k training rows most similar to an ad-hoc row given as (feature, value) pairs
  // (any order; repeated features are summed; features >= n_features are ignored;
  // `values` of another length than `features`, e.g. empty, means all 1), weighted
  // like a training row with the training idf and average length. Output best first,
  // with the scores and tie order AllNeighbors gives a training row with these entries
  // (the query is never excluded as "self"). Cost O(sum over the row's features of
  // n_f) plus the selection; allocates nothing once `scratch` has grown.
  void Query(std::span<const std::uint32_t> features, std::span<const float> values, std::size_t k,
             Scratch& scratch, std::vector<std::uint32_t>& rows_out,
             std::vector<float>& scores_out) const;

  const SimilarityOptions& options() const { return options_; }
  std::size_t n_rows() const { return stats_.size(); }
  bool empty() const { return stats_.empty(); }

 private:
  const CsrMatrix& rows() const { return borrowed_rows_ != nullptr ? *borrowed_rows_ : weighted_; }
  const CsrMatrix& transpose() const {
    return borrowed_transpose_ != nullptr ? *borrowed_transpose_ : transpose_;
  }
  // The weight of value v (> 0) of a row of raw length `length`, for feature f.
  double Weight(double value, double length, std::uint32_t feature) const;
  PairScorer Scorer() const;

  SimilarityOptions options_;
  bool unit_weights_ = false;  // every weight is 1 (values of the matrices are not read)
  const CsrMatrix* borrowed_rows_ = nullptr;
  const CsrMatrix* borrowed_transpose_ = nullptr;
  CsrMatrix weighted_;         // n_rows x n_features, weights > 0 (unless borrowed)
  CsrMatrix transpose_;        // n_features x n_rows (unless borrowed)
  std::vector<float> stats_;   // per row: norm, or squared norm (jaccard)
  std::vector<double> idf_;    // per feature (tfidf, bm25)
  double average_length_ = 1;  // bm25
};

// Keeps the best k of `candidates` (score, row) by score descending then row
// ascending, sorted best first (unsorted = only cut to k, with the k-th best last when
// there were more than k). O(n + k log k).
void SelectTopK(std::vector<std::pair<float, std::uint32_t>>& candidates, std::size_t k,
                bool sorted = true);

}  // namespace recforge::models
