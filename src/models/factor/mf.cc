#include "mf.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "block_scheduler.h"
#include "kernels.h"
#include "linear_solvers.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {

// ---------------------------------------------------------------- helpers

void ZeroRowsWithoutData(std::vector<float>& factors, std::size_t k, const CsrMatrix& matrix) {
  for (std::size_t row = 0; row < matrix.n_rows; ++row) {
    if (matrix.RowLength(row) == 0) std::fill_n(factors.data() + row * k, k, 0.0f);
  }
}

RatingErrors TrainingErrors(const Recommender& model, const CsrMatrix& ratings, int threads) {
  constexpr std::size_t kChunkUsers = 256;
  const std::size_t chunks = (ratings.n_rows + kChunkUsers - 1) / kChunkUsers;
  std::vector<double> squared(chunks, 0.0), absolute(chunks, 0.0);
  ParallelFor<std::size_t>(
      0, chunks, threads,
      [&](std::size_t chunk) {
        std::vector<UserIndex> users;
        std::vector<float> predictions;
        const std::size_t end = std::min(ratings.n_rows, (chunk + 1) * kChunkUsers);
        for (std::size_t user = chunk * kChunkUsers; user < end; ++user) {
          auto items = ratings.RowIndices(user);
          auto values = ratings.RowValues(user);
          users.assign(items.size(), static_cast<UserIndex>(user));
          predictions.resize(items.size());
          model.PredictPairs(users, items, predictions.data());
          for (std::size_t k = 0; k < items.size(); ++k) {
            double error = static_cast<double>(values[k]) - predictions[k];
            squared[chunk] += error * error;
            absolute[chunk] += std::abs(error);
          }
        }
      },
      Schedule::kDynamic, 1);
  RatingErrors errors;
  errors.count = ratings.nnz();
  if (errors.count == 0) return errors;
  double squared_sum = 0, absolute_sum = 0;
  for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
    squared_sum += squared[chunk];
    absolute_sum += absolute[chunk];
  }
  errors.rmse = std::sqrt(squared_sum / static_cast<double>(errors.count));
  errors.mae = absolute_sum / static_cast<double>(errors.count);
  return errors;
}

// ---------------------------------------------------------------- MfModel

std::vector<ParamField> MfModel::Fields() {
  return {
      IntParam("factors", 64, 1, 4096, "Latent dimensions", {"k", "dim"}),
      IntParam("epochs", 100, 1, 100000, "Passes over the training ratings",
               {"iterations", "iters"}),
      FloatParam("lr", 0.01, 1e-6, 10, "Initial SGD learning rate", {"learning_rate"}),
      FloatParam("lr_decay", 0.98, 0.1, 1,
                 "Learning-rate factor per epoch (lr = lr0 * lr_decay^(epoch-1))"),
      FloatParam("reg", 0.09, 0, 100, "L2 regularisation of the factors, per rating",
                 {"regularization"}),
      FloatParam("bias_reg", 0.01, 0, 100,
                 "L2 regularisation of the user and item biases, per rating"),
      FloatParam("init_std", 0.01, 0, 10,
                 "Scale of the initial factors (like a normal's standard deviation)"),
      BoolParam("implicit", true,
                "SVD++ implicit-feedback term (Koren 2008): the user vector is p_u + |N(u)|^-1/2 "
                "sum_j y_j over the user's training items N(u); false: plain biased MF"),
      FloatParam("implicit_lr", 0.1, 0, 10,
                 "Learning-rate factor of the implicit item vectors y (their rate is "
                 "implicit_lr * lr; y is updated once per epoch)"),
      FloatParam("implicit_reg", 0.15, 0, 100,
                 "L2 regularisation of the implicit item vectors y, per rating"),
      BoolParam("biased", true,
                "Learn the global mean and user / item biases (false: plain r = p . q, Funk's "
                "original model)"),
      IntParam("bins", 0, 0, 1024,
               "Block grid size per side (0 = auto: 8 up to 4 threads, 2 * threads above); "
               "the model depends on it, not on the thread count"),
  };
}

