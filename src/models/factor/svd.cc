#include "factor/svd.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "factor/eigen.h"
#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// out[r, :] = sum_e values[e] * in[indices[e], :] over row r's entries: a sparse
// (rows x cols) times dense (cols x width) product, parallel over rows.
void SparseTimesDense(const CsrMatrix& matrix, const std::vector<float>& values,
                      const RowMatrix& in, RowMatrix& out, int threads) {
  const std::size_t width = static_cast<std::size_t>(in.cols());
  out.setZero(static_cast<Eigen::Index>(matrix.n_rows), in.cols());
  ParallelFor<std::size_t>(
      0, matrix.n_rows, threads,
      [&](std::size_t row) {
        float* target = out.data() + row * width;
        for (std::uint64_t e = matrix.indptr[row]; e < matrix.indptr[row + 1]; ++e) {
          kernels::Axpy(values[e], in.data() + std::size_t{matrix.indices[e]} * width, target,
                        width);
        }
      },
      Schedule::kDynamic, 256);
}

// An orthonormal basis of the columns of `m` (thin Householder QR), in place.
void Orthonormalise(RowMatrix& m) {
  const Eigen::MatrixXf columns = m;  // Eigen's QR works column-major
  Eigen::HouseholderQR<Eigen::MatrixXf> qr(columns);
  m = qr.householderQ() * Eigen::MatrixXf::Identity(columns.rows(), columns.cols());
}

}  // namespace

std::vector<ParamField> SvdModel::Fields() {
  return {
      IntParam("factors", 20, 1, 4096, "Number of singular triplets kept (rank k)",
               {"rank", "n_components"}),
      ChoiceParam(
          "center", "bias", {"none", "global", "bias"},
          "Centre ratings before the SVD: none (PureSVD), global mean, or mean + user/item biases"),
      FloatParam("bias_reg_user", 5, 0, 1e9,
                 "Shrinkage of user biases: sum / (bias_reg_user + n_u)"),
      FloatParam("bias_reg_item", 5, 0, 1e9,
                 "Shrinkage of item biases: sum / (bias_reg_item + n_i)"),
      IntParam("oversample", 10, 0, 4096,
               "Extra random directions of the range finder (Halko's p)"),
      IntParam("power_iters", 4, 0, 100, "Power iterations of the range finder (Halko's q)"),
  };
}

SvdModel::SvdModel(ParamValues params) : FactorModel(std::move(params)) {
  const ParamValues& p = this->params();
  k_ = static_cast<std::size_t>(p.Int("factors"));
  const std::string& center = p.Choice("center");
  center_ = center == "none" ? Center::kNone : center == "global" ? Center::kGlobal : Center::kBias;
  bias_reg_user_ = static_cast<float>(p.Float("bias_reg_user"));
  bias_reg_item_ = static_cast<float>(p.Float("bias_reg_item"));
  oversample_ = static_cast<int>(p.Int("oversample"));
  power_iters_ = static_cast<int>(p.Int("power_iters"));
}

