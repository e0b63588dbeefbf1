#include "bpr.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

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

// Draws before a triple is given up: a user who has seen most of a column group would
// otherwise loop; 8 misses in a row means the group is (nearly) all positives.
constexpr int kNegativeTries = 8;
// Micro-bins per column group (see block_scheduler.h).
constexpr int kColSplits = 4;
// Fold-in: the negative set is capped so one fold-in stays in the milliseconds.
constexpr std::size_t kFoldInNegatives = 1024;

// Walker / Vose alias table: O(n) to build, O(1) per draw.
class AliasTable {
 public:
  AliasTable() = default;
  explicit AliasTable(std::span<const double> weights) {
    const std::size_t n = weights.size();
    probability_.assign(n, 0.0f);
    alias_.assign(n, 0);
    double total = 0;
    for (double w : weights) total += w;
    if (n == 0 || !(total > 0)) return;
    std::vector<double> scaled(n);
    std::vector<std::uint32_t> small, large;
    for (std::size_t k = 0; k < n; ++k) {
      scaled[k] = weights[k] * static_cast<double>(n) / total;
      (scaled[k] < 1.0 ? small : large).push_back(static_cast<std::uint32_t>(k));
    }
    while (!small.empty() && !large.empty()) {
      std::uint32_t low = small.back();
      small.pop_back();
      std::uint32_t high = large.back();
      probability_[low] = static_cast<float>(scaled[low]);
      alias_[low] = high;
      scaled[high] -= 1.0 - scaled[low];
      if (scaled[high] < 1.0) {
        large.pop_back();
        small.push_back(high);
      }
    }
    for (std::uint32_t k : large) probability_[k] = 1.0f, alias_[k] = k;
    for (std::uint32_t k : small) probability_[k] = 1.0f, alias_[k] = k;  // rounding leftovers
  }
  bool empty() const { return probability_.empty(); }
  // A position in [0, n) drawn with probability proportional to its weight.
  std::uint32_t Sample(Rng& rng) const {
    auto k = static_cast<std::uint32_t>(rng.Below(probability_.size()));
    return rng.UniformFloat() < probability_[k] ? k : alias_[k];
  }

 private:
  std::vector<float> probability_;
  std::vector<std::uint32_t> alias_;
};

// log(1 + exp(-x)) without overflow (fold-in objective, in double).
inline double SoftplusOfNegative(double x) {
  return x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}

// The same from the step's z = sigmoid(-x) with one logarithm: for x >= 0,
// log(1 + e^-x) = -log(1 - z); for x < 0 it is -x - log(z) (both arguments well away
// from 0, so neither loses precision).
// (-log(1 - z) rather than log1p: logf is several times cheaper and the rounding of
// 1 - z costs at most ~1e-7 of absolute loss, irrelevant for an epoch average.)
inline float TripleLoss(float x, float z) {
  return x >= 0 ? -std::log(1.0f - z) : -x - std::log(z);
}

// Whether `key` is in the sorted array [base, base + n): a branchless lower bound
// (compiles to conditional moves). The negative check runs once per triple on a
// random key, where a branchy search mispredicts about every other probe.
inline bool SortedContains(const std::uint32_t* base, std::size_t n, std::uint32_t key) {
  if (n == 0) return false;
  while (n > 1) {
    const std::size_t half = n / 2;
    base = base[half] <= key ? base + half : base;
    n -= half;
  }
  return *base == key;
}

// Loss and counts of one block or thread.
struct StepTally {
  double loss = 0;
  std::uint64_t steps = 0;
  std::uint64_t skipped = 0;
};

// Walks up to kColSplits spans of entries, each sorted by user, user by user: all
// entries of the smallest pending user from every span, then the next user.
class UserRunMerge {
 public:
  void Add(std::span<const BlockEntry> entries) {
    if (!entries.empty()) parts_[parts_count_++] = entries;
  }
  // The next entry; call at most (total size) times.
  BlockEntry Next() {
    for (;;) {
      if (part_ < parts_count_) {
        const auto& entries = parts_[part_];
        std::size_t& at = cursor_[part_];
        if (at < entries.size() && entries[at].user == user_) return entries[at++];
        ++part_;
        continue;
      }
      user_ = kInvalidIndex;
      for (int part = 0; part < parts_count_; ++part) {
        if (cursor_[part] < parts_[part].size()) {
          user_ = std::min(user_, parts_[part][cursor_[part]].user);
        }
      }
      part_ = 0;
    }
  }

