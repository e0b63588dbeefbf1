#include "nmf.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "block_scheduler.h"
#include "kernels.h"
#include "linear_solvers.h"
#include "mf.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

// One multiplicative half-step: updates every row of `rows` (n_rows x k) from its
// ratings in `matrix` (row -> other side) with `other` (the other side's factors)
// fixed. `numerator` and `denominator` are per-thread scratch of k doubles.
void UpdateSide(const CsrMatrix& matrix, const float* other, float* rows, std::size_t k, double reg,
                int threads) {
  ParallelFor<std::size_t>(
      0, matrix.n_rows, threads,
      [&](std::size_t row) {
        const auto indices = matrix.RowIndices(row);
        if (indices.empty()) return;  // no data: keep the initial factors
        const auto values = matrix.RowValues(row);
        float* factors = rows + row * k;
        // k is small (tens); stack scratch avoids any allocation per row.
        constexpr std::size_t kMaxStack = 512;
        double numerator_stack[kMaxStack], denominator_stack[kMaxStack];
        std::vector<double> numerator_heap, denominator_heap;
        double* numerator = numerator_stack;
        double* denominator = denominator_stack;
        if (k > kMaxStack) {
          numerator_heap.resize(k);
          denominator_heap.resize(k);
          numerator = numerator_heap.data();
          denominator = denominator_heap.data();
        }
        std::fill_n(numerator, k, 0.0);
        std::fill_n(denominator, k, 0.0);
        for (std::size_t e = 0; e < indices.size(); ++e) {
          const float* q = other + static_cast<std::size_t>(indices[e]) * k;
          const double estimate = kernels::Dot(factors, q, k);
          for (std::size_t f = 0; f < k; ++f) {
            numerator[f] += q[f] * static_cast<double>(values[e]);
            denominator[f] += q[f] * estimate;
          }
        }
        const double penalty = reg * static_cast<double>(indices.size());
        for (std::size_t f = 0; f < k; ++f) {
          double bottom = denominator[f] + penalty * factors[f];
          // 0/0 (a factor already at zero, or all ratings 0) stays put.
          if (bottom > 0) factors[f] = static_cast<float>(factors[f] * numerator[f] / bottom);
        }
      },
      Schedule::kDynamic, 64);
}

// One coordinate-descent half-step (Hsieh & Dhillon 2011, restricted to the
// observed ratings): for each row, each factor in turn is set to the exact minimiser
// of the row's regularised squared error, clipped at 0, with the residuals kept up
// to date, so the objective never increases.
void UpdateSideCd(const CsrMatrix& matrix, const float* other, float* rows, std::size_t k,
                  double reg, int threads) {
  ParallelFor<std::size_t>(
      0, matrix.n_rows, threads,
      [&](std::size_t row) {
        const auto indices = matrix.RowIndices(row);
        if (indices.empty()) return;
        const auto values = matrix.RowValues(row);
        float* factors = rows + row * k;
        thread_local std::vector<double> residual;  // per-thread scratch, grows once
        residual.resize(indices.size());
        for (std::size_t e = 0; e < indices.size(); ++e) {
          residual[e] = values[e] -
                        kernels::Dot(factors, other + static_cast<std::size_t>(indices[e]) * k, k);
        }
        const double penalty = reg * static_cast<double>(indices.size());
        for (std::size_t f = 0; f < k; ++f) {
          const double old_value = factors[f];
          double numerator = 0, denominator = penalty;
          for (std::size_t e = 0; e < indices.size(); ++e) {
            const double q = other[static_cast<std::size_t>(indices[e]) * k + f];
            numerator += (residual[e] + old_value * q) * q;
            denominator += q * q;
          }
          const double new_value = denominator > 0 ? std::max(0.0, numerator / denominator) : 0.0;
          const double delta = new_value - old_value;
          if (delta == 0) continue;
          for (std::size_t e = 0; e < indices.size(); ++e) {
            residual[e] -= delta * other[static_cast<std::size_t>(indices[e]) * k + f];
          }
          factors[f] = static_cast<float>(new_value);
        }
      },
      Schedule::kDynamic, 64);
}

}  // namespace