void SvdModel::FitImpl(const TrainingData& data, const Context& ctx,
                       const TrainCallback& callback) {
  UseSingleThreadedBlas();
  const auto start = std::chrono::steady_clock::now();
  const int threads = std::max(1, ctx.threads);
  const std::size_t n_users = data.n_users;
  const std::size_t n_items = data.n_items;
  const CsrMatrix& by_user = *data.user_items;
  const CsrMatrix& by_item = data.item_users;

  // Baseline: global mean, then item biases, then user biases given the item biases.
  global_bias_ = 0.0f;
  user_bias_.clear();
  item_bias_.clear();
  if (center_ != Center::kNone && by_user.nnz() > 0) {
    double sum = 0;
    for (float value : by_user.values) sum += value;
    global_bias_ = static_cast<float>(sum / static_cast<double>(by_user.nnz()));
  }
  if (center_ == Center::kBias) {
    item_bias_.assign(n_items, 0.0f);
    for (std::size_t item = 0; item < n_items; ++item) {
      double sum = 0;
      for (float value : by_item.RowValues(item)) sum += value - global_bias_;
      item_bias_[item] =
          static_cast<float>(sum / (bias_reg_item_ + static_cast<double>(by_item.RowLength(item))));
    }
    user_bias_.assign(n_users, 0.0f);
    for (std::size_t user = 0; user < n_users; ++user) {
      double sum = 0;
      const auto items = by_user.RowIndices(user);
      const auto values = by_user.RowValues(user);
      for (std::size_t j = 0; j < items.size(); ++j) {
        sum += values[j] - global_bias_ - item_bias_[items[j]];
      }
      user_bias_[user] =
          static_cast<float>(sum / (bias_reg_user_ + static_cast<double>(items.size())));
    }
  }
  auto baseline = [&](std::size_t user, std::size_t item) {
    float value = global_bias_;
    if (!user_bias_.empty()) value += user_bias_[user] + item_bias_[item];
    return value;
  };
  // Residuals in both orientations (the products need R and R^T).
  std::vector<float> residual_by_user(by_user.nnz()), residual_by_item(by_item.nnz());
  ParallelFor<std::size_t>(0, n_users, threads, [&](std::size_t user) {
    for (std::uint64_t e = by_user.indptr[user]; e < by_user.indptr[user + 1]; ++e) {
      residual_by_user[e] = by_user.values[e] - baseline(user, by_user.indices[e]);
    }
  });
  ParallelFor<std::size_t>(0, n_items, threads, [&](std::size_t item) {
    for (std::uint64_t e = by_item.indptr[item]; e < by_item.indptr[item + 1]; ++e) {
      residual_by_item[e] = by_item.values[e] - baseline(by_item.indices[e], item);
    }
  });

  // Randomised range finder with power iterations (Halko et al., algorithm 4.4).
  const std::size_t width =
      std::min(k_ + static_cast<std::size_t>(oversample_), std::min(n_users, n_items));
  const std::size_t k = std::min(k_, width);
  factors_ = k;
  singular_values_.assign(k, 0.0f);
  user_factors_.assign(n_users * k, 0.0f);
  item_factors_.assign(n_items * k, 0.0f);
  if (k > 0) {
    RowMatrix omega(static_cast<Eigen::Index>(n_items), static_cast<Eigen::Index>(width));
    ParallelFor<std::size_t>(0, n_items, threads, [&](std::size_t item) {
      Rng rng(DeriveSeed(ctx.seed, item));
      for (std::size_t c = 0; c < width; c += 2) {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.Uniform()));
        const double angle = 2.0 * 3.14159265358979323846 * rng.Uniform();
        omega(static_cast<Eigen::Index>(item), static_cast<Eigen::Index>(c)) =
            static_cast<float>(radius * std::cos(angle));
        if (c + 1 < width) {
          omega(static_cast<Eigen::Index>(item), static_cast<Eigen::Index>(c + 1)) =
              static_cast<float>(radius * std::sin(angle));
        }
      }
    });
    RowMatrix range, co_range;
    SparseTimesDense(by_user, residual_by_user, omega, range, threads);  // R Omega
    omega.resize(0, 0);
    Orthonormalise(range);
    for (int round = 0; round < power_iters_; ++round) {
      SparseTimesDense(by_item, residual_by_item, range, co_range, threads);  // R^T Q
      Orthonormalise(co_range);
      SparseTimesDense(by_user, residual_by_user, co_range, range, threads);  // R Q'
      Orthonormalise(range);
    }
    // B^T = R^T Q (n_items x width); R ~ Q B = (Q V_b) S U_b^T, so the item factors are U_b.
    SparseTimesDense(by_item, residual_by_item, range, co_range, threads);
    const Eigen::MatrixXf b_transposed = co_range;
    Eigen::BDCSVD<Eigen::MatrixXf> svd(b_transposed, Eigen::ComputeThinU);
    const Eigen::MatrixXf& item_basis = svd.matrixU();
    for (std::size_t item = 0; item < n_items; ++item) {
      for (std::size_t c = 0; c < k; ++c) {
        item_factors_[item * k + c] =
            item_basis(static_cast<Eigen::Index>(item), static_cast<Eigen::Index>(c));
      }
    }
    for (std::size_t c = 0; c < k; ++c) {
      singular_values_[c] = svd.singularValues()(static_cast<Eigen::Index>(c));
    }
    // X = R V: each user's least-squares coordinates for the orthonormal item basis.
    ParallelFor<std::size_t>(
        0, n_users, threads,
        [&](std::size_t user) {
          float* target = user_factors_.data() + user * k;
          for (std::uint64_t e = by_user.indptr[user]; e < by_user.indptr[user + 1]; ++e) {
            kernels::Axpy(residual_by_user[e],
                          item_factors_.data() + std::size_t{by_user.indices[e]} * k, target, k);
          }
        },
        Schedule::kDynamic, 256);
  }
  FactorsChanged();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ctx.log().Debug("svd: rank {} of a {} x {} matrix in {:.3f} s", k, n_users, n_items, seconds);
  if (callback) {
    std::vector<double> row_error(n_users, 0.0);
    ParallelFor<std::size_t>(0, n_users, threads, [&](std::size_t user) {
      const auto items = by_user.RowIndices(user);
      const auto values = by_user.RowValues(user);
      double error = 0;
      for (std::size_t j = 0; j < items.size(); ++j) {
        const float* x = user_factors_.data() + user * k;
        const double predicted =
            baseline(user, items[j]) + kernels::Dot(x, ItemVector(items[j]), k);
        error += (values[j] - predicted) * (values[j] - predicted);
      }
      row_error[user] = error;
    });
    double error = 0;
    for (double value : row_error) error += value;
    const double mse = error / std::max<double>(1.0, static_cast<double>(by_user.nnz()));
    EpochReport report;
    report.epoch = report.epochs = 1;
    report.seconds = seconds;
    report.loss = mse;
    report.has_loss = true;
    report.metrics["train_rmse"] = std::sqrt(mse);
    callback(*this, report);
  }
}