 private:
  std::span<const BlockEntry> parts_[kColSplits];
  std::size_t cursor_[kColSplits] = {};
  int parts_count_ = 0;
  int part_ = kColSplits;  // forces a user pick on the first call
  UserIndex user_ = kInvalidIndex;
};

// What every step reads and writes.
struct StepTarget {
  const CsrMatrix* seen;
  float* user_factors;
  float* item_factors;
  float* item_bias;  // null without item biases
  std::size_t k;
  float lr, reg, bias_reg;
};

inline void PrefetchRow(const float* row, std::size_t k) {
  // One hint per 64-byte line; write intent, since the step updates the row.
  for (std::size_t offset = 0; offset < k; offset += 16) __builtin_prefetch(row + offset, 1, 3);
}

// Runs `count` BPR triples. next_positive(rng) gives the positives in order and
// draw_negative(rng) negative candidates. The loop is software-pipelined: the
// positive and first negative candidate of triple t + kAhead are drawn while triple t
// runs, and their factor rows and the user's CSR row are prefetched, so the random
// row accesses (the cost of SGD on large data) overlap instead of stalling one by one.
// The draw order is fixed, so results stay deterministic.
template <typename NextPositive, typename DrawNegative>
void RunSteps(const StepTarget& target, std::uint64_t count, NextPositive&& next_positive,
              DrawNegative&& draw_negative, Rng& rng, StepTally& tally) {
  constexpr std::size_t kAhead = 8;
  struct Slot {
    BlockEntry positive;
    ItemIndex negative;
  };
  Slot ring[kAhead];
  const std::size_t k = target.k;
  const CsrMatrix& seen = *target.seen;
  const std::uint32_t* indices = seen.indices.data();
  const std::uint64_t* indptr = seen.indptr.data();
  UserIndex last_user = kInvalidIndex;
  auto fill = [&](Slot& slot) {
    slot.positive = next_positive(rng);
    slot.negative = draw_negative(rng);
    const UserIndex user = slot.positive.user;
    PrefetchRow(target.item_factors + static_cast<std::size_t>(slot.positive.item) * k, k);
    PrefetchRow(target.item_factors + static_cast<std::size_t>(slot.negative) * k, k);
    if (user != last_user) {  // positives come grouped by user: fetch its rows once
      last_user = user;
      PrefetchRow(target.user_factors + static_cast<std::size_t>(user) * k, k);
      // The user's seen items (the negative check searches them): up to 16 lines.
      const std::uint32_t* row = indices + indptr[user];
      const std::size_t length = std::min<std::size_t>(indptr[user + 1] - indptr[user], 256);
      for (std::size_t offset = 0; offset < length; offset += 16) {
        __builtin_prefetch(row + offset, 0, 3);
      }
    }
  };
  auto is_seen = [&](UserIndex user, ItemIndex item) {
    return SortedContains(indices + indptr[user], indptr[user + 1] - indptr[user], item);
  };
  const std::uint64_t primed = std::min<std::uint64_t>(count, kAhead);
  for (std::uint64_t t = 0; t < primed; ++t) fill(ring[t]);
  for (std::uint64_t t = 0; t < count; ++t) {
    Slot& slot = ring[t % kAhead];
    const BlockEntry entry = slot.positive;
    ItemIndex negative = slot.negative;
    for (int attempt = 1; is_seen(entry.user, negative); ++attempt) {
      negative = attempt < kNegativeTries ? draw_negative(rng) : kInvalidIndex;
      if (negative == kInvalidIndex) break;
    }
    if (t + kAhead < count) fill(slot);  // the slot is free again: draw triple t + kAhead
    if (negative == kInvalidIndex) {
      ++tally.skipped;
      continue;
    }
    float* bias = target.item_bias;
    const float bias_diff = bias != nullptr ? bias[entry.item] - bias[negative] : 0.0f;
    const kernels::BprStepResult step =
        kernels::BprStep(target.user_factors + static_cast<std::size_t>(entry.user) * k,
                         target.item_factors + static_cast<std::size_t>(entry.item) * k,
                         target.item_factors + static_cast<std::size_t>(negative) * k, k, bias_diff,
                         target.lr, target.reg);
    if (bias != nullptr) {
      bias[entry.item] += target.lr * (step.z - target.bias_reg * bias[entry.item]);
      bias[negative] += target.lr * (-step.z - target.bias_reg * bias[negative]);
    }
    tally.loss += TripleLoss(step.x, step.z);
    ++tally.steps;
  }
}

}  // namespace

