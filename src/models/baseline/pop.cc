#include "pop.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "recforge/models/model_io.h"

namespace recforge::models {

std::vector<ParamField> PopModel::Fields() {
  return {FloatParam("half_life_days", 0, 0, 1e6,
                     "Time-decay half-life in days (0 = plain interaction counts)", {"half_life"})};
}

void PopModel::FitImpl(const TrainingData& data, const Context&, const TrainCallback& callback) {
  auto start = std::chrono::steady_clock::now();
  popularity_.assign(data.n_items, 0.0f);
  const double half_life_days = params().Float("half_life_days");
  if (half_life_days <= 0 || data.train == nullptr) {
    for (std::size_t item = 0; item < data.n_items; ++item) {
      popularity_[item] = static_cast<float>(data.item_users.RowLength(item));
    }
  } else {
    const auto& train = *data.train;
    Timestamp newest = train.times.empty() ? 0 : *std::max_element(train.times.begin(), train.times.end());
    const double half_life_seconds = half_life_days * 86400.0;
    std::vector<double> sums(data.n_items, 0.0);
    for (std::size_t row = 0; row < train.size(); ++row) {
      double age = static_cast<double>(newest - train.times[row]);
      sums[train.items[row]] += std::exp2(-age / half_life_seconds);
    }
    for (std::size_t item = 0; item < data.n_items; ++item) popularity_[item] = static_cast<float>(sums[item]);
  }
  if (callback) {
    EpochReport report;
    report.epoch = report.epochs = 1;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    callback(*this, report);
  }
}

void PopModel::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  for (std::size_t k = 0; k < users.size(); ++k) {
    std::copy(popularity_.begin(), popularity_.end(), out + k * popularity_.size());
  }
}

bool PopModel::ScoreHistory(std::span<const ItemIndex>, std::span<const float>, float* out) const {
  std::copy(popularity_.begin(), popularity_.end(), out);
  return true;
}

void PopModel::SaveState(ModelWriter& writer) const { writer.WriteVector(popularity_); }

void PopModel::LoadState(ModelReader& reader) {
  popularity_ = reader.ReadVector<float>();
  if (popularity_.size() != n_items()) throw FormatError(reader.source() + ": popularity vector has the wrong size");
}

}  // namespace recforge::models