bool SvdModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                      float* user_vector, float* user_bias) const {
  const std::size_t k = factors_;
  std::fill(user_vector, user_vector + k, 0.0f);
  *user_bias = 0.0f;
  auto item_bias = [&](ItemIndex item) { return item_bias_.empty() ? 0.0f : item_bias_[item]; };
  if (center_ == Center::kBias && !items.empty()) {
    double sum = 0;
    for (std::size_t j = 0; j < items.size(); ++j) {
      sum += values[j] - global_bias_ - item_bias(items[j]);
    }
    *user_bias = static_cast<float>(sum / (bias_reg_user_ + static_cast<double>(items.size())));
  }
  for (std::size_t j = 0; j < items.size(); ++j) {
    const float residual = values[j] - global_bias_ - *user_bias - item_bias(items[j]);
    kernels::Axpy(residual, ItemVector(items[j]), user_vector, k);
  }
  return true;
}

void SvdModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<std::uint8_t>(static_cast<std::uint8_t>(center_));
  writer.WriteVector(singular_values_);
}

void SvdModel::LoadExtra(ModelReader& reader) {
  const auto center = reader.Read<std::uint8_t>();
  if (center != static_cast<std::uint8_t>(center_)) {
    throw FormatError(reader.source() + ": svd model: the stored centring does not match the spec");
  }
  singular_values_ = reader.ReadVector<float>();
  if (singular_values_.size() != factors_) {
    throw FormatError(reader.source() + ": svd model: singular values have the wrong size");
  }
}

}  // namespace recforge::models
