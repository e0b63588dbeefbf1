// `lda`: collaborative latent Dirichlet allocation. Users are documents, the items they
// interacted with are their words (Blei, Ng & Jordan 2003), fitted by batch variational
// Bayes (Hoffman, Blei & Bach 2010) with the shared core of topic/lda_vb.h.
//
// Scores: p(item | user) = sum_k theta_uk phi_k,item, with theta_u = gamma_u / sum gamma_u
// (the variational posterior mean of the user's topic mixture) and phi_k = lambda_k /
// sum_w lambda_kw (the posterior mean of topic k's item distribution). Stored as a
// FactorModel with P = theta (n_users x topics) and Q = phi transposed (n_items x
// topics), so scoring, the pruned exact top-k and the model file are the factor ones.
//   - SimilarItems: cosine of the items' topic columns phi_{., i} (FactorModel).
//   - ScoreHistory (fold-in, serve sessions): the E-step of an ad-hoc document against
//     the final topics (gamma starts at alpha + n / topics; the same inner-iteration cap
//     and tolerance as training), then theta . phi. Deterministic; an empty history
//     gives the prior mean theta = 1 / topics (the topics' average item probability).
//   - A training user without interactions has gamma = alpha, so the same prior-mean
//     scores; a user index >= n_users() scores 0 everywhere (FactorModel).
//   - The training callback gets, per pass, loss = -ELBO / tokens (a bound on the log
//     perplexity of the training interactions), metrics "perplexity_bound" =
//     exp(loss) and "inner_iterations" (mean E-step iterations per user).
//   - Same seed => same model for any thread count (topic/lda_vb.h).
//
// Payload extra (after the factor payload): u64 topics | f32 vector lambda (n_items x
// topics, item-major), from which fold-in rebuilds exp(E[log beta]) on load.
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <vector>

#include "../factor/factor_model.h"
#include "lda_vb.h"

namespace recforge::models {

class LdaModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit LdaModel(ParamValues params);

  // The fitted topics (lambda, fold-in state); empty before Fit / Load.
  const topic::TopicWords& topic_words() const { return words_; }

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  topic::VbOptions options_;
  bool use_values_ = false;
  topic::TopicWords words_;
};

}  // namespace recforge::models
