#include "factor/ials.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "kernels.h"
#include "recforge/core/parallel.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

// Blocks per half-iteration: enough for dynamic load balance on a few dozen threads,
// few enough that handing them out costs nothing.
constexpr std::size_t kTargetBlocks = 512;
// A row whose fixed-side factor rows exceed this many bytes no longer stays in a core's
// L2 between CG passes; such rows run together, tile by tile (SolveImplicitCgTiled).
constexpr std::size_t kLongRowBytes = 256 << 10;
// Bytes of fixed-side factors per tile of the tiled solver: a tile should stay in the
// thread's share of the last-level cache while every long row is served from it
// (measured on the 20M synthetic set: 4 MB per thread beats 1 MB and 16 MB).
std::size_t TileBytes(int threads) {
  return std::clamp<std::size_t>((16u << 20) / static_cast<std::size_t>(std::max(1, threads)),
                                 512u << 10, 4u << 20);
}

}  // namespace

std::vector<ParamField> IalsModel::Fields() {
  return {
      IntParam("factors", 64, 1, 4096, "Latent dimension k", {"rank", "dim", "n_factors"}),
      FloatParam("reg", 1.0, 0, 1e9,
                 "L2 regularisation of a row: reg * n^reg_exponent (n = its interactions)",
                 {"regularization", "lambda"}),
      FloatParam("reg_exponent", 0.5, 0, 2,
                 "Frequency scaling of reg: 0 = the same reg for every row (implicit), 1 = ALS-WR",
                 {"nu"}),
      FloatParam("alpha", 0.25, 0, 1e9,
                 "Confidence slope: c = 1 + alpha * r (or alpha * log(1 + r / epsilon))",
                 {"confidence"}),
      ChoiceParam("scaling", "linear", {"linear", "log"},
                  "Confidence of a value r: linear or log scaling"),
      FloatParam("epsilon", 1.0, 1e-12, 1e12, "Log scaling: c = 1 + alpha * log(1 + r / epsilon)",
                 {"eps"}),
      BoolParam("binary", false,
                "Treat every stored interaction as r = 1 (ignore ratings / counts)"),
      IntParam("iters", 15, 1, 100000, "ALS iterations (each: item half, then user half)",
               {"iterations", "epochs", "max_iter"}),
      ChoiceParam("solver", "cg", {"cg", "cholesky"},
                  "Per-row solver: warm-started conjugate gradient or exact Cholesky"),
      IntParam("cg_steps", 3, 1, 4096,
               "Conjugate-gradient steps per row and half-iteration (solver=cg)"),
      FloatParam("init_scale", 0.01, 0, 1e3, "Initial factors are uniform in [0, init_scale)"),
      BoolParam("report_loss", true,
                "Compute the exact objective for the training callback (about one extra pass per "
                "iteration)"),
  };
}

IalsModel::IalsModel(ParamValues params) : FactorModel(std::move(params)) {
  const ParamValues& p = this->params();
  k_ = static_cast<std::size_t>(p.Int("factors"));
  reg_ = static_cast<float>(p.Float("reg"));
  reg_exponent_ = p.Float("reg_exponent");
  iters_ = static_cast<int>(p.Int("iters"));
  cg_steps_ = static_cast<int>(p.Int("cg_steps"));
  cholesky_ = p.Choice("solver") == "cholesky";
  init_scale_ = static_cast<float>(p.Float("init_scale"));
  report_loss_ = p.Bool("report_loss");
  confidence_.scaling = p.Choice("scaling") == "log" ? linalg::Confidence::Scaling::kLog
                                                     : linalg::Confidence::Scaling::kLinear;
  confidence_.alpha = static_cast<float>(p.Float("alpha"));
  confidence_.epsilon = static_cast<float>(p.Float("epsilon"));
  confidence_.binary = p.Bool("binary");
}

float IalsModel::RowReg(std::size_t n_entries) const {
  if (reg_exponent_ == 0.0 || n_entries == 0) return reg_;
  return static_cast<float>(reg_ * std::pow(static_cast<double>(n_entries), reg_exponent_));
}

