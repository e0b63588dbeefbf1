#include "random_model.h"

#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {

std::vector<ParamField> RandomModel::Fields() { return {}; }

void RandomModel::FitImpl(const TrainingData&, const Context& ctx, const TrainCallback& callback) {
  seed_ = ctx.seed;
  if (callback) {
    EpochReport report;
    report.epoch = report.epochs = 1;
    callback(*this, report);
  }
}

void RandomModel::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const std::size_t n = n_items();
  for (std::size_t k = 0; k < users.size(); ++k) {
    std::uint64_t user_seed = DeriveSeed(seed_, users[k]);
    for (std::size_t item = 0; item < n; ++item) {
      out[k * n + item] = static_cast<float>(Mix64(user_seed + item) >> 40) * 0x1.0p-24f;
    }
  }
}

bool RandomModel::ScoreHistory(std::span<const ItemIndex> items, std::span<const float>, float* out) const {
  std::uint64_t history_seed = seed_;
  for (ItemIndex item : items) history_seed = Mix64(history_seed ^ item);
  for (std::size_t item = 0; item < n_items(); ++item) {
    out[item] = static_cast<float>(Mix64(history_seed + item) >> 40) * 0x1.0p-24f;
  }
  return true;
}

void RandomModel::SaveState(ModelWriter& writer) const { writer.Write<std::uint64_t>(seed_); }
void RandomModel::LoadState(ModelReader& reader) { seed_ = reader.Read<std::uint64_t>(); }

}  // namespace recforge::models
