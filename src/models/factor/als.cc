#include "factor/als.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

constexpr std::size_t kTargetBlocks = 512;

}  // namespace

std::vector<ParamField> AlsModel::Fields() {
  return {
      IntParam("rank", 10, 1, 4096, "Latent dimension k (Spark: rank)", {"factors"}),
      FloatParam("reg_param", 0.1, 0, 1e9,
                 "Regulariser, scaled per row by its number of ratings (ALS-WR)",
                 {"regParam", "reg", "lambda"}),
      IntParam("max_iter", 10, 1, 100000, "ALS iterations (each: items, then users)",
               {"maxIter", "iters", "iterations"}),
      BoolParam("nonnegative", false, "Constrain factors to be >= 0 (NNLS solves)"),
      ChoiceParam(
          "cold_start_strategy", "nan", {"nan", "drop"},
          "Pairs with a user or item unseen in training: NaN kept in RMSE (nan) or left out (drop)",
          {"coldStartStrategy"}),
      BoolParam("implicit_prefs", false, "Spark's implicit-feedback objective (c = 1 + alpha |r|)",
                {"implicitPrefs"}),
      FloatParam("alpha", 1.0, 0, 1e9, "Confidence slope when implicit_prefs=true"),
  };
}

AlsModel::AlsModel(ParamValues params) : FactorModel(std::move(params)) {
  const ParamValues& p = this->params();
  k_ = static_cast<std::size_t>(p.Int("rank"));
  reg_ = static_cast<float>(p.Float("reg_param"));
  iters_ = static_cast<int>(p.Int("max_iter"));
  nonnegative_ = p.Bool("nonnegative");
  implicit_prefs_ = p.Bool("implicit_prefs");
  confidence_.alpha = static_cast<float>(p.Float("alpha"));
}

std::size_t AlsModel::RegCount(std::span<const float> values) const {
  if (!implicit_prefs_) return values.size();
  std::size_t positive = 0;
  for (float value : values) positive += value > 0 ? 1 : 0;  // Spark's numExplicits
  return positive;
}

double AlsModel::HalfStep(const CsrMatrix& rows, const std::vector<float>& fixed,
                          std::size_t n_fixed, std::vector<float>& solved,
                          const linalg::RowBlocks& blocks, bool want_loss, double* squared_error,
                          int threads) {
  const std::size_t k = k_;
  if (implicit_prefs_) {
    linalg::ComputeGramian(fixed.data(), n_fixed, k, threads, gram_.data());
  }
  std::vector<double> row_loss(want_loss ? rows.n_rows : 0, 0.0);
  std::vector<double> row_error(want_loss ? rows.n_rows : 0, 0.0);
  linalg::ForEachRowBlock(blocks, threads, [&](int thread, std::size_t first, std::size_t end) {
    linalg::SolverScratch& scratch = thread_scratch_[static_cast<std::size_t>(thread)];
    for (std::size_t row = first; row < end; ++row) {
      float* x = solved.data() + row * k;
      const auto indices = rows.RowIndices(row);
      const auto values = rows.RowValues(row);
      const float reg = reg_ * static_cast<float>(RegCount(values));
      if (indices.empty()) {
        std::fill(x, x + k, 0.0f);
        continue;
      }
      if (!implicit_prefs_) {
        linalg::SolveExplicit(fixed.data(), k, indices, values, reg, nonnegative_, x, scratch);
        if (want_loss) {
          kernels::GatherDot(fixed.data(), k, indices.data(), indices.size(), x,
                             scratch.dots.data());
          double error = 0;
          for (std::size_t j = 0; j < indices.size(); ++j) {
            const double residual = double{values[j]} - scratch.dots[j];
            error += residual * residual;
          }
          row_error[row] = error;
          row_loss[row] = error + double{reg} * kernels::SquaredNorm(x, k);
        }
      } else {
        confidence_.Fill(values, scratch.weights.data(), scratch.targets.data());
        linalg::ImplicitRowSystem system{.gram = gram_.data(),
                                         .reg = reg,
                                         .factors = fixed.data(),
                                         .k = k,
                                         .indices = indices,
                                         .weights = scratch.weights.data(),
                                         .targets = scratch.targets.data()};
        linalg::SolveImplicitExact(system, nonnegative_, x, scratch);
        if (want_loss) {
          row_loss[row] = linalg::ImplicitRowLoss(gram_.data(), reg, fixed.data(), k, indices,
                                                  values, confidence_, x, scratch);
        }
      }
    }
  });
  double loss = 0;
  double error = 0;
  for (std::size_t row = 0; row < row_loss.size(); ++row) {
    loss += row_loss[row];
    error += row_error[row];
  }
  if (squared_error != nullptr) *squared_error = error;
  return loss;
}