double IalsModel::HalfStep(const CsrMatrix& rows, const std::vector<float>& fixed,
                           std::size_t n_fixed, std::vector<float>& solved,
                           const linalg::RowBlocks& blocks, bool want_loss, int threads) {
  const std::size_t k = k_;
  // Step 1: the fixed side's Gram matrix (the reduction point of a data-parallel run).
  linalg::ComputeGramian(fixed.data(), n_fixed, k, threads, gram_.data());
  // Step 2: independent row solves.
  std::vector<double> row_loss(want_loss ? rows.n_rows : 0, 0.0);
  auto add_loss = [&](std::size_t row, float reg, linalg::SolverScratch& scratch) {
    row_loss[row] =
        linalg::ImplicitRowLoss(gram_.data(), reg, fixed.data(), k, rows.RowIndices(row),
                                rows.RowValues(row), confidence_, solved.data() + row * k, scratch);
  };
  linalg::ForEachRowBlock(blocks, threads, [&](int thread, std::size_t first, std::size_t end) {
    linalg::SolverScratch& scratch = thread_scratch_[static_cast<std::size_t>(thread)];
    for (std::size_t row = first; row < end; ++row) {
      float* x = solved.data() + row * k;
      const auto indices = rows.RowIndices(row);
      if (blocks.IsLong(indices.size())) continue;  // solved below, tiled
      if (indices.empty()) {                        // no interactions: the documented zero vector
        std::fill(x, x + k, 0.0f);
        continue;
      }
      confidence_.Fill(rows.RowValues(row), scratch.weights.data(), scratch.targets.data());
      const linalg::ImplicitRowSystem system{.gram = gram_.data(),
                                             .reg = RowReg(indices.size()),
                                             .factors = fixed.data(),
                                             .k = k,
                                             .indices = indices,
                                             .weights = scratch.weights.data(),
                                             .targets = scratch.targets.data()};
      if (cholesky_) {
        linalg::SolveImplicitCholesky(system, x, scratch);
      } else {
        linalg::SolveImplicitCg(system, cg_steps_, x, scratch);
      }
      if (want_loss) add_loss(row, system.reg, scratch);
    }
  });
  if (!blocks.long_rows().empty()) {
    const auto parts = blocks.SplitLongRows(threads);
    const std::size_t tile_rows =
        std::max<std::size_t>(1, TileBytes(threads) / (k * sizeof(float)));
    ParallelRegion(threads, [&](int thread) {
      const auto& part = parts[static_cast<std::size_t>(thread)];
      std::vector<float> regs;
      for (std::size_t row : part) regs.push_back(RowReg(rows.RowLength(row)));
      linalg::SolveImplicitCgTiled(rows, part, regs, gram_.data(), fixed.data(), k, n_fixed,
                                   tile_rows, confidence_, cg_steps_, solved.data(),
                                   tiled_scratch_[static_cast<std::size_t>(thread)]);
      if (want_loss) {
        for (std::size_t h = 0; h < part.size(); ++h) {
          add_loss(part[h], regs[h], thread_scratch_[static_cast<std::size_t>(thread)]);
        }
      }
    });
  }
  double loss = 0;
  for (double value : row_loss) loss += value;  // row order: thread-count independent
  return loss;
}

