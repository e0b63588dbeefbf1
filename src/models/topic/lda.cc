#include "topic/lda.h"

#include <fmt/format.h>

#include <cmath>

#include "recforge/core/error.h"
#include "recforge/models/model_io.h"

namespace recforge::models {

std::vector<ParamField> LdaModel::Fields() {
  return {
      IntParam("topics", 32, 1, 1024, "Number of topics K", {"k", "n_topics", "num_topics", "n_components"}),
      FloatParam("alpha", 0.1, 1e-6, 1e3, "Symmetric Dirichlet prior of a user's topic mixture",
                 {"doc_topic_prior"}),
      FloatParam("eta", 0.05, 1e-6, 1e3, "Symmetric Dirichlet prior of a topic's item distribution",
                 {"beta", "topic_word_prior"}),
      IntParam("passes", 30, 1, 100000, "Variational EM passes over all users (E-step + M-step)",
               {"iterations", "iters", "epochs", "max_iter"}),
      IntParam("e_step_iterations", 100, 1, 100000,
               "Cap of inner iterations per user and pass (also used by fold-in)",
               {"max_doc_update_iter", "inner_iterations"}),
      FloatParam("e_step_tol", 1e-3, 0, 1e3,
                 "A user's E-step stops when the mean |change| of its gamma is below this",
                 {"mean_change_tol", "gamma_threshold"}),
      ChoiceParam("counts", "binary", {"binary", "values"},
                  "Word counts: 1 per interaction, or the stored values (ratings / weights; entries "
                  "<= 0 are dropped)"),
      IntParam("burn_in", -1, -1, 100000,
               "Passes whose E-step restarts every user's gamma at alpha + n / topics (explores; later passes "
               "warm-start gamma: faster, but a user then rarely changes topics); -1 = every pass",
               {"restart_passes"}),
      BoolParam("report_bound", true,
                "Evaluate the evidence lower bound every pass for the training callback (~10% of a pass)"),
      ChoiceParam("init", "seeded", {"seeded", "random"},
                  "Initial topics: Gamma(100, 1/100) noise plus one k-means++-chosen seed user per topic, or "
                  "the noise alone (scikit-learn's and gensim's start)"),
  };
}

LdaModel::LdaModel(ParamValues params) : FactorModel(std::move(params)) {
  const ParamValues& p = this->params();
  options_.topics = static_cast<std::size_t>(p.Int("topics"));
  options_.alpha = p.Float("alpha");
  options_.eta = p.Float("eta");
  options_.passes = static_cast<int>(p.Int("passes"));
  options_.e_step_iterations = static_cast<int>(p.Int("e_step_iterations"));
  options_.e_step_tol = p.Float("e_step_tol");
  options_.compute_bound = p.Bool("report_bound");
  {
    const long long burn_in = p.Int("burn_in");
    options_.restart_passes = burn_in < 0 ? options_.passes : static_cast<int>(burn_in);
  }
  use_values_ = p.Choice("counts") == "values";
  options_.seed_topics = p.Choice("init") == "seeded";
}

namespace {

// The users x items corpus with binary counts or the positive stored values.
CsrMatrix UserDocuments(const CsrMatrix& user_items, bool use_values) {
  if (!use_values) {
    CsrMatrix docs = user_items;
    std::fill(docs.values.begin(), docs.values.end(), 1.0f);
    return docs;
  }
  CsrMatrix docs;
  docs.n_rows = user_items.n_rows;
  docs.n_cols = user_items.n_cols;
  docs.indptr.assign(docs.n_rows + 1, 0);
  for (std::size_t u = 0; u < docs.n_rows; ++u) {
    for (std::uint64_t e = user_items.indptr[u]; e < user_items.indptr[u + 1]; ++e) {
      const float value = user_items.values[e];
      if (value > 0 && std::isfinite(value)) {
        docs.indices.push_back(user_items.indices[e]);
        docs.values.push_back(value);
      }
    }
    docs.indptr[u + 1] = docs.indices.size();
  }
  return docs;
}

}  // namespace

void LdaModel::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  UseSingleThreadedBlas();
  const CsrMatrix docs = UserDocuments(*data.user_items, use_values_);
  const std::size_t k = options_.topics;
  factors_ = k;
  global_bias_ = 0.0f;
  user_bias_.clear();
  item_bias_.clear();
  auto publish = [&](const topic::TopicWords& words, const std::vector<float>& gamma) {
    user_factors_ = gamma;
    topic::NormaliseRows(user_factors_, k);
    item_factors_.assign(words.n_words() * k, 0.0f);
    words.TopicWordProbabilities(item_factors_.data());
    FactorsChanged();
  };
  std::function<void(const topic::VbPassReport&, const topic::TopicWords&, const std::vector<float>&)> on_pass;
  if (callback) {
    on_pass = [&](const topic::VbPassReport& pass, const topic::TopicWords& words,
                  const std::vector<float>& gamma) {
      publish(words, gamma);
      EpochReport report;
      report.epoch = pass.pass;
      report.epochs = options_.passes;
      report.seconds = pass.seconds;
      if (options_.compute_bound && pass.tokens > 0) {
        report.loss = -pass.bound / pass.tokens;
        report.has_loss = true;
        report.metrics["perplexity_bound"] = std::exp(report.loss);
      }
      report.metrics["inner_iterations"] = pass.mean_inner_iterations;
      callback(*this, report);
    };
  }
  topic::VbResult result = topic::FitVb(docs, options_, ctx.seed, ctx.threads, on_pass);
  publish(result.words, result.gamma);
  words_ = std::move(result.words);
}

bool LdaModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values, float* user_vector,
                      float* user_bias) const {
  *user_bias = 0.0f;
  const std::size_t k = options_.topics;
  if (words_.topics() != k) return false;  // not fitted
  std::vector<std::uint32_t> words;
  std::vector<float> counts;
  words.reserve(items.size());
  counts.reserve(items.size());
  for (std::size_t j = 0; j < items.size(); ++j) {
    const float value = use_values_ ? values[j] : 1.0f;
    if (!(value > 0) || !std::isfinite(value)) continue;
    words.push_back(items[j]);
    counts.push_back(value);
  }
  double total = 0;
  for (float c : counts) total += c;
  std::vector<float> gamma(k, static_cast<float>(options_.alpha + total / static_cast<double>(k)));
  topic::TopicWords::Scratch scratch;
  words_.InferDocument(words, counts, options_.alpha, options_.e_step_iterations, options_.e_step_tol,
                       gamma.data(), scratch, nullptr, nullptr, nullptr);
  double sum = 0;
  for (float g : gamma) sum += g;
  for (std::size_t t = 0; t < k; ++t) user_vector[t] = static_cast<float>(gamma[t] / sum);
  return true;
}

void LdaModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<std::uint64_t>(words_.topics());
  writer.WriteVector(words_.lambda());
}

void LdaModel::LoadExtra(ModelReader& reader) {
  const auto topics = reader.Read<std::uint64_t>();
  std::vector<float> lambda = reader.ReadVector<float>();
  if (topics != options_.topics || topics != factors_ || lambda.size() != n_items() * topics) {
    throw FormatError(fmt::format("{}: lda topic-item matrix has {} values for {} topics and {} items (spec: {} "
                                  "topics)",
                                  reader.source(), lambda.size(), topics, n_items(), options_.topics));
  }
  words_ = topic::TopicWords(std::move(lambda), n_items(), topics, 1);
}

}  // namespace recforge::models
