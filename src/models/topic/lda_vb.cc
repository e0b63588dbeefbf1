#include "topic/lda_vb.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"

namespace recforge::models::topic {
namespace {

#if defined(RECFORGE_NO_TARGET_CLONES)
#define RECFORGE_TOPIC_CLONES  // sanitizer builds: baseline code only (see CMakeLists.txt)
#else
#define RECFORGE_TOPIC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define RECFORGE_TOPIC_INLINE inline __attribute__((always_inline))

// Scaled exponentials are floored here: the largest entry of a row is 1, so products
// of two floored entries (1e-30) stay normal floats, and probabilities 1e-15 below a
// row's largest one do not matter. Denormals would slow the SIMD passes many times.
constexpr float kScaledFloor = 1e-15f;
// Added to every phinorm (a dot of two scaled rows, so at least ~1e-30 anyway).
constexpr float kPhinormEpsilon = 1e-30f;
// Documents handed to a thread at a time in the E-step (any value gives the same model).
constexpr std::size_t kDocChunk = 16;

std::size_t PaddedTopics(std::size_t topics) { return (topics + 7) / 8 * 8; }

// GCC vector extensions, compiled per clone (one AVX register, or two SSE registers in
// the baseline clone); always_inline helpers take the clone's target.
typedef float V8 __attribute__((vector_size(32)));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
RECFORGE_TOPIC_INLINE V8 Load8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
RECFORGE_TOPIC_INLINE void Store8(float* p, V8 v) { __builtin_memcpy(p, &v, sizeof v); }
RECFORGE_TOPIC_INLINE float Sum8(V8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// One inner iteration over a document's gathered rows (n x 8*NV): for each row j,
// phinorm_j = rows_j . x, ratio_j = c_j / phinorm_j, acc += ratio_j * rows_j.
template <int NV>
RECFORGE_TOPIC_INLINE void FusedPassFixed(const float* rows, std::size_t n, const float* counts,
                                          const float* x, float* acc, float* ratio) {
  V8 xv[NV], av[NV];
  for (int v = 0; v < NV; ++v) {
    xv[v] = Load8(x + 8 * v);
    av[v] = V8{};
  }
  for (std::size_t j = 0; j < n; ++j) {
    const float* row = rows + j * (8 * NV);
    V8 partial = V8{};
    for (int v = 0; v < NV; ++v) partial += Load8(row + 8 * v) * xv[v];
    const float r = counts[j] / (Sum8(partial) + kPhinormEpsilon);
    ratio[j] = r;
    for (int v = 0; v < NV; ++v) av[v] += r * Load8(row + 8 * v);
  }
  for (int v = 0; v < NV; ++v) Store8(acc + 8 * v, av[v]);
}

RECFORGE_TOPIC_INLINE void FusedPassGeneric(const float* rows, std::size_t n, std::size_t nv,
                                            const float* counts, const float* x, float* acc,
                                            float* ratio) {
  const std::size_t width = 8 * nv;
  std::fill(acc, acc + width, 0.0f);
  for (std::size_t j = 0; j < n; ++j) {
    const float* row = rows + j * width;
    V8 partial = V8{};
    for (std::size_t v = 0; v < nv; ++v) partial += Load8(row + 8 * v) * Load8(x + 8 * v);
    const float r = counts[j] / (Sum8(partial) + kPhinormEpsilon);
    ratio[j] = r;
    for (std::size_t v = 0; v < nv; ++v) Store8(acc + 8 * v, Load8(acc + 8 * v) + r * Load8(row + 8 * v));
  }
}

RECFORGE_TOPIC_CLONES void FusedPass(const float* rows, std::size_t n, std::size_t padded,
                                     const float* counts, const float* x, float* acc, float* ratio) {
  switch (padded / 8) {
    case 1: return FusedPassFixed<1>(rows, n, counts, x, acc, ratio);
    case 2: return FusedPassFixed<2>(rows, n, counts, x, acc, ratio);
    case 3: return FusedPassFixed<3>(rows, n, counts, x, acc, ratio);
    case 4: return FusedPassFixed<4>(rows, n, counts, x, acc, ratio);
    case 5: return FusedPassFixed<5>(rows, n, counts, x, acc, ratio);
    case 6: return FusedPassFixed<6>(rows, n, counts, x, acc, ratio);
    case 8: return FusedPassFixed<8>(rows, n, counts, x, acc, ratio);
    case 12: return FusedPassFixed<12>(rows, n, counts, x, acc, ratio);
    case 16: return FusedPassFixed<16>(rows, n, counts, x, acc, ratio);
    default: return FusedPassGeneric(rows, n, padded / 8, counts, x, acc, ratio);
  }
}

// dots[j] = rows_j . x (rows n x padded, contiguous).
RECFORGE_TOPIC_CLONES void RowDots(const float* rows, std::size_t n, std::size_t padded, const float* x,
                                   float* dots) {
  const std::size_t nv = padded / 8;
  for (std::size_t j = 0; j < n; ++j) {
    const float* row = rows + j * padded;
    V8 partial = V8{};
    for (std::size_t v = 0; v < nv; ++v) partial += Load8(row + 8 * v) * Load8(x + 8 * v);
    dots[j] = Sum8(partial) + kPhinormEpsilon;
  }
}

// out += sum_e weights[e] * rows[index[e]] (rows of `padded` floats): the M-step column sum.
RECFORGE_TOPIC_CLONES void GatherAxpy(const float* rows, std::size_t padded, const std::uint32_t* index,
                                      const float* weights, std::size_t n, float* out) {
  const std::size_t nv = padded / 8;
  for (std::size_t e = 0; e < n; ++e) {
    if (e + 8 < n) __builtin_prefetch(rows + std::size_t{index[e + 8]} * padded);
    const float* row = rows + std::size_t{index[e]} * padded;
    const float w = weights[e];
    for (std::size_t v = 0; v < nv; ++v) Store8(out + 8 * v, Load8(out + 8 * v) + w * Load8(row + 8 * v));
  }
}
#pragma GCC diagnostic pop

// psi(x) in float for x > 0: six recurrence steps, then the asymptotic series at
// x + 6 >= 6 (relative error ~1e-7, as good as float).
RECFORGE_TOPIC_INLINE float DigammaFloat(float x) {
  const float shift = 1.0f / x + 1.0f / (x + 1.0f) + 1.0f / (x + 2.0f) + 1.0f / (x + 3.0f) +
                      1.0f / (x + 4.0f) + 1.0f / (x + 5.0f);
  const float y = x + 6.0f;
  const float inv = 1.0f / y;
  const float f = inv * inv;
  return std::log(y) - 0.5f * inv -
         f * (1.0f / 12 - f * (1.0f / 120 - f * (1.0f / 252 - f * (1.0f / 240)))) - shift;
}

// out[k] = exp(E[log theta_k]) / max_k exp(E[log theta_k]) for k < topics (floored),
// zeros up to `padded`; returns log of the maximum, i.e. max_k E[log theta_k].
RECFORGE_TOPIC_CLONES double ScaledExpDirichlet(const float* gamma, std::size_t topics, std::size_t padded,
                                                float* digamma_scratch, float* out) {
  double total = 0;
  for (std::size_t k = 0; k < topics; ++k) total += gamma[k];
  const float psi_total = static_cast<float>(Digamma(total));
  float largest = -std::numeric_limits<float>::infinity();
  for (std::size_t k = 0; k < topics; ++k) {
    digamma_scratch[k] = DigammaFloat(gamma[k]) - psi_total;
    largest = std::max(largest, digamma_scratch[k]);
  }
  for (std::size_t k = 0; k < topics; ++k) {
    out[k] = std::max(kScaledFloor, std::exp(digamma_scratch[k] - largest));
  }
  std::fill(out + topics, out + padded, 0.0f);
  return largest;
}

// Gamma(shape, 1) by Marsaglia & Tsang (2000), for shape >= 1.
double SampleGamma(Rng& rng, double shape) {
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      // Box-Muller normal.
      const double u1 = 1.0 - rng.Uniform();  // (0, 1]
      const double u2 = rng.Uniform();
      x = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - rng.Uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

// Rows of Gamma(100, 1/100) entries (mean 1, sd 0.1), the initialisation of both peers;
// row r from stream DeriveSeed(seed, stream + r).
void GammaRows(std::vector<float>& out, std::size_t rows, std::size_t cols, std::uint64_t seed,
               std::uint64_t stream, int threads) {
  out.assign(rows * cols, 0.0f);
  ParallelFor<std::size_t>(0, rows, threads, [&](std::size_t row) {
    Rng rng(DeriveSeed(seed, stream + row));
    for (std::size_t k = 0; k < cols; ++k) out[row * cols + k] = static_cast<float>(SampleGamma(rng, 100.0) / 100.0);
  });
}

// Adds one seed document to each topic's initial lambda, the documents chosen like
// k-means++ seeds (Arthur & Vassilvitskii 2007) under cosine distance: the first
// uniformly, each next one with probability proportional to (1 - its largest cosine
// to the seeds so far)^2. Each seed's normalised counts, scaled to the document's
// length, are added to its topic's row; so the first E-step starts from K distinct
// themes instead of near-uniform topics, which otherwise often merge two themes into
// one topic and split another (a local optimum batch VB cannot leave). O(K nnz).
void SeedTopicsFromDocuments(const CsrMatrix& docs, std::size_t topics, std::uint64_t seed,
                             std::vector<float>& lambda) {
  const std::size_t n_docs = docs.n_rows;
  if (n_docs == 0 || docs.nnz() == 0) return;
  Rng rng(DeriveSeed(seed, std::uint64_t{3} << 40));
  std::vector<double> norm(n_docs, 0.0);
  for (std::size_t d = 0; d < n_docs; ++d) {
    for (float c : docs.RowValues(d)) norm[d] += double{c} * c;
    norm[d] = std::sqrt(norm[d]);
  }
  std::vector<double> best_cosine(n_docs, 0.0);
  std::vector<double> dense(docs.n_cols, 0.0);
  std::vector<char> chosen(n_docs, 0);
  for (std::size_t k = 0; k < topics; ++k) {
    std::size_t pick = n_docs;
    double total = 0;
    for (std::size_t d = 0; d < n_docs; ++d) {
      if (norm[d] > 0 && !chosen[d]) total += (1 - best_cosine[d]) * (1 - best_cosine[d]);
    }
    if (!(total > 0)) break;  // fewer distinct documents than topics
    double u = rng.Uniform() * total;
    for (std::size_t d = 0; d < n_docs; ++d) {
      if (norm[d] == 0 || chosen[d]) continue;
      pick = d;
      u -= (1 - best_cosine[d]) * (1 - best_cosine[d]);
      if (u < 0) break;
    }
    chosen[pick] = 1;
    auto words = docs.RowIndices(pick);
    auto counts = docs.RowValues(pick);
    for (std::size_t j = 0; j < words.size(); ++j) {
      lambda[std::size_t{words[j]} * topics + k] += counts[j];
      dense[words[j]] = counts[j] / norm[pick];
    }
    for (std::size_t d = 0; d < n_docs; ++d) {
      if (norm[d] == 0) continue;
      double dot = 0;
      auto dw = docs.RowIndices(d);
      auto dc = docs.RowValues(d);
      for (std::size_t j = 0; j < dw.size(); ++j) dot += dense[dw[j]] * dc[j];
      best_cosine[d] = std::max(best_cosine[d], dot / norm[d]);
    }
    for (std::uint32_t w : words) dense[w] = 0;
  }
}

}  // namespace

double Digamma(double x) {
  double result = 0;
  while (x < 6.0) {
    result -= 1.0 / x;
    x += 1.0;
  }
  const double inv = 1.0 / x;
  const double f = inv * inv;
  return result + std::log(x) - 0.5 * inv -
         f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))));
}