void AlsModel::FitImpl(const TrainingData& data, const Context& ctx,
                       const TrainCallback& callback) {
  UseSingleThreadedBlas();
  const std::size_t k = k_;
  const int threads = std::max(1, ctx.threads);
  factors_ = k;
  global_bias_ = 0.0f;
  user_bias_.clear();
  item_bias_.clear();
  RandomUnitRows(user_factors_, data.n_users, k, ctx.seed, 0, nonnegative_, threads);
  RandomUnitRows(item_factors_, data.n_items, k, ctx.seed, 1, nonnegative_, threads);
  user_known_.assign(data.n_users, 0);
  item_known_.assign(data.n_items, 0);
  for (std::size_t user = 0; user < data.n_users; ++user) {
    user_known_[user] = data.user_items->RowLength(user) > 0;
  }
  for (std::size_t item = 0; item < data.n_items; ++item) {
    item_known_[item] = data.item_users.RowLength(item) > 0;
  }

  // Cost of a row in units of k^2: k / 3 for the Cholesky, one per rating for the syrk.
  const linalg::RowBlocks user_blocks(*data.user_items, static_cast<double>(k) / 3.0, 1.0,
                                      kTargetBlocks);
  const linalg::RowBlocks item_blocks(data.item_users, static_cast<double>(k) / 3.0, 1.0,
                                      kTargetBlocks);
  thread_scratch_.assign(static_cast<std::size_t>(threads), {});
  for (auto& scratch : thread_scratch_) {
    scratch.Reserve(k, std::max(user_blocks.max_row_length(), item_blocks.max_row_length()));
  }
  gram_.assign(k * k, 0.0f);
  const double n_ratings = static_cast<double>(data.user_items->nnz());

  for (int iter = 1; iter <= iters_; ++iter) {
    const auto start = std::chrono::steady_clock::now();
    const bool want_loss = static_cast<bool>(callback);
    HalfStep(data.item_users, user_factors_, data.n_users, item_factors_, item_blocks, false,
             nullptr, threads);
    double squared_error = 0;
    double loss = HalfStep(*data.user_items, item_factors_, data.n_items, user_factors_, user_blocks,
                           want_loss, &squared_error, threads);
    if (implicit_prefs_) item_gram_ = gram_;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!want_loss) {
      ctx.log().Debug("als: iteration {}/{} ({:.3f} s)", iter, iters_, seconds);
      continue;
    }
    for (std::size_t item = 0; item < data.n_items; ++item) {
      const float reg = reg_ * static_cast<float>(RegCount(data.item_users.RowValues(item)));
      loss += double{reg} * kernels::SquaredNorm(item_factors_.data() + item * k, k);
    }
    FactorsChanged();
    EpochReport report;
    report.epoch = iter;
    report.epochs = iters_;
    report.seconds = seconds;
    report.has_loss = true;
    if (implicit_prefs_) {
      report.loss = loss / std::max(1.0, static_cast<double>(data.n_users) *
                                             static_cast<double>(data.n_items));
    } else {
      report.loss = loss / std::max(1.0, n_ratings);
      report.metrics["train_rmse"] = std::sqrt(squared_error / std::max(1.0, n_ratings));
    }
    ctx.log().Debug("als: iteration {}/{}: loss {:.6g} ({:.3f} s)", iter, iters_, report.loss,
                    seconds);
    callback(*this, report);
  }
  thread_scratch_.clear();
  thread_scratch_.shrink_to_fit();
  FactorsChanged();
}

void AlsModel::PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                            float* out) const {
  const std::size_t k = factors_;
  for (std::size_t pair = 0; pair < users.size(); ++pair) {
    const UserIndex user = users[pair];
    const ItemIndex item = items[pair];
    const bool known = user < user_known_.size() && user_known_[user] != 0 &&
                       item < item_known_.size() && item_known_[item] != 0;
    out[pair] = known ? kernels::Dot(UserVector(user), ItemVector(item), k)
                      : std::numeric_limits<float>::quiet_NaN();
  }
}

bool AlsModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                      float* user_vector, float* user_bias) const {
  const std::size_t k = factors_;
  *user_bias = 0.0f;
  std::fill(user_vector, user_vector + k, 0.0f);
  if (items.empty() || k == 0) return true;
  linalg::SolverScratch scratch;
  scratch.Reserve(k, items.size());
  const float reg = reg_ * static_cast<float>(RegCount(values));
  if (!implicit_prefs_) {
    linalg::SolveExplicit(item_factors_.data(), k, items, values, reg, nonnegative_, user_vector,
                          scratch);
    return true;
  }
  confidence_.Fill(values, scratch.weights.data(), scratch.targets.data());
  linalg::ImplicitRowSystem system{.gram = item_gram_.data(),
                                   .reg = reg,
                                   .factors = item_factors_.data(),
                                   .k = k,
                                   .indices = items,
                                   .weights = scratch.weights.data(),
                                   .targets = scratch.targets.data()};
  linalg::SolveImplicitExact(system, nonnegative_, user_vector, scratch);
  return true;
}

void AlsModel::SaveExtra(ModelWriter& writer) const {
  writer.WriteVector(user_known_);
  writer.WriteVector(item_known_);
}

void AlsModel::LoadExtra(ModelReader& reader) {
  user_known_ = reader.ReadVector<std::uint8_t>();
  item_known_ = reader.ReadVector<std::uint8_t>();
  if (user_known_.size() != n_users() || item_known_.size() != n_items()) {
    throw FormatError(reader.source() +
                      ": als model: known-user / known-item flags have the wrong size");
  }
  item_gram_.assign(factors_ * factors_, 0.0f);
  if (implicit_prefs_) {
    linalg::ComputeGramian(item_factors_.data(), n_items(), factors_, 1, item_gram_.data());
  }
}

}  // namespace recforge::models