std::vector<ParamField> BprModel::Fields() {
  return {
      IntParam("factors", 64, 1, 4096, "Latent dimensions", {"k", "dim"}),
      IntParam("epochs", 100, 1, 100000, "Passes of nnz sampled triples", {"iterations", "iters"}),
      FloatParam("lr", 0.05, 1e-6, 10, "Initial SGD learning rate", {"learning_rate"}),
      FloatParam("lr_decay", 0.98, 0.1, 1,
                 "Learning-rate factor per epoch (lr = lr0 * lr_decay^(epoch-1))"),
      FloatParam("reg", 0.01, 0, 100, "L2 regularisation of the factors, per triple",
                 {"regularization"}),
      FloatParam("bias_reg", 0.01, 0, 100, "L2 regularisation of the item biases, per triple"),
      BoolParam("item_bias", true, "Learn an item bias b_i"),
      FloatParam("init_std", 0.01, 0, 10, "Standard deviation of the normal initial factors"),
      ChoiceParam("negatives", "uniform", {"uniform", "popularity"},
                  "Negative sampling: uniform over items, or proportional to count^pop_exponent",
                  {"negative_sampling", "neg_sampling"}),
      FloatParam("pop_exponent", 0.75, 0, 2,
                 "Exponent of the training count for negatives=popularity"),
      ChoiceParam(
          "mode", "block", {"block", "hogwild"},
          "Parallel SGD: block (deterministic grid) or hogwild (lock-free, not deterministic)"),
      IntParam("bins", 0, 0, 1024,
               "Block grid size per side (0 = auto: 8 up to 4 threads, 2 * threads above); "
               "the model depends on it, not on the thread count"),
  };
}