double LogGamma(double x) {
  // Shift to x >= 7, then Stirling's series (error < 1e-15 there).
  double shift = 0;
  double product = 1;
  while (x < 7.0) {
    product *= x;
    x += 1.0;
    if (product > 1e280) {
      shift += std::log(product);
      product = 1;
    }
  }
  shift += std::log(product);
  const double inv = 1.0 / x;
  const double f = inv * inv;
  const double series = inv * (1.0 / 12 - f * (1.0 / 360 - f * (1.0 / 1260 - f * (1.0 / 1680))));
  return (x - 0.5) * std::log(x) - x + 0.5 * std::log(2.0 * M_PI) + series - shift;
}

void NormaliseRows(std::vector<float>& values, std::size_t cols) {
  if (cols == 0) return;
  for (std::size_t row = 0; row < values.size() / cols; ++row) {
    float* v = values.data() + row * cols;
    double total = 0;
    for (std::size_t k = 0; k < cols; ++k) total += v[k];
    if (total > 0) {
      const float inv = static_cast<float>(1.0 / total);
      for (std::size_t k = 0; k < cols; ++k) v[k] *= inv;
    }
  }
}

TopicWords::TopicWords(std::vector<float> lambda, std::size_t n_words, std::size_t topics, int threads)
    : topics_(topics), padded_(PaddedTopics(topics)), n_words_(n_words), lambda_(std::move(lambda)) {
  if (lambda_.size() != n_words_ * topics_) {
    throw FormatError(fmt::format("topic-word matrix has {} values, expected {} words x {} topics",
                                  lambda_.size(), n_words_, topics_));
  }
  Refresh(threads);
}