void MfModel::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  const auto& p = params();
  factors_ = static_cast<std::size_t>(p.Int("factors"));
  const int epochs = static_cast<int>(p.Int("epochs"));
  const float lr0 = static_cast<float>(p.Float("lr"));
  const double lr_decay = p.Float("lr_decay");
  const float reg = static_cast<float>(p.Float("reg"));
  const float bias_reg = static_cast<float>(p.Float("bias_reg"));
  const int threads = std::max(1, ctx.threads);
  constexpr int kColSplits = 4;
  int bins = static_cast<int>(p.Int("bins"));
  if (bins == 0) bins = AutoBins(threads, data.n_users, data.n_items, kColSplits);

  const CsrMatrix& ratings = *data.user_items;
  double sum = 0;
  min_rating_ = ratings.nnz() == 0 ? 0.0f : ratings.values[0];
  max_rating_ = min_rating_;
  for (float value : ratings.values) {
    sum += value;
    min_rating_ = std::min(min_rating_, value);
    max_rating_ = std::max(max_rating_, value);
  }
  const bool biased = p.Bool("biased");
  global_bias_ = ratings.nnz() == 0 || !biased
                     ? 0.0f
                     : static_cast<float>(sum / static_cast<double>(ratings.nnz()));
  UseSingleThreadedBlas();
  const float init_length =
      static_cast<float>(p.Float("init_std") * std::sqrt(static_cast<double>(factors_)));
  RandomUnitRows(user_factors_, data.n_users, factors_, ctx.seed, 1, /*absolute=*/false, threads);
  RandomUnitRows(item_factors_, data.n_items, factors_, ctx.seed, 2, /*absolute=*/false, threads);
  kernels::Scale(init_length, user_factors_.data(), user_factors_.size());
  kernels::Scale(init_length, item_factors_.data(), item_factors_.size());
  ZeroRowsWithoutData(user_factors_, factors_, *data.user_items);
  ZeroRowsWithoutData(item_factors_, factors_, data.item_users);
  user_bias_.assign(biased ? data.n_users : 0, 0.0f);
  item_bias_.assign(biased ? data.n_items : 0, 0.0f);

  // SVD++ implicit term: z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j. The SGD pass uses the
  // effective user vector p_u + z_u and accumulates the gradient of z_u per user
  // (g_u = sum e q_i, in the user's row bin: no conflicts); the item vectors y are then
  // updated once per epoch in parallel over items (each one a sum in CSR order, so
  // the result does not depend on the thread count), and z is recomputed. The
  // factor model's user rows hold p_u + z_u after every epoch, so scoring, saving and
  // evaluation see the effective vectors.
  const bool implicit = p.Bool("implicit");
  const float implicit_lr = static_cast<float>(p.Float("implicit_lr"));
  const float implicit_reg = static_cast<float>(p.Float("implicit_reg"));
  const std::size_t k = factors_;
  std::vector<float> base_user;         // p (the factor rows hold p + z)
  std::vector<float> implicit_sum;      // z, n_users x k
  std::vector<float> implicit_grad;     // g, n_users x k
  std::vector<float> implicit_items;    // y, n_items x k
  std::vector<float> inv_sqrt_count;    // |N(u)|^-1/2 (0 without ratings)
  if (implicit) {
    base_user = user_factors_;
    implicit_sum.assign(user_factors_.size(), 0.0f);
    implicit_grad.assign(user_factors_.size(), 0.0f);
    implicit_items.assign(item_factors_.size(), 0.0f);
    inv_sqrt_count.assign(data.n_users, 0.0f);
    for (std::size_t user = 0; user < data.n_users; ++user) {
      const std::size_t n = ratings.RowLength(user);
      if (n > 0) inv_sqrt_count[user] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
    }
  }
  float* const sgd_users = implicit ? base_user.data() : user_factors_.data();

  BlockGrid grid = BlockGrid::Build(ratings, bins, kColSplits, DeriveSeed(ctx.seed, 3),
                                    /*keep_values=*/true, threads);
  const BlockScheduler scheduler(grid.bins(), kColSplits, DeriveSeed(ctx.seed, 4));
  const int sgd_threads = SgdThreads(threads, grid.nnz(), grid.bins());
  const std::uint64_t block_seed = DeriveSeed(ctx.seed, 5);
  // Squared errors seen during the epoch, per block (summed in block order): a
  // non-finite sum means SGD diverged.
  std::vector<double> block_squared_error(scheduler.n_blocks(), 0.0);

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    const float lr = static_cast<float>(lr0 * std::pow(lr_decay, epoch - 1));
    const EpochPlan plan = scheduler.Plan(epoch);
    std::fill(block_squared_error.begin(), block_squared_error.end(), 0.0);
    BlockScheduler::Run(plan, sgd_threads, [&](const GridBlock& block) {
      double& squared_error = block_squared_error[block.id];
      Rng rng(DeriveSeed(block_seed,
                         static_cast<std::uint64_t>(epoch) * scheduler.n_blocks() + block.id));
      // The group's micro-bins in a random order (kColSplits of them: no allocation).
      std::array<std::uint32_t, kColSplits> micro_bins;
      const auto group = plan.GroupMicroBins(block.col_group);
      std::copy(group.begin(), group.end(), micro_bins.begin());
      ShuffleTogether(std::span<std::uint32_t>(micro_bins), std::span<int>(), rng);
      for (std::uint32_t micro : micro_bins) {
        auto entries =
            grid.MutableMicroBlock(static_cast<int>(block.row_bin), static_cast<int>(micro));
        auto values =
            grid.MutableMicroValues(static_cast<int>(block.row_bin), static_cast<int>(micro));
        // Each rating once per epoch in a fresh random order (shuffling in place keeps
        // the pass sequential in memory).
        ShuffleTogether(entries, values, rng);
        for (std::size_t e = 0; e < entries.size(); ++e) {
          const UserIndex user = entries[e].user;
          const ItemIndex item = entries[e].item;
          float* user_row = sgd_users + static_cast<std::size_t>(user) * k;
          float* item_row = item_factors_.data() + static_cast<std::size_t>(item) * k;
          float prediction = global_bias_ + kernels::Dot(user_row, item_row, k);
          const float* z = nullptr;
          if (implicit) {
            z = implicit_sum.data() + static_cast<std::size_t>(user) * k;
            prediction += kernels::Dot(z, item_row, k);
          }
          if (biased) prediction += user_bias_[user] + item_bias_[item];
          const float error = values[e] - prediction;
          squared_error += static_cast<double>(error) * error;
          if (biased) {
            user_bias_[user] += lr * (error - bias_reg * user_bias_[user]);
            item_bias_[item] += lr * (error - bias_reg * item_bias_[item]);
          }
          if (implicit) {
            float* g = implicit_grad.data() + static_cast<std::size_t>(user) * k;
            for (std::size_t f = 0; f < k; ++f) {
              const float pf = user_row[f];
              const float qf = item_row[f];
              g[f] += error * qf;
              user_row[f] += lr * (error * qf - reg * pf);
              item_row[f] += lr * (error * (pf + z[f]) - reg * qf);
            }
          } else {
            kernels::SgdPairStep(user_row, item_row, k, error, lr, reg, reg);
          }
        }
      }
    });
    if (implicit) {
      // y_j += lr_y (sum_{u in N(j)} |N(u)|^-1/2 g_u - implicit_reg |N(j)| y_j).
      const float lr_y = lr * implicit_lr;
      ParallelFor<std::size_t>(
          0, data.n_items, sgd_threads,
          [&](std::size_t item) {
            auto users = data.item_users.RowIndices(item);
            if (users.empty()) return;
            std::vector<float> step(k, 0.0f);
            for (UserIndex user : users) {
              kernels::Axpy(inv_sqrt_count[user],
                            implicit_grad.data() + static_cast<std::size_t>(user) * k,
                            step.data(), k);
            }
            float* y = implicit_items.data() + item * k;
            const float decay = implicit_reg * static_cast<float>(users.size());
            for (std::size_t f = 0; f < k; ++f) y[f] += lr_y * (step[f] - decay * y[f]);
          },
          Schedule::kDynamic, 64);
      std::fill(implicit_grad.begin(), implicit_grad.end(), 0.0f);
      ParallelFor<std::size_t>(
          0, data.n_users, sgd_threads,
          [&](std::size_t user) {
            float* z = implicit_sum.data() + user * k;
            std::fill_n(z, k, 0.0f);
            for (ItemIndex item : ratings.RowIndices(user)) {
              kernels::Axpy(1.0f, implicit_items.data() + static_cast<std::size_t>(item) * k, z, k);
            }
            kernels::Scale(inv_sqrt_count[user], z, k);
            const float* base = base_user.data() + user * k;
            float* row = user_factors_.data() + user * k;
            for (std::size_t f = 0; f < k; ++f) row[f] = base[f] + z[f];
          },
          Schedule::kDynamic, 64);
    }
    double running_squared_error = 0;
    for (double block_error : block_squared_error) running_squared_error += block_error;
    if (!std::isfinite(running_squared_error)) {
      throw InvalidArgument(family() + ": training diverged (non-finite factors); lower lr (now " +
                            p.values().at("lr") + ")");
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    FactorsChanged();
    if (callback || ctx.log().Enabled(LogLevel::kDebug)) {
      RatingErrors errors = TrainingErrors(*this, ratings, sgd_threads);
      ctx.log().Debug("mf epoch {}/{}: train rmse {:.4f}, mae {:.4f}, {:.3f} s", epoch, epochs,
                      errors.rmse, errors.mae, seconds);
      if (callback) {
        EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, errors.rmse);
        report.metrics["train_rmse"] = errors.rmse;
        report.metrics["train_mae"] = errors.mae;
        callback(*this, report);
      }
    }
  }
}