std::vector<ParamField> NmfModel::Fields() {
  return {
      IntParam("factors", 30, 1, 1024, "Latent dimensions", {"k", "dim"}),
      IntParam("epochs", 50, 1, 100000, "Passes (all users, then all items)",
               {"iterations", "iters"}),
      FloatParam("reg_user", 0.12, 0, 100, "L2 regularisation of user factors, per rating"),
      FloatParam("reg_item", 0.12, 0, 100, "L2 regularisation of item factors, per rating"),
      ChoiceParam("solver", "cd", {"cd", "mu"},
                  "Per-epoch update: cd (coordinate descent, exact per factor) or mu "
                  "(multiplicative updates)"),
  };
}

void NmfModel::FitImpl(const TrainingData& data, const Context& ctx,
                       const TrainCallback& callback) {
  const auto& p = params();
  factors_ = static_cast<std::size_t>(p.Int("factors"));
  const std::size_t k = factors_;
  const int epochs = static_cast<int>(p.Int("epochs"));
  const double reg_user = p.Float("reg_user");
  const double reg_item = p.Float("reg_item");
  const bool coordinate_descent = p.Choice("solver") == "cd";
  const CsrMatrix& ratings = *data.user_items;
  // Each half-step is one parallel loop; on small data its barrier costs more than the
  // loop (see SgdThreads), and the result does not depend on the thread count.
  const int threads = SgdThreads(ctx.threads, ratings.nnz(), 1, 100000);

  double sum = 0;
  min_rating_ = ratings.nnz() == 0 ? 0.0f : ratings.values[0];
  max_rating_ = min_rating_;
  for (float value : ratings.values) {
    if (value < 0) {
      throw InvalidArgument("nmf: ratings must be non-negative (found " + std::to_string(value) +
                            ")");
    }
    sum += value;
    min_rating_ = std::min(min_rating_, value);
    max_rating_ = std::max(max_rating_, value);
  }
  const double mean = ratings.nnz() == 0 ? 1.0 : sum / static_cast<double>(ratings.nnz());
  mean_rating_ = static_cast<float>(mean);
  UseSingleThreadedBlas();
  InitFromUsers(*data.user_items, mean, coordinate_descent, ctx.seed);
  ZeroRowsWithoutData(user_factors_, k, *data.user_items);
  ZeroRowsWithoutData(item_factors_, k, data.item_users);
  user_bias_.clear();
  item_bias_.clear();
  global_bias_ = 0.0f;

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    if (coordinate_descent) {
      UpdateSideCd(ratings, item_factors_.data(), user_factors_.data(), k, reg_user, threads);
      UpdateSideCd(data.item_users, user_factors_.data(), item_factors_.data(), k, reg_item,
                   threads);
    } else {
      UpdateSide(ratings, item_factors_.data(), user_factors_.data(), k, reg_user, threads);
      UpdateSide(data.item_users, user_factors_.data(), item_factors_.data(), k, reg_item, threads);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    FactorsChanged();
    if (callback || ctx.log().Enabled(LogLevel::kDebug)) {
      RatingErrors errors = TrainingErrors(*this, ratings, threads);
      ctx.log().Debug("nmf epoch {}/{}: train rmse {:.4f}, {:.3f} s", epoch, epochs, errors.rmse,
                      seconds);
      if (callback) {
        EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, errors.rmse);
        report.metrics["train_rmse"] = errors.rmse;
        report.metrics["train_mae"] = errors.mae;
        callback(*this, report);
      }
    }
  }
}