void TopicWords::Refresh(int threads) {
  const std::size_t k_count = topics_;
  column_sums_.assign(k_count, 0.0);
  for (std::size_t word = 0; word < n_words_; ++word) {
    const float* row = lambda_.data() + word * k_count;
    for (std::size_t k = 0; k < k_count; ++k) column_sums_[k] += row[k];
  }
  std::vector<double> psi_sums(k_count);
  for (std::size_t k = 0; k < k_count; ++k) psi_sums[k] = Digamma(column_sums_[k]);
  scaled_.assign(n_words_ * padded_, 0.0f);
  log_scale_.assign(n_words_, 0.0);
  ParallelFor<std::size_t>(
      0, n_words_, threads,
      [&](std::size_t word) {
        const float* row = lambda_.data() + word * k_count;
        double elog[1024];
        double* e = k_count <= 1024 ? elog : nullptr;
        std::vector<double> big;
        if (e == nullptr) {
          big.resize(k_count);
          e = big.data();
        }
        double largest = -std::numeric_limits<double>::infinity();
        for (std::size_t k = 0; k < k_count; ++k) {
          e[k] = Digamma(row[k]) - psi_sums[k];
          largest = std::max(largest, e[k]);
        }
        float* out = scaled_.data() + word * padded_;
        for (std::size_t k = 0; k < k_count; ++k) {
          out[k] = std::max(kScaledFloor, static_cast<float>(std::exp(e[k] - largest)));
        }
        log_scale_[word] = largest;
      },
      Schedule::kDynamic, 256);
}

