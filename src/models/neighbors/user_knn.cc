#include "user_knn.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "recforge/models/model_io.h"

namespace recforge::models {

std::vector<ParamField> UserKnn::Fields() {
  std::vector<ParamField> fields = SimilarityFields("cosine", 0, /*default_binary=*/true);
  fields.push_back(
      IntParam("neighbors", 50, 1, 1000000, "Neighbours kept per user (top-K)", {"k", "topk"}));
  return fields;
}

UserKnn::UserKnn(ParamValues params)
    : Recommender(std::move(params)),
      options_(SimilarityOptionsFrom(this->params())),
      k_(static_cast<std::size_t>(this->params().Int("neighbors"))) {}

void UserKnn::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  auto start = std::chrono::steady_clock::now();
  // The index owns its (weighted) copy, so fold-in does not depend on `data` living on.
  index_ = RowSimilarity(seen(), nullptr, options_);
  neighbors_ = index_.AllNeighbors(k_, ctx);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ctx.log().Info("userknn: {} users, {} neighbour pairs, {:.2f}s", data.n_users, neighbors_.nnz(),
                 seconds);
  if (callback) {
    EpochReport report;
    report.epoch = report.epochs = 1;
    report.seconds = seconds;
    callback(*this, report);
  }
}

void UserKnn::Vote(std::span<const std::uint32_t> users, std::span<const float> similarities,
                   float* out) const {
  std::fill(out, out + n_items(), 0.0f);
  const CsrMatrix& votes = seen();
  for (std::size_t t = 0; t < users.size(); ++t) {
    const std::uint32_t user = users[t];
    if (user >= votes.n_rows) continue;
    const float similarity = similarities[t];
    auto items = votes.RowIndices(user);
    auto values = votes.RowValues(user);
    for (std::size_t q = 0; q < items.size(); ++q) {
      if (items[q] >= n_items()) continue;
      out[items[q]] += options_.binary ? similarity : similarity * values[q];
    }
  }
}

void UserKnn::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  for (std::size_t k = 0; k < users.size(); ++k) {
    float* row = out + k * n_items();
    const UserIndex user = users[k];
    if (user >= n_users() || user >= neighbors_.n_rows) {
      std::fill(row, row + n_items(), 0.0f);
      continue;
    }
    Vote(neighbors_.RowIndices(user), neighbors_.RowValues(user), row);
  }
}

bool UserKnn::ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values,
                           float* out) const {
  if (index_.empty()) return false;
  thread_local RowSimilarity::Scratch scratch;
  thread_local std::vector<std::uint32_t> users;
  thread_local std::vector<float> similarities;
  index_.Query(items, values, k_, scratch, users, similarities);
  Vote(users, similarities, out);
  return true;
}

void UserKnn::SaveState(ModelWriter& writer) const { writer.WriteCsr(neighbors_); }

void UserKnn::LoadState(ModelReader& reader) {
  CsrMatrix neighbors = reader.ReadCsr();
  const bool indices_ok = std::all_of(neighbors.indices.begin(), neighbors.indices.end(),
                                      [this](std::uint32_t user) { return user < n_users(); });
  if (neighbors.n_rows != n_users() || neighbors.n_cols != n_users() || !indices_ok) {
    throw FormatError(fmt::format("{}: userknn neighbour lists do not match {} users",
                                  reader.source(), n_users()));
  }
  neighbors_ = std::move(neighbors);
  // LoadModel restores seen() before the state; without it fold-in is unavailable.
  if (seen().n_rows == n_users() && seen().n_cols == n_items()) {
    index_ = RowSimilarity(seen(), nullptr, options_);
  } else {
    index_ = RowSimilarity();
  }
}

}  // namespace recforge::models
