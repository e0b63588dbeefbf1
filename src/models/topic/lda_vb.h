// The variational-Bayes core of the topic group, shared by `lda` (users are documents,
// items are words) and `lda-content` (items are documents, metadata tokens are words).
//
// Model: latent Dirichlet allocation (Blei, Ng & Jordan 2003) with a symmetric
// Dirichlet(alpha) prior on each document's topic mixture and a symmetric Dirichlet(eta)
// prior on each topic's word distribution. Inference: batch mean-field variational Bayes
// in the formulation of Hoffman, Blei & Bach (2010), i.e. the "batch" learner of
// scikit-learn's LatentDirichletAllocation and the fixed point gensim's LdaModel
// iterates per chunk:
//
//   E-step, per document d (words w with counts c_w), with E[log beta] fixed:
//     repeat  gamma_dk = alpha + exp(E[log theta_dk]) * sum_w c_w exp(E[log beta_kw]) / phinorm_w
//             phinorm_w = sum_k exp(E[log theta_dk]) exp(E[log beta_kw])
//     until the mean |change| of gamma_d is below e_step_tol (or e_step_iterations)
//   M-step:  lambda_kw = eta + sum_d c_dw exp(E[log theta_dk]) exp(E[log beta_kw]) / phinorm_dw
//
// with E[log theta_dk] = psi(gamma_dk) - psi(sum_k gamma_dk) and likewise for beta.
// Differences from the peers, all of them about speed:
//   - gamma is warm-started from the previous pass (the peers restart every document
//     from a random gamma each pass), so later passes need a few inner iterations;
//   - exp(E[log theta]) and exp(E[log beta]) are kept scaled by their per-document /
//     per-word maximum (the updates are invariant to those scales; only the bound needs
//     them back), so float32 never underflows into denormals even for tiny priors;
//   - the M-step is a pass over words (each word sums its documents in a fixed order),
//     not per-document scatter-adds, so no per-thread sufficient-statistics copies exist
//     and the model is the same for every thread count (not only for the same one).
//
// Determinism: the initial lambda (Gamma(100, 1/100) entries, as both peers do) and
// gamma come from per-row RNG streams DeriveSeed(seed, row); every document's E-step
// depends only on its own row and every word's M-step sums in document order, so the
// same seed gives the same bits for any thread count.
//
// Cost per pass: O(sum over documents of nnz_d * K * inner iterations) for the E-step
// (a fused, SIMD row pass: one dot and one axpy per word and iteration over the
// document's gathered rows), O(nnz * K) for the M-step, O(n_words * K) digammas;
// memory: lambda and exp(E[log beta]) (n_words x K), gamma and exp(E[log theta])
// (n_docs x K), one float and one index per nonzero.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "recforge/core/csr.h"

namespace recforge::models::topic {

struct VbOptions {
  std::size_t topics = 32;
  double alpha = 0.1;          // document-topic Dirichlet prior (symmetric)
  double eta = 0.05;           // topic-word Dirichlet prior (symmetric)
  int passes = 30;             // E-step + M-step rounds over the corpus
  int e_step_iterations = 100; // cap of inner iterations per document and pass
  double e_step_tol = 1e-3;    // stop a document when mean |delta gamma| < tol
  int restart_passes = 1000000;  // passes whose E-step restarts gamma at alpha + n / K
  bool compute_bound = true;   // evaluate the evidence lower bound every pass
  bool seed_topics = true;     // add k-means++-chosen seed documents to the initial lambda
};

// One pass as seen by the caller's hook.
struct VbPassReport {
  int pass = 0;                   // 1-based
  double bound = 0;               // ELBO(gamma of this pass, lambda before its M-step)
  double tokens = 0;              // sum of the counts (bound / tokens = per-token bound)
  double mean_inner_iterations = 0;
  double seconds = 0;
};

// The learned word side plus what fold-in needs.
class TopicWords {
 public:
  TopicWords() = default;
  // lambda: n_words x topics, row-major (word-major), entries > 0.
  TopicWords(std::vector<float> lambda, std::size_t n_words, std::size_t topics, int threads);

  std::size_t topics() const { return topics_; }
  std::size_t n_words() const { return n_words_; }
  std::size_t padded() const { return padded_; }
  const std::vector<float>& lambda() const { return lambda_; }
  // exp(E[log beta_kw]) / its maximum over k, row w (padded() floats, tail zeros).
  const float* ScaledRow(std::uint32_t word) const { return scaled_.data() + std::size_t{word} * padded_; }
  // log of that maximum.
  double LogScale(std::uint32_t word) const { return log_scale_[word]; }
  // The topic part of the bound for this lambda (requires `eta`).
  double TopicBound(double eta, int threads) const;
  // phi_kw = lambda_kw / sum_w lambda_kw, written word-major into out (n_words x topics).
  void TopicWordProbabilities(float* out) const;

  // Per-thread scratch of InferDocument.
  struct Scratch {
    std::vector<float> rows, ratio, exp_theta, accumulator, digamma;
  };
  // One document's E-step against this lambda. `gamma` (topics floats) is the warm
  // start on entry and the result on exit; `exp_theta_out` (padded floats, may be null)
  // receives the scaled exp(E[log theta]); `ratio_out` (words.size(), may be null) the
  // scaled c_w / phinorm_w; `bound_out` (may be null) the document's part of the bound
  // (words + Dirichlet terms). Returns the inner iterations run. Counts must be > 0;
  // word indices < n_words(). Safe to call concurrently with distinct scratch.
  int InferDocument(std::span<const std::uint32_t> words, std::span<const float> counts, double alpha,
                    int max_iterations, double tol, float* gamma, Scratch& scratch, float* exp_theta_out,
                    float* ratio_out, double* bound_out) const;

 private:
  void Refresh(int threads);
  std::size_t topics_ = 0, padded_ = 0, n_words_ = 0;
  std::vector<float> lambda_;        // n_words x topics
  std::vector<float> scaled_;        // n_words x padded
  std::vector<double> log_scale_;    // n_words
  std::vector<double> column_sums_;  // topics: sum_w lambda_kw
};

struct VbResult {
  TopicWords words;
  std::vector<float> gamma;  // n_docs x topics (after a final E-step against `words`)
  std::vector<double> bounds;  // per-token bound of each pass
};

// Fits LDA to `docs` (n_docs x n_words, values = counts > 0; empty rows allowed: their
// gamma stays alpha). `on_pass` (may be empty) is called after every pass with the
// pass report and the state so far (words, gamma). Throws InvalidArgument on counts <= 0.
VbResult FitVb(const CsrMatrix& docs, const VbOptions& options, std::uint64_t seed, int threads,
               const std::function<void(const VbPassReport&, const TopicWords&, const std::vector<float>&)>&
                   on_pass = {});

// Row-normalises gamma (n x topics) into theta = gamma / sum_k gamma_k.
void NormaliseRows(std::vector<float>& values, std::size_t cols);

// psi(x) and log Gamma(x) for x > 0, double precision (exposed for tests).
double Digamma(double x);
double LogGamma(double x);

}  // namespace recforge::models::topic