double TopicWords::TopicBound(double eta, int threads) const {
  const std::size_t k_count = topics_;
  std::vector<double> psi_sums(k_count);
  for (std::size_t k = 0; k < k_count; ++k) psi_sums[k] = Digamma(column_sums_[k]);
  const double log_gamma_eta = LogGamma(eta);
  std::vector<double> per_word(n_words_, 0.0);
  ParallelFor<std::size_t>(
      0, n_words_, threads,
      [&](std::size_t word) {
        const float* row = lambda_.data() + word * k_count;
        double sum = 0;
        for (std::size_t k = 0; k < k_count; ++k) {
          const double lambda = row[k];
          sum += (eta - lambda) * (Digamma(lambda) - psi_sums[k]) + LogGamma(lambda) - log_gamma_eta;
        }
        per_word[word] = sum;
      },
      Schedule::kDynamic, 256);
  double bound = 0;
  for (double value : per_word) bound += value;
  const double log_gamma_total_eta = LogGamma(eta * static_cast<double>(n_words_));
  for (std::size_t k = 0; k < k_count; ++k) bound += log_gamma_total_eta - LogGamma(column_sums_[k]);
  return bound;
}

void TopicWords::TopicWordProbabilities(float* out) const {
  for (std::size_t word = 0; word < n_words_; ++word) {
    for (std::size_t k = 0; k < topics_; ++k) {
      out[word * topics_ + k] = static_cast<float>(lambda_[word * topics_ + k] / column_sums_[k]);
    }
  }
}