void IalsModel::FitImpl(const TrainingData& data, const Context& ctx,
                        const TrainCallback& callback) {
  UseSingleThreadedBlas();
  const std::size_t k = k_;
  const int threads = std::max(1, ctx.threads);
  factors_ = k;
  global_bias_ = 0.0f;
  user_bias_.clear();
  item_bias_.clear();
  RandomUniform(user_factors_, data.n_users, k, ctx.seed, 0, 0.0f, init_scale_, threads);
  RandomUniform(item_factors_, data.n_items, k, ctx.seed, 1, 0.0f, init_scale_, threads);

  // Cost of a row per CG step: one k x k product plus two k-long passes per entry.
  // The Cholesky solver forms each row's matrix in one pass, so it never tiles.
  const std::size_t long_row =
      cholesky_ ? static_cast<std::size_t>(-1) : kLongRowBytes / (k * sizeof(float));
  const linalg::RowBlocks user_blocks(*data.user_items, static_cast<double>(k), 2.0, kTargetBlocks,
                                      long_row);
  const linalg::RowBlocks item_blocks(data.item_users, static_cast<double>(k), 2.0, kTargetBlocks,
                                      long_row);
  thread_scratch_.assign(static_cast<std::size_t>(threads), {});
  tiled_scratch_.assign(static_cast<std::size_t>(threads), {});
  for (auto& scratch : thread_scratch_) {
    scratch.Reserve(k, std::max({user_blocks.max_row_length(), item_blocks.max_row_length(),
                                 std::size_t{1024}}));
  }
  gram_.assign(k * k, 0.0f);

  // Denominator of the reported loss: the total weight of all cells.
  double total_weight = static_cast<double>(data.n_users) * static_cast<double>(data.n_items);
  const bool want_loss = callback && report_loss_;
  if (want_loss) {
    std::vector<float> weights(4096), targets(4096);
    const std::span<const float> values(data.user_items->values);
    for (std::size_t first = 0; first < values.size(); first += weights.size()) {
      const std::size_t n = std::min(weights.size(), values.size() - first);
      confidence_.Fill(values.subspan(first, n), weights.data(), targets.data());
      for (std::size_t j = 0; j < n; ++j) total_weight += weights[j];
    }
  }

  for (int iter = 1; iter <= iters_; ++iter) {
    const auto start = std::chrono::steady_clock::now();
    HalfStep(data.item_users, user_factors_, data.n_users, item_factors_, item_blocks, false,
             threads);
    const double item_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double loss = HalfStep(*data.user_items, item_factors_, data.n_items, user_factors_, user_blocks,
                           want_loss, threads);
    item_gram_ = gram_;  // the Gram matrix of the final item factors of this iteration
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.log().Debug("ials: iteration {}/{} ({:.3f} s, item half {:.3f} s)", iter, iters_, seconds,
                    item_seconds);
    if (!callback) continue;
    EpochReport report;
    report.epoch = iter;
    report.epochs = iters_;
    report.seconds = seconds;
    if (want_loss) {
      for (std::size_t item = 0; item < data.n_items; ++item) {
        loss += double{RowReg(data.item_users.RowLength(item))} *
                kernels::SquaredNorm(item_factors_.data() + item * k, k);
      }
      report.loss = total_weight > 0 ? loss / total_weight : 0.0;
      report.has_loss = true;
    }
    FactorsChanged();
    callback(*this, report);
  }
  thread_scratch_ = {};
  tiled_scratch_ = {};
  FactorsChanged();
}

bool IalsModel::FoldIn(std::span<const ItemIndex> items, std::span<const float> values,
                       float* user_vector, float* user_bias) const {
  const std::size_t k = factors_;
  *user_bias = 0.0f;
  std::fill(user_vector, user_vector + k, 0.0f);
  if (items.empty() || k == 0) return true;  // an empty history is the zero vector
  linalg::SolverScratch scratch;
  scratch.Reserve(k, items.size());
  confidence_.Fill(values, scratch.weights.data(), scratch.targets.data());
  linalg::ImplicitRowSystem system{.gram = item_gram_.data(),
                                   .reg = RowReg(items.size()),
                                   .factors = item_factors_.data(),
                                   .k = k,
                                   .indices = items,
                                   .weights = scratch.weights.data(),
                                   .targets = scratch.targets.data()};
  linalg::SolveImplicitCholesky(system, user_vector, scratch);
  return true;
}

void IalsModel::LoadExtra(ModelReader&) {
  item_gram_.assign(factors_ * factors_, 0.0f);
  linalg::ComputeGramian(item_factors_.data(), factors_ == 0 ? 0 : item_factors_.size() / factors_,
                         factors_, 1, item_gram_.data());
}

}  // namespace recforge::models
