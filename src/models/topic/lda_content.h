// `lda-content`: topics learned from item text and metadata. Items are documents; their
// words are title tokens and categories / genres from TrainingData.item_info (ml-100k's
// u.item, MovieLens movies.csv, Amazon meta_*.jsonl, picked up at ingest). The same
// variational-Bayes core as `lda` (topic/lda_vb.h) fits the topics; each item keeps its
// topic mixture theta_i = gamma_i / sum gamma_i.
//
// Tokens of an item (fields=all | title | categories):
//   - title: lower-cased ASCII letters and digits (bytes >= 0x80 are kept as letters, so
//     UTF-8 words survive), split at everything else; tokens shorter than 2 characters,
//     all-digit tokens (release years) and a small English / Romance stop-word list are
//     dropped; each remaining occurrence counts 1;
//   - categories: one token per category string (whole, lower-cased), weight
//     category_weight.
//   A token is kept when at least min_count items have it and at most max_doc_fraction
//   of the items with tokens do (so unique title words and "drama"-everywhere do not
//   make topics).
//   - collaborative tokens: the users who interacted with the item (one token per user,
//     weight 1). collaborative=auto adds them only when the training data has no item
//     metadata tokens at all (the documented fallback: item-side LDA on interactions,
//     e.g. the conformance suite's planted data); always adds them to the metadata
//     tokens (a hybrid); never uses metadata only and throws InvalidArgument naming
//     the missing item metadata when there is none.
//
// Scores: the user vector is the mean theta of the user's training items and
// score(u, i) = user vector . theta_i; so items with metadata but no interactions (cold
// items) get a topic vector and are recommendable. Items without any token keep the
// prior mean theta = 1 / topics. Users without training items, and user indices >=
// n_users(), have a zero vector: every item scores 0 (ties to the smaller index).
//   - SimilarItems: cosine of the items' theta (content similarity).
//   - ScoreHistory: the mean theta of the history's items (values ignored), same scores.
//   - Training callback: as `lda` (loss = -ELBO / tokens of the item corpus).
//   - Same seed => same model for any thread count.
//
// Payload extra (after the factor payload, P = user vectors, Q = item theta):
// u8 token source (1 metadata, 2 collaborative, 3 both) | u64 vocabulary size.
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "../factor/factor_model.h"
#include "lda_vb.h"

namespace recforge::models {

namespace topic {
// Title words as described above (exposed for tests).
std::vector<std::string> TitleTokens(std::string_view title);
}  // namespace topic

class LdaContentModel final : public FactorModel {
 public:
  static std::vector<ParamField> Fields();
  explicit LdaContentModel(ParamValues params);

  // Bit 1: metadata tokens were used; bit 2: collaborative (user) tokens were used.
  int token_source() const { return token_source_; }
  std::size_t vocabulary_size() const { return vocabulary_size_; }
  // The `n` most probable tokens of topic `topic` ("w:word", "c:category", "u:<user
  // index>"); available after Fit only (the vocabulary is not saved).
  std::vector<std::string> TopTokens(std::size_t topic, std::size_t n) const;

 protected:
  void FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) override;
  bool FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
              float* user_bias) const override;
  void SaveExtra(ModelWriter& writer) const override;
  void LoadExtra(ModelReader& reader) override;

 private:
  topic::VbOptions options_;
  int token_source_ = 0;
  std::size_t vocabulary_size_ = 0;
  std::vector<std::string> vocabulary_;  // after Fit only
  std::vector<float> topic_tokens_;      // phi, vocabulary x topics (after Fit only)
};

}  // namespace recforge::models