int TopicWords::InferDocument(std::span<const std::uint32_t> words, std::span<const float> counts, double alpha,
                              int max_iterations, double tol, float* gamma, Scratch& scratch,
                              float* exp_theta_out, float* ratio_out, double* bound_out) const {
  const std::size_t n = words.size();
  const std::size_t k_count = topics_;
  const std::size_t padded = padded_;
  scratch.rows.resize(n * padded);
  scratch.ratio.resize(n);
  scratch.exp_theta.resize(padded);
  scratch.accumulator.resize(padded);
  scratch.digamma.resize(k_count);
  float* digamma_floats = scratch.digamma.data();
  for (std::size_t j = 0; j < n; ++j) {
    std::copy_n(ScaledRow(words[j]), padded, scratch.rows.data() + j * padded);
  }
  float* exp_theta = scratch.exp_theta.data();
  double log_max = 0;
  int iterations = 0;
  if (n == 0) {
    std::fill(gamma, gamma + k_count, static_cast<float>(alpha));
  } else {
    log_max = ScaledExpDirichlet(gamma, k_count, padded, digamma_floats, exp_theta);
    const auto alpha_f = static_cast<float>(alpha);
    for (iterations = 0; iterations < max_iterations;) {
      FusedPass(scratch.rows.data(), n, padded, counts.data(), exp_theta, scratch.accumulator.data(),
                scratch.ratio.data());
      double change = 0;
      for (std::size_t k = 0; k < k_count; ++k) {
        const float updated = alpha_f + exp_theta[k] * scratch.accumulator[k];
        change += std::fabs(updated - gamma[k]);
        gamma[k] = updated;
      }
      log_max = ScaledExpDirichlet(gamma, k_count, padded, digamma_floats, exp_theta);
      ++iterations;
      if (change / static_cast<double>(k_count) < tol) break;
    }
  }
  if (n == 0) log_max = ScaledExpDirichlet(gamma, k_count, padded, digamma_floats, exp_theta);
  if (exp_theta_out != nullptr) std::copy_n(exp_theta, padded, exp_theta_out);
  if (ratio_out == nullptr && bound_out == nullptr) return iterations;
  // phinorm against the final gamma (what the M-step and the bound need).
  RowDots(scratch.rows.data(), n, padded, exp_theta, scratch.ratio.data());
  if (ratio_out != nullptr) {
    for (std::size_t j = 0; j < n; ++j) ratio_out[j] = counts[j] / scratch.ratio[j];
  }
  if (bound_out != nullptr) {
    double bound = 0;
    for (std::size_t j = 0; j < n; ++j) {
      bound += double{counts[j]} * (std::log(double{scratch.ratio[j]}) + log_max + log_scale_[words[j]]);
    }
    double total = 0;
    for (std::size_t k = 0; k < k_count; ++k) total += gamma[k];
    const double psi_total = Digamma(total);
    const double log_gamma_alpha = LogGamma(alpha);
    for (std::size_t k = 0; k < k_count; ++k) {
      const double g = gamma[k];
      bound += (alpha - g) * (Digamma(g) - psi_total) + LogGamma(g) - log_gamma_alpha;
    }
    bound += LogGamma(alpha * static_cast<double>(k_count)) - LogGamma(total);
    *bound_out = bound;
  }
  return iterations;
}