bool MfModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                     float* user_vector, float* user_bias) const {
  // Least squares on the augmented vector x = (p, b_u) with features (q_i, 1) and
  // targets r - mu - b_i, regularised like SGD's per-rating penalty (reg * n).
  const std::size_t k = factors_;
  const bool biased = !item_bias_.empty();
  const std::size_t dim = biased ? k + 1 : k;
  std::fill_n(user_vector, k, 0.0f);
  *user_bias = 0.0f;
  if (items.empty()) return true;
  std::vector<float> a(dim * dim, 0.0f), x(dim, 0.0f);
  std::vector<double> gram(dim * dim, 0.0), rhs(dim, 0.0);
  for (std::size_t h = 0; h < items.size(); ++h) {
    const float* q = ItemVector(items[h]);
    const double target =
        static_cast<double>(values[h]) - global_bias_ - (biased ? item_bias_[items[h]] : 0.0f);
    for (std::size_t r = 0; r < dim; ++r) {
      const double feature_r = r < k ? q[r] : 1.0;
      rhs[r] += feature_r * target;
      for (std::size_t c = 0; c <= r; ++c) gram[r * dim + c] += feature_r * (c < k ? q[c] : 1.0);
    }
  }
  const double n = static_cast<double>(items.size());
  const double reg = params().Float("reg") * n;
  const double bias_reg = params().Float("bias_reg") * n;
  for (std::size_t r = 0; r < dim; ++r) {
    for (std::size_t c = 0; c <= r; ++c) {
      double value = gram[r * dim + c] + (r == c ? (r < k ? reg : bias_reg) : 0.0);
      a[r * dim + c] = a[c * dim + r] = static_cast<float>(value);
    }
    x[r] = static_cast<float>(rhs[r]);
  }
  linalg::SolverScratch scratch;
  scratch.Reserve(dim, 0);
  if (!linalg::CholeskySolveInPlace(a.data(), dim, x.data(), scratch)) return true;  // zero vector
  std::copy_n(x.data(), k, user_vector);
  *user_bias = biased ? x[k] : 0.0f;
  return true;
}

void MfModel::PredictPairs(std::span<const UserIndex> users, std::span<const ItemIndex> items,
                           float* out) const {
  FactorModel::PredictPairs(users, items, out);
  for (std::size_t n = 0; n < users.size(); ++n) {
    out[n] = std::clamp(out[n], min_rating_, max_rating_);
  }
}

void MfModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<float>(min_rating_);
  writer.Write<float>(max_rating_);
}

void MfModel::LoadExtra(ModelReader& reader) {
  min_rating_ = reader.Read<float>();
  max_rating_ = reader.Read<float>();
  if (user_bias_.empty() != item_bias_.empty()) {
    throw FormatError(reader.source() +
                      ": mf model with only one of the user and item bias vectors");
  }
}

}  // namespace recforge::models
