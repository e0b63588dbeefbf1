#include "assoc.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "recforge/models/model_io.h"
#include "similarity.h"

namespace recforge::models {

std::vector<ParamField> AssocRules::Fields() {
  return {
      ChoiceParam("metric", "confidence", {"support", "confidence", "lift"}, "Rule strength",
                  {"measure"}),
      IntParam("min_support", 10, 1, 1000000000,
               "Minimum number of users having both items of a rule", {"min_count"}),
      IntParam("rules", 100, 1, 1000000, "Strongest rules kept per antecedent item",
               {"max_rules", "k"}),
      ChoiceParam(
          "aggregate", "max", {"max", "sum"},
          "How the rules from a user's items into one item are combined: strongest, or summed"),
  };
}

AssocRules::AssocRules(ParamValues params)
    : Recommender(std::move(params)), max_aggregate_(this->params().Choice("aggregate") == "max") {}

void AssocRules::FitImpl(const TrainingData& data, const Context& ctx,
                         const TrainCallback& callback) {
  auto start = std::chrono::steady_clock::now();
  std::vector<float> item_count(data.n_items);
  for (std::size_t item = 0; item < data.n_items; ++item) {
    item_count[item] = static_cast<float>(data.item_users.RowLength(item));
  }
  std::size_t baskets = 0;
  for (std::size_t user = 0; user < data.user_items->n_rows; ++user)
    baskets += data.user_items->RowLength(user) > 0;
  PairScorer scorer;
  const std::string& metric = params().Choice("metric");
  scorer.measure = metric == "support"      ? PairMeasure::kSupport
                   : metric == "confidence" ? PairMeasure::kConfidence
                                            : PairMeasure::kLift;
  scorer.min_dot = static_cast<double>(params().Int("min_support"));
  const double n_baskets = static_cast<double>(std::max<std::size_t>(baskets, 1));
  scorer.scale = scorer.measure == PairMeasure::kSupport ? 1.0 / n_baskets : n_baskets;
  // Baskets are sets: every stored interaction counts once, whatever its rating.
  rules_ = TopKPairs(data.item_users, *data.user_items, item_count, /*unit_weights=*/true, scorer,
                     static_cast<std::size_t>(params().Int("rules")), ctx);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ctx.log().Info("assoc: {} items, {} rules, {:.2f}s", data.n_items, rules_.nnz(), seconds);
  if (callback) {
    EpochReport report;
    report.epoch = report.epochs = 1;
    report.seconds = seconds;
    callback(*this, report);
  }
}

void AssocRules::ScoreRow(std::span<const ItemIndex> items, float* out) const {
  std::fill(out, out + n_items(), 0.0f);
  if (rules_.indptr.empty()) return;
  for (ItemIndex item : items) {
    if (item >= rules_.n_rows) continue;
    for (std::uint64_t q = rules_.indptr[item]; q < rules_.indptr[item + 1]; ++q) {
      float& score = out[rules_.indices[q]];
      score = max_aggregate_ ? std::max(score, rules_.values[q]) : score + rules_.values[q];
    }
  }
}

void AssocRules::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const CsrMatrix& history = seen();
  for (std::size_t k = 0; k < users.size(); ++k) {
    float* row = out + k * n_items();
    const UserIndex user = users[k];
    if (user >= n_users() || user >= history.n_rows) {
      std::fill(row, row + n_items(), 0.0f);
      continue;
    }
    ScoreRow(history.RowIndices(user), row);
  }
}

bool AssocRules::ScoreHistory(std::span<const ItemIndex> items, std::span<const float>,
                              float* out) const {
  ScoreRow(items, out);
  return true;
}

RankedItems AssocRules::SimilarItems(ItemIndex item, std::size_t k) const {
  RankedItems result;
  if (item >= rules_.n_rows) return result;
  auto indices = rules_.RowIndices(item);
  auto scores = rules_.RowValues(item);
  const std::size_t n = std::min(k, indices.size());
  result.items.assign(indices.begin(), indices.begin() + static_cast<std::ptrdiff_t>(n));
  result.scores.assign(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(n));
  return result;
}

void AssocRules::SaveState(ModelWriter& writer) const { writer.WriteCsr(rules_); }

void AssocRules::LoadState(ModelReader& reader) {
  CsrMatrix rules = reader.ReadCsr();
  const bool indices_ok = std::all_of(rules.indices.begin(), rules.indices.end(),
                                      [this](std::uint32_t item) { return item < n_items(); });
  if (rules.n_rows != n_items() || rules.n_cols != n_items() || !indices_ok) {
    throw FormatError(
        fmt::format("{}: assoc rules do not match {} items", reader.source(), n_items()));
  }
  rules_ = std::move(rules);
}

}  // namespace recforge::models