void BprModel::FitImpl(const TrainingData& data, const Context& ctx,
                       const TrainCallback& callback) {
  const auto& p = params();
  factors_ = static_cast<std::size_t>(p.Int("factors"));
  const std::size_t k = factors_;
  const int epochs = static_cast<int>(p.Int("epochs"));
  const float lr0 = static_cast<float>(p.Float("lr"));
  const double lr_decay = p.Float("lr_decay");
  const float reg = static_cast<float>(p.Float("reg"));
  const float bias_reg = static_cast<float>(p.Float("bias_reg"));
  const bool popularity = p.Choice("negatives") == "popularity";
  const bool hogwild = p.Choice("mode") == "hogwild";
  const double pop_exponent = p.Float("pop_exponent");
  const int threads = std::max(1, ctx.threads);
  const std::size_t n_items = data.n_items;
  int bins = static_cast<int>(p.Int("bins"));
  if (bins == 0) bins = AutoBins(threads, data.n_users, n_items, kColSplits);

  UseSingleThreadedBlas();
  const float init_length =
      static_cast<float>(p.Float("init_std") * std::sqrt(static_cast<double>(k)));
  RandomUnitRows(user_factors_, data.n_users, k, ctx.seed, 1, /*absolute=*/false, threads);
  RandomUnitRows(item_factors_, n_items, k, ctx.seed, 2, /*absolute=*/false, threads);
  kernels::Scale(init_length, user_factors_.data(), user_factors_.size());
  kernels::Scale(init_length, item_factors_.data(), item_factors_.size());
  // Users without data are never updated; items without data still are (as negatives).
  ZeroRowsWithoutData(user_factors_, k, *data.user_items);
  user_bias_.clear();
  item_bias_.assign(p.Bool("item_bias") ? n_items : 0, 0.0f);
  global_bias_ = 0.0f;
  float* item_bias = item_bias_.empty() ? nullptr : item_bias_.data();

  const CsrMatrix& seen = *data.user_items;
  std::vector<double> weights(n_items, 1.0);
  negative_weights_.clear();
  if (popularity) {
    negative_weights_.resize(n_items);
    for (std::size_t item = 0; item < n_items; ++item) {
      weights[item] = std::pow(static_cast<double>(data.item_users.RowLength(item)), pop_exponent);
      if (data.item_users.RowLength(item) == 0) weights[item] = 0;
      negative_weights_[item] = static_cast<float>(weights[item]);
    }
  }

  BlockGrid grid =
      BlockGrid::Build(seen, hogwild ? 1 : bins, hogwild ? 1 : kColSplits, DeriveSeed(ctx.seed, 3),
                       /*keep_values=*/false, threads);
  const BlockScheduler scheduler(grid.bins(), grid.col_splits(), DeriveSeed(ctx.seed, 4));
  const int sgd_threads = SgdThreads(threads, grid.nnz(), grid.bins());
  const std::uint64_t step_seed = DeriveSeed(ctx.seed, 5);
  const AliasTable global_alias = popularity && hogwild ? AliasTable(weights) : AliasTable();

  // Per-epoch column groups: their items back to back (and alias tables over them).
  std::vector<ItemIndex> group_items;
  std::vector<std::size_t> group_offsets;
  std::vector<AliasTable> group_alias;
  std::vector<double> group_weights;

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    const float lr = static_cast<float>(lr0 * std::pow(lr_decay, epoch - 1));
    const StepTarget target{
        &seen, user_factors_.data(), item_factors_.data(), item_bias, k, lr, reg, bias_reg};
    std::vector<StepTally> tallies;
    if (hogwild) {
      tallies.resize(threads);
      const std::span<const BlockEntry> entries = grid.entries();
      const std::uint64_t nnz = entries.size();
      ParallelRegion(threads, [&](int thread) {
        Rng rng(DeriveSeed(step_seed, static_cast<std::uint64_t>(epoch) * 4096 + thread));
        std::uint64_t count =
            nnz / threads + (static_cast<std::uint64_t>(thread) < nnz % threads ? 1 : 0);
        // Positives are drawn kAheadDraws ahead and their entries prefetched: a random
        // entry of a large array is a cache miss, and RunSteps needs it to prefetch
        // the rows it names.
        constexpr std::size_t kAheadDraws = 8;
        std::uint64_t ahead[kAheadDraws];
        std::size_t head = 0;
        for (auto& index : ahead) {
          index = nnz > 0 ? rng.Below(nnz) : 0;
          __builtin_prefetch(entries.data() + index, 0, 3);
        }
        auto positive = [&](Rng& r) {
          const std::uint64_t index = ahead[head];
          ahead[head] = r.Below(nnz);
          __builtin_prefetch(entries.data() + ahead[head], 0, 3);
          head = (head + 1) % kAheadDraws;
          return entries[index];
        };
        auto negative = [&](Rng& r) {
          return popularity ? global_alias.Sample(r) : static_cast<ItemIndex>(r.Below(n_items));
        };
        if (nnz > 0 && n_items > 0) {
          RunSteps(target, count, positive, negative, rng, tallies[thread]);
        }
      });
    } else {
      const EpochPlan plan = scheduler.Plan(epoch);
      const int n_groups = plan.bins;
      group_items.clear();
      group_offsets.assign(1, 0);
      group_alias.resize(popularity ? n_groups : 0);
      for (int group = 0; group < n_groups; ++group) {
        for (std::uint32_t micro : plan.GroupMicroBins(group)) {
          auto items = grid.MicroBinItems(static_cast<int>(micro));
          group_items.insert(group_items.end(), items.begin(), items.end());
        }
        group_offsets.push_back(group_items.size());
        if (popularity) {
          group_weights.clear();
          for (std::size_t at = group_offsets[group]; at < group_items.size(); ++at) {
            group_weights.push_back(weights[group_items[at]]);
          }
          group_alias[group] = AliasTable(group_weights);
        }
      }
      tallies.resize(scheduler.n_blocks());
      BlockScheduler::Run(plan, sgd_threads, [&](const GridBlock& block) {
        Rng rng(DeriveSeed(step_seed,
                           static_cast<std::uint64_t>(epoch) * scheduler.n_blocks() + block.id));
        const ItemIndex* negatives = group_items.data() + group_offsets[block.col_group];
        const std::size_t n_negatives =
            group_offsets[block.col_group + 1] - group_offsets[block.col_group];
        if (n_negatives == 0) return;
        const AliasTable* alias = popularity ? &group_alias[block.col_group] : nullptr;
        auto negative = [&](Rng& r) {
          return negatives[alias != nullptr ? alias->Sample(r) : r.Below(n_negatives)];
        };
        // Every positive of the block once, user by user: the micro-blocks of the
        // column group are each sorted by user, and a merge walks them together, so
        // a user's factor row and CSR row are fetched once per block rather than once
        // per micro-block (on large data those fetches, not the arithmetic, are the
        // cost of an update). A user has ~1/bins of its items in a block.
        UserRunMerge merge;
        std::uint64_t count = 0;
        for (std::uint32_t micro : plan.GroupMicroBins(block.col_group)) {
          auto entries = grid.MicroBlock(static_cast<int>(block.row_bin), static_cast<int>(micro));
          merge.Add(entries);
          count += entries.size();
        }
        if (count == 0) return;
        auto positive = [&](Rng&) { return merge.Next(); };
        RunSteps(target, count, positive, negative, rng, tallies[block.id]);
      });
    }
    StepTally total;
    for (const auto& tally : tallies) {  // fixed order: the sum does not depend on timing
      total.loss += tally.loss;
      total.steps += tally.steps;
      total.skipped += tally.skipped;
    }
    const double loss = total.steps > 0 ? total.loss / static_cast<double>(total.steps) : 0.0;
    if (!std::isfinite(loss)) {
      throw InvalidArgument(family() + ": training diverged (non-finite loss); lower lr (now " +
                            p.values().at("lr") + ")");
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double skipped = total.steps + total.skipped > 0
                               ? static_cast<double>(total.skipped) / (total.steps + total.skipped)
                               : 0.0;
    ctx.log().Debug("bpr epoch {}/{}: loss {:.5f}, skipped {:.4f}, {:.3f} s", epoch, epochs, loss,
                    skipped, seconds);
    if (callback) {
      FactorsChanged();
      EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, loss);
      report.metrics["skipped"] = skipped;
      callback(*this, report);
    }
  }
  FactorsChanged();
}