VbResult FitVb(const CsrMatrix& docs, const VbOptions& options, std::uint64_t seed, int threads,
               const std::function<void(const VbPassReport&, const TopicWords&, const std::vector<float>&)>&
                   on_pass) {
  const std::size_t n_docs = docs.n_rows;
  const std::size_t n_words = docs.n_cols;
  const std::size_t k_count = options.topics;
  const std::size_t padded = PaddedTopics(k_count);
  const std::size_t nnz = docs.nnz();
  double tokens = 0;
  for (std::size_t e = 0; e < nnz; ++e) {
    if (!(docs.values[e] > 0) || !std::isfinite(docs.values[e])) {
      throw InvalidArgument(fmt::format("LDA: word counts must be positive and finite (entry {} is {})", e,
                                        docs.values[e]));
    }
    tokens += docs.values[e];
  }

  // Word-major view: the documents of word w are word_docs[word_indptr[w] ..), in
  // document order; position p of the document-major arrays lands at word_position[p].
  std::vector<std::uint64_t> word_indptr(n_words + 1, 0);
  for (std::uint32_t word : docs.indices) ++word_indptr[word + 1];
  for (std::size_t w = 0; w < n_words; ++w) word_indptr[w + 1] += word_indptr[w];
  std::vector<std::uint32_t> word_docs(nnz);
  std::vector<std::uint64_t> word_position(nnz);
  {
    std::vector<std::uint64_t> cursor(word_indptr.begin(), word_indptr.end() - 1);
    for (std::size_t d = 0; d < n_docs; ++d) {
      for (std::uint64_t p = docs.indptr[d]; p < docs.indptr[d + 1]; ++p) {
        const std::uint64_t at = cursor[docs.indices[p]]++;
        word_docs[at] = static_cast<std::uint32_t>(d);
        word_position[p] = at;
      }
    }
  }

  std::vector<float> lambda;
  GammaRows(lambda, n_words, k_count, seed, 0, threads);
  if (options.seed_topics) SeedTopicsFromDocuments(docs, k_count, seed, lambda);
  VbResult result;
  result.words = TopicWords(std::move(lambda), n_words, k_count, threads);
  GammaRows(result.gamma, n_docs, k_count, seed, std::uint64_t{1} << 40, threads);

  std::vector<float> exp_theta(n_docs * padded, 0.0f);
  std::vector<float> ratio(nnz, 0.0f);  // word-major
  std::vector<double> doc_bound(n_docs, 0.0);
  std::vector<int> doc_iterations(n_docs, 0);

  // One E-step over every document: parallel in chunks; each document's results depend
  // only on its own row, so the schedule does not matter.
  // The restart point of a document's gamma: alpha + n_d / K (symmetric; the words'
  // topic probabilities break the symmetry in the first inner iteration). Fold-in starts
  // there too, so a training document folds in to its training gamma.
  auto restart = [&](std::size_t d) {
    double total = 0;
    for (float c : docs.RowValues(d)) total += c;
    std::fill_n(result.gamma.data() + d * k_count, k_count,
                static_cast<float>(options.alpha + total / static_cast<double>(k_count)));
  };
  auto e_step = [&](bool statistics, bool restart_gamma) {
    std::atomic<std::size_t> next{0};
    ParallelRegion(threads, [&](int) {
      TopicWords::Scratch scratch;
      std::vector<float> row_ratio;
      for (;;) {
        const std::size_t begin = next.fetch_add(kDocChunk);
        if (begin >= n_docs) break;
        const std::size_t end = std::min(n_docs, begin + kDocChunk);
        for (std::size_t d = begin; d < end; ++d) {
          const std::size_t length = docs.RowLength(d);
          row_ratio.resize(length);
          if (restart_gamma) restart(d);
          doc_iterations[d] = result.words.InferDocument(
              docs.RowIndices(d), docs.RowValues(d), options.alpha, options.e_step_iterations, options.e_step_tol,
              result.gamma.data() + d * k_count, scratch, statistics ? exp_theta.data() + d * padded : nullptr,
              statistics ? row_ratio.data() : nullptr,
              statistics && options.compute_bound ? &doc_bound[d] : nullptr);
          if (statistics) {
            for (std::size_t j = 0; j < length; ++j) ratio[word_position[docs.indptr[d] + j]] = row_ratio[j];
          }
        }
      }
    });
  };

  for (int pass = 1; pass <= options.passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    e_step(true, pass <= options.restart_passes);
    VbPassReport report;
    report.pass = pass;
    report.tokens = tokens;
    if (options.compute_bound) {
      double bound = result.words.TopicBound(options.eta, threads);
      for (double value : doc_bound) bound += value;
      report.bound = bound;
    }
    double iterations = 0;
    for (int value : doc_iterations) iterations += value;
    report.mean_inner_iterations = n_docs > 0 ? iterations / static_cast<double>(n_docs) : 0;

    // M-step, word by word: lambda_w = eta + scaled_row_w * sum_d ratio_dw exp_theta_d.
    std::vector<float> lambda(n_words * k_count);
    const auto eta = static_cast<float>(options.eta);
    ParallelFor<std::size_t>(
        0, n_words, threads,
        [&](std::size_t word) {
          alignas(64) float sums_stack[256];
          std::vector<float> sums_heap;
          float* sums = sums_stack;
          if (padded > 256) {
            sums_heap.assign(padded, 0.0f);
            sums = sums_heap.data();
          } else {
            std::fill(sums, sums + padded, 0.0f);
          }
          const std::uint64_t begin = word_indptr[word];
          GatherAxpy(exp_theta.data(), padded, word_docs.data() + begin, ratio.data() + begin,
                     word_indptr[word + 1] - begin, sums);
          const float* scaled = result.words.ScaledRow(static_cast<std::uint32_t>(word));
          for (std::size_t k = 0; k < k_count; ++k) lambda[word * k_count + k] = eta + scaled[k] * sums[k];
        },
        Schedule::kDynamic, 64);
    result.words = TopicWords(std::move(lambda), n_words, k_count, threads);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.compute_bound) result.bounds.push_back(tokens > 0 ? report.bound / tokens : 0.0);
    if (on_pass) on_pass(report, result.words, result.gamma);
  }
  // gamma against the final topics (warm-started, so a few inner iterations).
  if (options.passes > 0) e_step(false, options.passes <= options.restart_passes);
  return result;
}

}  // namespace recforge::models::topic
