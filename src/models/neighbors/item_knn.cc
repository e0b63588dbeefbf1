#include "item_knn.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "recforge/models/model_io.h"

namespace recforge::models {

std::vector<ParamField> ItemKnn::Fields() {
  // Defaults tuned on ml-100k under ../shared/PROTOCOL.md (docs/models.md): BM25 weighting
  // of the rating values and 20 neighbours spread from the history items beat plain
  // binary cosine at any K, and the choice held on ml-latest-small.
  std::vector<ParamField> fields = SimilarityFields("bm25", 0, /*default_binary=*/false);
  fields.push_back(
      IntParam("neighbors", 20, 1, 1000000, "Neighbours kept per item (top-K)", {"k", "topk"}));
  fields.push_back(
      ChoiceParam("neighborhood", "history", {"history", "target"},
                  "history: each seen item adds to its K nearest items; target: each candidate "
                  "sums over its own K nearest items that were seen"));
  return fields;
}

ItemKnn::ItemKnn(ParamValues params)
    : Recommender(std::move(params)),
      options_(SimilarityOptionsFrom(this->params())),
      k_(static_cast<std::size_t>(this->params().Int("neighbors"))),
      target_(this->params().Choice("neighborhood") == "target") {}

void ItemKnn::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  auto start = std::chrono::steady_clock::now();
  // item_users rows are the items; user_items is its transpose, so the cosine/jaccard
  // kernel can read both without copying them.
  RowSimilarity similarity(data.item_users, data.user_items.get(), options_);
  neighbors_ = similarity.AllNeighbors(k_, ctx);
  PrepareScoring();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ctx.log().Info("itemknn: {} items, {} neighbour pairs, {:.2f}s", data.n_items, neighbors_.nnz(),
                 seconds);
  if (callback) {
    EpochReport report;
    report.epoch = report.epochs = 1;
    report.seconds = seconds;
    callback(*this, report);
  }
}

void ItemKnn::PrepareScoring() {
  if (target_) {
    transposed_ = neighbors_.Transpose();
  } else {
    transposed_ = CsrMatrix();
  }
}

void ItemKnn::ScoreRow(std::span<const ItemIndex> items, std::span<const float> values,
                       float* out) const {
  std::fill(out, out + n_items(), 0.0f);
  const CsrMatrix& spread = target_ ? transposed_ : neighbors_;
  if (spread.indptr.empty()) return;
  for (std::size_t t = 0; t < items.size(); ++t) {
    const ItemIndex item = items[t];
    if (item >= spread.n_rows) continue;
    // Without one value per item (e.g. an empty span) every item weighs 1.
    const float weight = options_.binary || values.size() != items.size() ? 1.0f : values[t];
    for (std::uint64_t q = spread.indptr[item]; q < spread.indptr[item + 1]; ++q) {
      out[spread.indices[q]] += weight * spread.values[q];
    }
  }
}

void ItemKnn::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const CsrMatrix& history = seen();
  for (std::size_t k = 0; k < users.size(); ++k) {
    float* row = out + k * n_items();
    const UserIndex user = users[k];
    if (user >= n_users() || user >= history.n_rows) {
      std::fill(row, row + n_items(), 0.0f);
      continue;
    }
    ScoreRow(history.RowIndices(user), history.RowValues(user), row);
  }
}

bool ItemKnn::ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                           float* out) const {
  ScoreRow(items, values, out);
  return true;
}

RankedItems ItemKnn::SimilarItems(ItemIndex item, std::size_t k) const {
  RankedItems result;
  if (item >= neighbors_.n_rows) return result;
  auto indices = neighbors_.RowIndices(item);
  auto scores = neighbors_.RowValues(item);
  const std::size_t n = std::min(k, indices.size());
  result.items.assign(indices.begin(), indices.begin() + static_cast<std::ptrdiff_t>(n));
  result.scores.assign(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(n));
  return result;
}

void ItemKnn::SaveState(ModelWriter& writer) const { writer.WriteCsr(neighbors_); }

void ItemKnn::LoadState(ModelReader& reader) {
  CsrMatrix neighbors = reader.ReadCsr();
  const bool indices_ok = std::all_of(neighbors.indices.begin(), neighbors.indices.end(),
                                      [this](std::uint32_t item) { return item < n_items(); });
  if (neighbors.n_rows != n_items() || neighbors.n_cols != n_items() || !indices_ok) {
    throw FormatError(fmt::format("{}: itemknn neighbour lists do not match {} items",
                                  reader.source(), n_items()));
  }
  neighbors_ = std::move(neighbors);
  PrepareScoring();
}

}  // namespace recforge::models