bool BprModel::FoldIn(std::span<const ItemIndex> items, std::span<const float>, float* user_vector,
                      float* user_bias) const {
  const std::size_t k = factors_;
  const std::size_t n = n_items();
  *user_bias = 0.0f;
  std::fill_n(user_vector, k, 0.0f);
  std::vector<ItemIndex> positives(items.begin(), items.end());
  std::sort(positives.begin(), positives.end());
  positives.erase(std::unique(positives.begin(), positives.end()), positives.end());
  if (positives.empty() || positives.size() == n || k == 0) return true;
  std::vector<float> user(k, 0.0f);

  // Negative set and weights (summing to 1), as in training.
  std::vector<ItemIndex> negatives;
  std::vector<double> weights;
  {
    std::vector<char> positive(n, 0);
    for (ItemIndex item : positives) positive[item] = 1;
    std::vector<ItemIndex> unseen;
    std::vector<double> unseen_weight;
    for (std::size_t item = 0; item < n; ++item) {
      if (positive[item]) continue;
      double w = negative_weights_.empty() ? 1.0 : negative_weights_[item];
      if (w <= 0) continue;
      unseen.push_back(static_cast<ItemIndex>(item));
      unseen_weight.push_back(w);
    }
    if (unseen.empty()) return true;
    if (unseen.size() <= kFoldInNegatives) {
      negatives = std::move(unseen);
      weights = std::move(unseen_weight);
    } else {
      // A fixed draw per history keeps ScoreHistory a pure function.
      std::uint64_t seed = 0x666f6c64ULL;
      for (ItemIndex item : positives) seed = Mix64(seed ^ item);
      Rng rng(seed);
      AliasTable alias(unseen_weight);
      for (std::size_t s = 0; s < kFoldInNegatives; ++s) {
        negatives.push_back(unseen[alias.Sample(rng)]);
      }
      weights.assign(negatives.size(), 1.0);
    }
    double total = 0;
    for (double w : weights) total += w;
    for (double& w : weights) w /= total;
  }

  const std::size_t n_pos = positives.size();
  const std::size_t n_neg = negatives.size();
  const double reg = params().Float("reg");
  auto gather = [&](const std::vector<ItemIndex>& list, std::vector<float>& rows,
                    std::vector<float>& bias) {
    rows.resize(list.size() * k);
    bias.assign(list.size(), 0.0f);
    for (std::size_t r = 0; r < list.size(); ++r) {
      std::copy_n(item_factors_.data() + static_cast<std::size_t>(list[r]) * k, k,
                  rows.data() + r * k);
      if (!item_bias_.empty()) bias[r] = item_bias_[list[r]];
    }
  };
  std::vector<float> pos_rows, neg_rows, pos_bias, neg_bias;
  gather(positives, pos_rows, pos_bias);
  gather(negatives, neg_rows, neg_bias);
  // Q_N^T (k x n_neg) for the cross term of the Hessian as one GEMM.
  std::vector<float> neg_transposed(k * n_neg);
  for (std::size_t j = 0; j < n_neg; ++j) {
    for (std::size_t f = 0; f < k; ++f) neg_transposed[f * n_neg + j] = neg_rows[j * k + f];
  }

  std::vector<float> pos_scores(n_pos), neg_scores(n_neg);
  auto scores_at = [&](const std::vector<float>& u) {
    kernels::GemmNT(1, n_pos, k, 1.0f, u.data(), pos_rows.data(), 0.0f, pos_scores.data());
    kernels::GemmNT(1, n_neg, k, 1.0f, u.data(), neg_rows.data(), 0.0f, neg_scores.data());
    for (std::size_t i = 0; i < n_pos; ++i) pos_scores[i] += pos_bias[i];
    for (std::size_t j = 0; j < n_neg; ++j) neg_scores[j] += neg_bias[j];
  };
  const double inv_pos = 1.0 / static_cast<double>(n_pos);
  auto objective = [&](const std::vector<float>& u) {
    scores_at(u);
    double value = 0;
    for (std::size_t i = 0; i < n_pos; ++i) {
      double row = 0;
      for (std::size_t j = 0; j < n_neg; ++j) {
        row += weights[j] * SoftplusOfNegative(pos_scores[i] - neg_scores[j]);
      }
      value += row * inv_pos;
    }
    return value + 0.5 * reg * kernels::SquaredNorm(u.data(), k);
  };

  std::vector<float> hess_pairs(n_pos * n_neg), cross(n_pos * k), scaled;
  std::vector<float> gram(k * k);
  std::vector<double> coef_pos(n_pos), coef_neg(n_neg), curv_pos(n_pos), curv_neg(n_neg);
  std::vector<double> hessian(k * k), gradient(k);
  std::vector<float> candidate(k), hessian_float(k * k), step_float(k);
  linalg::SolverScratch scratch;
  scratch.Reserve(k, 0);
  double value = objective(user);
  for (int iteration = 0; iteration < 50; ++iteration) {
    // Pair terms (scores are current from the last objective() call).
    std::fill(coef_pos.begin(), coef_pos.end(), 0.0);
    std::fill(coef_neg.begin(), coef_neg.end(), 0.0);
    std::fill(curv_pos.begin(), curv_pos.end(), 0.0);
    std::fill(curv_neg.begin(), curv_neg.end(), 0.0);
    for (std::size_t i = 0; i < n_pos; ++i) {
      for (std::size_t j = 0; j < n_neg; ++j) {
        double x = pos_scores[i] - neg_scores[j];
        double z = 1.0 / (1.0 + std::exp(x));
        double a = weights[j] * inv_pos;
        coef_pos[i] -= a * z;
        coef_neg[j] += a * z;
        double h = a * z * (1.0 - z);
        curv_pos[i] += h;
        curv_neg[j] += h;
        hess_pairs[i * n_neg + j] = static_cast<float>(h);
      }
    }
    // Gradient: reg u + sum_i coef_pos_i q_i + sum_j coef_neg_j q_j.
    for (std::size_t f = 0; f < k; ++f) gradient[f] = reg * user[f];
    for (std::size_t i = 0; i < n_pos; ++i) {
      for (std::size_t f = 0; f < k; ++f) gradient[f] += coef_pos[i] * pos_rows[i * k + f];
    }
    for (std::size_t j = 0; j < n_neg; ++j) {
      for (std::size_t f = 0; f < k; ++f) gradient[f] += coef_neg[j] * neg_rows[j * k + f];
    }
    // Hessian: reg I + sum_ij h_ij (q_i - q_j)(q_i - q_j)^T
    //        = reg I + sum_i c_i q_i q_i^T + sum_j d_j q_j q_j^T - (Q_P^T H Q_N + transpose).
    std::fill(hessian.begin(), hessian.end(), 0.0);
    auto add_gram = [&](const std::vector<float>& rows, const std::vector<double>& curvature,
                        std::size_t count) {
      scaled.resize(count * k);
      for (std::size_t r = 0; r < count; ++r) {
        float s = static_cast<float>(std::sqrt(curvature[r]));
        for (std::size_t f = 0; f < k; ++f) scaled[r * k + f] = s * rows[r * k + f];
      }
      kernels::Gramian(count, k, 1.0f, scaled.data(), 0.0f, gram.data());
      for (std::size_t e = 0; e < k * k; ++e) hessian[e] += gram[e];
    };
    add_gram(pos_rows, curv_pos, n_pos);
    add_gram(neg_rows, curv_neg, n_neg);
    kernels::GemmNT(n_pos, k, n_neg, 1.0f, hess_pairs.data(), neg_transposed.data(), 0.0f,
                    cross.data());
    for (std::size_t i = 0; i < n_pos; ++i) {
      for (std::size_t r = 0; r < k; ++r) {
        double q = pos_rows[i * k + r];
        for (std::size_t c = 0; c < k; ++c) {
          double term = q * cross[i * k + c];
          hessian[r * k + c] -= term;
          hessian[c * k + r] -= term;
        }
      }
    }
    for (std::size_t f = 0; f < k; ++f) hessian[f * k + f] += reg;
    for (std::size_t e = 0; e < k * k; ++e) hessian_float[e] = static_cast<float>(hessian[e]);
    for (std::size_t f = 0; f < k; ++f) step_float[f] = static_cast<float>(gradient[f]);
    if (!linalg::CholeskySolveInPlace(hessian_float.data(), k, step_float.data(), scratch)) {
      step_float.assign(gradient.begin(), gradient.end());  // fall back to a gradient step
    }
    std::vector<double> step(step_float.begin(), step_float.end());
    double decrement = 0;
    for (std::size_t f = 0; f < k; ++f) decrement += gradient[f] * step[f];
    if (decrement < 1e-12) break;
    // Backtracking (Armijo) line search on the true objective.
    double alpha = 1.0;
    bool improved = false;
    for (int halving = 0; halving < 30; ++halving, alpha *= 0.5) {
      for (std::size_t f = 0; f < k; ++f) {
        candidate[f] = static_cast<float>(user[f] - alpha * step[f]);
      }
      double next = objective(candidate);
      if (next <= value - 0.25 * alpha * decrement) {
        user.swap(candidate);
        value = next;
        improved = true;
        break;
      }
    }
    if (!improved) break;
  }
  std::copy(user.begin(), user.end(), user_vector);
  return true;
}

void BprModel::SaveExtra(ModelWriter& writer) const { writer.WriteVector(negative_weights_); }

void BprModel::LoadExtra(ModelReader& reader) {
  negative_weights_ = reader.ReadVector<float>();
  if (!negative_weights_.empty() && negative_weights_.size() != n_items()) {
    throw FormatError(reader.source() + ": bpr negative weights do not match the model's shape");
  }
}

}  // namespace recforge::models