void NmfModel::InitFromUsers(const CsrMatrix& ratings, double mean, bool coordinate_descent,
                             std::uint64_t seed) {
  // "Random Acol" (Langville et al. 2006): item factor f starts as the mean rating row
  // of kAcolUsers random users (scaled by 1 / sqrt(mean), so p . q starts near the
  // ratings once users are solved). A dense random start would let every factor mix
  // every group of users, and as unobserved pairs exert no pull the factorisation would
  // never separate the groups (it then ranks by popularity).
  constexpr int kAcolUsers = 2;
  const std::size_t k = factors_;
  std::vector<UserIndex> with_data;
  for (std::size_t user = 0; user < ratings.n_rows; ++user) {
    if (ratings.RowLength(user) > 0) with_data.push_back(static_cast<UserIndex>(user));
  }
  item_factors_.assign(ratings.n_cols * k, 0.0f);
  Rng rng(DeriveSeed(seed, 2));
  const double scale = 1.0 / (kAcolUsers * std::sqrt(std::max(mean, 1e-6)));
  for (std::size_t f = 0; f < k && !with_data.empty(); ++f) {
    for (int draw = 0; draw < kAcolUsers; ++draw) {
      const UserIndex user = with_data[rng.Below(with_data.size())];
      const auto items = ratings.RowIndices(user);
      const auto values = ratings.RowValues(user);
      for (std::size_t e = 0; e < items.size(); ++e) {
        item_factors_[static_cast<std::size_t>(items[e]) * k + f] +=
            static_cast<float>(values[e] * scale);
      }
    }
  }
  // Users are solved first, from the items. Coordinate descent starts them at zero;
  // multiplicative updates never move a zero, so they get positive starts instead
  // (users at sqrt(mean / k), item factors floored at a small positive value).
  const float user_start =
      coordinate_descent ? 0.0f : static_cast<float>(std::sqrt(std::max(mean, 1e-6) / k));
  user_factors_.assign(ratings.n_rows * k, user_start);
  if (!coordinate_descent) {
    for (float& value : item_factors_) value = std::max(value, 1e-3f);
  }
}

bool NmfModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                      float* user_vector, float* user_bias) const {
  // min 1/2 x^T A x - b^T x over x >= 0, with A = Q^T Q + reg_user n I and b = Q^T r.
  const std::size_t k = factors_;
  *user_bias = 0.0f;
  std::fill_n(user_vector, k, 0.0f);
  if (items.empty()) return true;
  std::vector<double> gram(k * k, 0.0), rhs(k, 0.0);
  for (std::size_t h = 0; h < items.size(); ++h) {
    const float* q = ItemVector(items[h]);
    for (std::size_t r = 0; r < k; ++r) {
      rhs[r] += static_cast<double>(q[r]) * values[h];
      for (std::size_t c = 0; c < k; ++c) gram[r * k + c] += static_cast<double>(q[r]) * q[c];
    }
  }
  const double penalty = params().Float("reg_user") * static_cast<double>(items.size());
  std::vector<float> a(k * k), b(k);
  for (std::size_t r = 0; r < k; ++r) {
    for (std::size_t c = 0; c < k; ++c) {
      a[r * k + c] = static_cast<float>(gram[r * k + c] + (r == c ? penalty : 0.0));
    }
    b[r] = static_cast<float>(rhs[r]);
  }
  linalg::SolverScratch scratch;
  scratch.Reserve(k, 0);
  linalg::SolveNnls(a.data(), b.data(), k, user_vector, scratch, 500, 1e-7f);
  return true;
}

void NmfModel::PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                            float* out) const {
  const std::size_t k = factors_;
  for (std::size_t n = 0; n < users.size(); ++n) {
    // Unknown users and items, and those without training data (zero rows), get the
    // training mean: a zero vector would predict 0, the worst possible rating.
    float prediction = mean_rating_;
    if (users[n] < n_users() && items[n] < n_items()) {
      const float* user = UserVector(users[n]);
      const float* item = ItemVector(items[n]);
      if (kernels::SquaredNorm(user, k) > 0 && kernels::SquaredNorm(item, k) > 0) {
        prediction = kernels::Dot(user, item, k);
      }
    }
    out[n] = std::clamp(prediction, min_rating_, max_rating_);
  }
}

void NmfModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<float>(min_rating_);
  writer.Write<float>(max_rating_);
  writer.Write<float>(mean_rating_);
}

void NmfModel::LoadExtra(ModelReader& reader) {
  min_rating_ = reader.Read<float>();
  max_rating_ = reader.Read<float>();
  mean_rating_ = reader.Read<float>();
}

}  // namespace recforge::models
