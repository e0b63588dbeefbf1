#include "neural/ncf.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>

#include <fmt/format.h>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

using ncf::RowMatrix;
using ConstMap = Eigen::Map<const RowMatrix>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;

// Samples per slice of a mini-batch: the unit of data parallelism and of the fixed
// reduction order (so the thread count does not change the model).
constexpr std::size_t kSliceSamples = 64;
// Dense parameters per update task.
constexpr std::size_t kDenseChunk = 2048;
// Negative draws before a positive keeps one negative fewer.
constexpr int kNegativeTries = 8;
// Positives per negative-sampling chunk (each chunk has its own random stream).
constexpr std::size_t kNegativeChunk = 4096;
// Items per block when scoring all items for a user.
constexpr std::size_t kScoreBlock = 512;

// One training sample: bce (user, item, label in b); bpr (user, positive a, negative b).
struct Sample {
  UserIndex user;
  ItemIndex a;
  ItemIndex b;
};

inline bool SortedContains(const std::uint32_t* base, std::size_t n, std::uint32_t key) {
  const std::uint32_t* end = base + n;
  const std::uint32_t* at = std::lower_bound(base, end, key);
  return at != end && *at == key;
}

// log(1 + exp(x)) without overflow.
inline float Softplus(float x) { return std::max(x, 0.0f) + std::log1p(std::exp(-std::abs(x))); }
inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Adam on `n` values with a gradient g: m, v moments; step_size = lr / (1 - beta1^t),
// root_correction = sqrt(1 - beta2^t) (torch.optim.Adam's form).
struct AdamStep {
  float beta1, beta2, eps, step_size, root_correction;
  // Eigen arrays: their sqrt / division vectorise (a scalar std::sqrt loop does not,
  // because of errno), and this loop is the largest cost of the embedding updates.
  inline void Apply(float* w, float* m, float* v, const float* g, std::size_t n) const {
    using Array = Eigen::Map<Eigen::ArrayXf>;
    const auto size = static_cast<Eigen::Index>(n);
    Array weights(w, size), first(m, size), second(v, size);
    Eigen::Map<const Eigen::ArrayXf> grad(g, size);
    first = beta1 * first + (1.0f - beta1) * grad;
    second = beta2 * second + (1.0f - beta2) * grad.square();
    weights -= step_size * first / (second.sqrt() * (1.0f / root_correction) + eps);
  }
};

// The rows of a batch grouped by embedding row: unique rows in first-occurrence order,
// and for each, its batch rows in batch order (a counting sort; O(rows)).
class RowGroups {
 public:
  explicit RowGroups(std::size_t n_rows) : slot_(n_rows, kInvalidIndex) {}
  void Build(std::span<const std::uint32_t> keys) {
    unique_.clear();
    counts_.clear();
    for (std::uint32_t key : keys) {
      if (slot_[key] == kInvalidIndex) {
        slot_[key] = static_cast<std::uint32_t>(unique_.size());
        unique_.push_back(key);
        counts_.push_back(0);
      }
      ++counts_[slot_[key]];
    }
    offsets_.assign(unique_.size() + 1, 0);
    for (std::size_t g = 0; g < unique_.size(); ++g) offsets_[g + 1] = offsets_[g] + counts_[g];
    members_.resize(keys.size());
    std::fill(counts_.begin(), counts_.end(), 0);
    for (std::size_t r = 0; r < keys.size(); ++r) {
      const std::uint32_t g = slot_[keys[r]];
      members_[offsets_[g] + counts_[g]++] = static_cast<std::uint32_t>(r);
    }
    for (std::uint32_t key : unique_) slot_[key] = kInvalidIndex;
  }
  std::size_t size() const { return unique_.size(); }
  std::uint32_t key(std::size_t g) const { return unique_[g]; }
  std::span<const std::uint32_t> members(std::size_t g) const {
    return {members_.data() + offsets_[g], offsets_[g + 1] - offsets_[g]};
  }

 private:
  std::vector<std::uint32_t> slot_, unique_, counts_, offsets_, members_;
};

// Gradient of one embedding table for the rows of `group`, then Adam on the row.
void UpdateEmbeddingRow(std::vector<float>& table, std::vector<float>& m, std::vector<float>& v,
                        std::size_t width, std::uint32_t row, std::span<const std::uint32_t> members,
                        const std::vector<float>& row_grads, float reg, const AdamStep& adam,
                        float* scratch) {
  if (width == 0) return;
  float* w = table.data() + std::size_t{row} * width;
  std::fill_n(scratch, width, 0.0f);
  for (std::uint32_t r : members) {
    const float* g = row_grads.data() + std::size_t{r} * width;
    for (std::size_t c = 0; c < width; ++c) scratch[c] += g[c];
  }
  if (reg > 0) {
    for (std::size_t c = 0; c < width; ++c) scratch[c] += reg * w[c];
  }
  adam.Apply(w, m.data() + std::size_t{row} * width, v.data() + std::size_t{row} * width, scratch,
             width);
}

}  // namespace

std::vector<ParamField> NcfModel::Fields() {
  return {
      ChoiceParam("model", "neumf", {"neumf", "gmf", "mlp"},
                  "Towers: GMF and MLP fused (NeuMF), GMF only or MLP only"),
      IntParam("factors", 32, 1, 1024, "GMF embedding size (the GMF tower's predictive factors)",
               {"gmf_factors", "k"}),
      IntParam("mlp_factors", 32, 1, 1024,
               "MLP embedding size per side; hidden widths halve from it (2m -> m -> m/2 ...)"),
      IntParam("layers", 3, 1, 8, "Hidden MLP layers (tower pattern, widths halving)"),
      FloatParam("dropout", 0.3, 0.0, 0.9, "Dropout rate on the hidden MLP units while training"),
      ChoiceParam("loss", "bce", {"bce", "bpr"},
                  "Binary cross-entropy on sampled negatives, or pairwise BPR"),
      IntParam("negatives", 8, 1, 1000, "Negatives drawn per training interaction and epoch",
               {"num_negatives"}),
      IntParam("batch_size", 256, 1, 1 << 20, "Rows (bce) or pairs (bpr) per mini-batch",
               {"batch"}),
      IntParam("epochs", 8, 1, 100000, "Passes over the training interactions",
               {"iterations"}),
      FloatParam("lr", 0.001, 1e-7, 10.0, "Adam learning rate", {"learning_rate"}),
      FloatParam("beta1", 0.9, 0.0, 0.999999, "Adam first-moment decay"),
      FloatParam("beta2", 0.999, 0.0, 0.99999999, "Adam second-moment decay"),
      FloatParam("eps", 1e-8, 0.0, 1.0, "Adam epsilon"),
      FloatParam("reg", 0.0, 0.0, 100.0,
                 "L2 on the embedding rows a batch touches (added to their gradients)", {"l2"}),
      FloatParam("weight_decay", 0.0, 0.0, 100.0,
                 "L2 on the dense weights (coupled, like torch.optim.Adam's weight_decay)"),
      FloatParam("init_std", 0.01, 0.0, 10.0, "Standard deviation of the initial embeddings"),
  };
}

NcfModel::NcfModel(ParamValues params) : Recommender(std::move(params)) {
  // Matrix products go to OpenBLAS from many of our threads at once: it must not start
  // its own (kernels.h).
  static std::once_flag blas_once;
  std::call_once(blas_once, [] { kernels::SetBlasThreads(1); });
  const ParamValues& p = this->params();
  const std::string& model = p.Choice("model");
  shape_.use_gmf = model != "mlp";
  shape_.use_mlp = model != "gmf";
  shape_.gmf_factors = shape_.use_gmf ? static_cast<std::size_t>(p.Int("factors")) : 0;
  if (shape_.use_mlp) {
    shape_.mlp_factors = static_cast<std::size_t>(p.Int("mlp_factors"));
    const auto layers = static_cast<std::size_t>(p.Int("layers"));
    if ((shape_.mlp_factors >> (layers - 1)) == 0) {
      throw ConfigError(fmt::format(
          "ncf: mlp_factors={} is too small for layers={} (widths halve from mlp_factors; need "
          "mlp_factors >= {})",
          shape_.mlp_factors, layers, std::size_t{1} << (layers - 1)));
    }
    for (std::size_t l = 0; l < layers; ++l) shape_.hidden.push_back(shape_.mlp_factors >> l);
  }
  net_.shape = shape_;
  net_.layout = ncf::DenseLayout::For(shape_);
}

void NcfModel::FitImpl(const TrainingData& data, const Context& ctx,
                       const TrainCallback& callback) {
  const ParamValues& p = params();
  const int epochs = static_cast<int>(p.Int("epochs"));
  const auto batch_size = static_cast<std::size_t>(p.Int("batch_size"));
  const auto negatives = static_cast<std::size_t>(p.Int("negatives"));
  const bool bpr = p.Choice("loss") == "bpr";
  const auto lr = static_cast<float>(p.Float("lr"));
  const auto beta1 = static_cast<float>(p.Float("beta1"));
  const auto beta2 = static_cast<float>(p.Float("beta2"));
  const auto eps = static_cast<float>(p.Float("eps"));
  const auto reg = static_cast<float>(p.Float("reg"));
  const auto weight_decay = static_cast<float>(p.Float("weight_decay"));
  const auto dropout = static_cast<float>(p.Float("dropout"));
  const int threads = std::max(1, ctx.threads);
  const std::size_t n_users = data.n_users;
  const std::size_t n_items = data.n_items;
  const CsrMatrix& seen = *data.user_items;

  net_.Initialize(shape_, n_users, n_items, static_cast<float>(p.Float("init_std")),
                  DeriveSeed(ctx.seed, 1), threads);
  const std::size_t f = shape_.GmfWidth();
  const std::size_t m = shape_.use_mlp ? shape_.mlp_factors : 0;
  // Users without training interactions are never updated: zero vectors, so they
  // score like an unknown user (the documented empty-user behaviour).
  for (std::size_t user = 0; user < n_users; ++user) {
    if (seen.RowLength(user) > 0) continue;
    std::fill_n(net_.user_gmf.data() + user * f, f, 0.0f);
    std::fill_n(net_.user_mlp.data() + user * m, m, 0.0f);
  }

  std::vector<UserIndex> positive_users;
  std::vector<ItemIndex> positive_items;
  positive_users.reserve(seen.nnz());
  positive_items.reserve(seen.nnz());
  for (std::size_t user = 0; user < n_users; ++user) {
    for (ItemIndex item : seen.RowIndices(static_cast<UserIndex>(user))) {
      positive_users.push_back(static_cast<UserIndex>(user));
      positive_items.push_back(item);
    }
  }
  const std::size_t n_positives = positive_users.size();
  if (n_positives == 0 || n_items == 0) {  // nothing to learn from: the initial network
    PrepareScoring();
    return;
  }

  // Adam state: dense, and per embedding table (only touched rows ever move).
  const std::size_t dense_size = net_.layout.size;
  std::vector<float> dense_m(dense_size, 0.0f), dense_v(dense_size, 0.0f);
  std::vector<float> user_gmf_m(net_.user_gmf.size(), 0.0f), user_gmf_v(net_.user_gmf.size(), 0.0f);
  std::vector<float> item_gmf_m(net_.item_gmf.size(), 0.0f), item_gmf_v(net_.item_gmf.size(), 0.0f);
  std::vector<float> user_mlp_m(net_.user_mlp.size(), 0.0f), user_mlp_v(net_.user_mlp.size(), 0.0f);
  std::vector<float> item_mlp_m(net_.item_mlp.size(), 0.0f), item_mlp_v(net_.item_mlp.size(), 0.0f);

  // Per-batch buffers. A batch has up to batch_size samples = rows (bce) or 2 rows per
  // pair (bpr: the slice's positive rows, then its negative rows).
  const std::size_t rows_per_sample = bpr ? 2 : 1;
  const std::size_t max_slices = (batch_size + kSliceSamples - 1) / kSliceSamples;
  const std::size_t max_rows = batch_size * rows_per_sample;
  std::vector<ncf::Workspace> workspaces(max_slices);
  std::vector<float> slice_grads(max_slices * dense_size);
  std::vector<double> slice_loss(max_slices);
  std::vector<UserIndex> row_users(max_rows);
  std::vector<ItemIndex> row_items(max_rows);
  std::vector<float> row_dlogits(max_rows);
  std::vector<float> d_user_gmf(max_rows * f), d_item_gmf(max_rows * f);
  std::vector<float> d_user_mlp(max_rows * m), d_item_mlp(max_rows * m);
  RowGroups user_groups(n_users), item_groups(n_items);

  std::vector<ItemIndex> drawn(n_positives * negatives);
  std::vector<Sample> samples;
  // Threads only pay when a batch has real work: each batch has two parallel regions,
  // and a barrier costs more than a small batch's arithmetic (the thread count does not
  // change the result, so this is free to choose).
  std::size_t flops_per_row = f;
  for (std::size_t l = 0; l < shape_.hidden.size(); ++l) {
    flops_per_row += shape_.LayerInput(l) * shape_.hidden[l];
  }
  const int batch_threads = batch_size * rows_per_sample * flops_per_row * 6 >= (1u << 20) ? threads : 1;
  const std::uint64_t negative_seed = DeriveSeed(ctx.seed, 2);
  const std::uint64_t shuffle_seed = DeriveSeed(ctx.seed, 3);
  const std::uint64_t dropout_seed = DeriveSeed(ctx.seed, 4);
  std::uint64_t step = 0;

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    // Negatives: chunks of positives, each with its own stream (thread-count free).
    const std::size_t n_chunks = (n_positives + kNegativeChunk - 1) / kNegativeChunk;
    ParallelFor<std::size_t>(0, n_chunks, threads, [&](std::size_t chunk) {
      Rng rng(DeriveSeed(negative_seed, (static_cast<std::uint64_t>(epoch) << 32) + chunk));
      const std::size_t end = std::min(n_positives, (chunk + 1) * kNegativeChunk);
      for (std::size_t k = chunk * kNegativeChunk; k < end; ++k) {
        const UserIndex user = positive_users[k];
        const std::uint32_t* row = seen.indices.data() + seen.indptr[user];
        const std::size_t length = seen.indptr[user + 1] - seen.indptr[user];
        for (std::size_t n = 0; n < negatives; ++n) {
          ItemIndex item = kInvalidIndex;
          for (int attempt = 0; attempt < kNegativeTries; ++attempt) {
            const auto candidate = static_cast<ItemIndex>(rng.Below(n_items));
            if (!SortedContains(row, length, candidate)) {
              item = candidate;
              break;
            }
          }
          drawn[k * negatives + n] = item;
        }
      }
    });
    samples.clear();
    samples.reserve(n_positives * (bpr ? negatives : negatives + 1));
    for (std::size_t k = 0; k < n_positives; ++k) {
      if (!bpr) samples.push_back({positive_users[k], positive_items[k], 1});
      for (std::size_t n = 0; n < negatives; ++n) {
        const ItemIndex negative = drawn[k * negatives + n];
        if (negative == kInvalidIndex) continue;
        if (bpr) {
          samples.push_back({positive_users[k], positive_items[k], negative});
        } else {
          samples.push_back({positive_users[k], negative, 0});
        }
      }
    }
    {
      Rng rng(DeriveSeed(shuffle_seed, static_cast<std::uint64_t>(epoch)));
      for (std::size_t k = samples.size(); k > 1; --k) {
        std::swap(samples[k - 1], samples[rng.Below(k)]);
      }
    }

    double epoch_loss = 0;
    for (std::size_t begin = 0; begin < samples.size(); begin += batch_size) {
      const std::size_t count = std::min(batch_size, samples.size() - begin);
      const std::size_t n_slices = (count + kSliceSamples - 1) / kSliceSamples;
      const float scale = 1.0f / static_cast<float>(count);  // the batch mean
      ++step;
      // Rows of the batch: slice s holds rows [s * 64 * rows_per_sample, ...).
      const std::size_t n_rows = count * rows_per_sample;
      for (std::size_t s = 0; s < n_slices; ++s) {
        const std::size_t first = s * kSliceSamples;
        const std::size_t length = std::min(kSliceSamples, count - first);
        const std::size_t row0 = first * rows_per_sample;
        for (std::size_t k = 0; k < length; ++k) {
          const Sample& sample = samples[begin + first + k];
          row_users[row0 + k] = sample.user;
          row_items[row0 + k] = sample.a;
          if (bpr) {
            row_users[row0 + length + k] = sample.user;
            row_items[row0 + length + k] = sample.b;
          }
        }
      }
      ParallelFor<std::size_t>(0, n_slices, batch_threads, [&](std::size_t s) {
        const std::size_t first = s * kSliceSamples;
        const std::size_t length = std::min(kSliceSamples, count - first);
        const std::size_t row0 = first * rows_per_sample;
        const std::size_t rows = length * rows_per_sample;
        std::span<const UserIndex> users(row_users.data() + row0, rows);
        std::span<const ItemIndex> items(row_items.data() + row0, rows);
        ncf::Workspace& ws = workspaces[s];
        Rng rng(DeriveSeed(dropout_seed, step * 4096 + s));
        ncf::Forward(net_, users, items, dropout, dropout > 0 ? &rng : nullptr, ws);
        float* dlogits = row_dlogits.data() + row0;
        double loss = 0;
        if (bpr) {
          for (std::size_t k = 0; k < length; ++k) {
            const float x = ws.logits[static_cast<Eigen::Index>(k)] -
                            ws.logits[static_cast<Eigen::Index>(length + k)];
            loss += Softplus(-x);
            const float z = Sigmoid(-x) * scale;
            dlogits[k] = -z;
            dlogits[length + k] = z;
          }
        } else {
          for (std::size_t k = 0; k < length; ++k) {
            const float s_k = ws.logits[static_cast<Eigen::Index>(k)];
            const float label = static_cast<float>(samples[begin + first + k].b);
            loss += Softplus(s_k) - label * s_k;
            dlogits[k] = (Sigmoid(s_k) - label) * scale;
          }
        }
        slice_loss[s] = loss;
        float* grad = slice_grads.data() + s * dense_size;
        std::fill_n(grad, dense_size, 0.0f);
        ncf::Backward(net_, users, items, dlogits, ws, grad,
                      f > 0 ? d_user_gmf.data() + row0 * f : nullptr,
                      f > 0 ? d_item_gmf.data() + row0 * f : nullptr,
                      m > 0 ? d_user_mlp.data() + row0 * m : nullptr,
                      m > 0 ? d_item_mlp.data() + row0 * m : nullptr);
      });
      for (std::size_t s = 0; s < n_slices; ++s) epoch_loss += slice_loss[s];

      const double t = static_cast<double>(step);
      const AdamStep adam{beta1, beta2, eps,
                          static_cast<float>(lr / (1.0 - std::pow(double{beta1}, t))),
                          static_cast<float>(std::sqrt(1.0 - std::pow(double{beta2}, t)))};
      user_groups.Build(std::span<const std::uint32_t>(row_users.data(), n_rows));
      item_groups.Build(std::span<const std::uint32_t>(row_items.data(), n_rows));
      // One parallel pass: dense chunks (slice gradients summed in slice order), then
      // the touched user rows, then the touched item rows. Tasks are independent.
      const std::size_t dense_tasks = (dense_size + kDenseChunk - 1) / kDenseChunk;
      const std::size_t n_tasks = dense_tasks + user_groups.size() + item_groups.size();
      ParallelFor<std::size_t>(
          0, n_tasks, batch_threads,
          [&](std::size_t task) {
            if (task < dense_tasks) {
              const std::size_t from = task * kDenseChunk;
              const std::size_t to = std::min(dense_size, from + kDenseChunk);
              float g[kDenseChunk];
              for (std::size_t k = from; k < to; ++k) {
                float sum = slice_grads[k];
                for (std::size_t s = 1; s < n_slices; ++s) sum += slice_grads[s * dense_size + k];
                g[k - from] = sum + weight_decay * net_.dense[k];
              }
              adam.Apply(net_.dense.data() + from, dense_m.data() + from, dense_v.data() + from, g,
                         to - from);
              return;
            }
            float scratch[1024];  // a row's gradient (factors <= 1024 by the field ranges)
            if (task < dense_tasks + user_groups.size()) {
              const std::size_t g = task - dense_tasks;
              const std::uint32_t row = user_groups.key(g);
              UpdateEmbeddingRow(net_.user_gmf, user_gmf_m, user_gmf_v, f, row,
                                 user_groups.members(g), d_user_gmf, reg, adam, scratch);
              UpdateEmbeddingRow(net_.user_mlp, user_mlp_m, user_mlp_v, m, row,
                                 user_groups.members(g), d_user_mlp, reg, adam, scratch);
            } else {
              const std::size_t g = task - dense_tasks - user_groups.size();
              const std::uint32_t row = item_groups.key(g);
              UpdateEmbeddingRow(net_.item_gmf, item_gmf_m, item_gmf_v, f, row,
                                 item_groups.members(g), d_item_gmf, reg, adam, scratch);
              UpdateEmbeddingRow(net_.item_mlp, item_mlp_m, item_mlp_v, m, row,
                                 item_groups.members(g), d_item_mlp, reg, adam, scratch);
            }
          },
          Schedule::kDynamic, 16);
    }
    const double loss = samples.empty() ? 0.0 : epoch_loss / static_cast<double>(samples.size());
    if (!std::isfinite(loss)) {
      throw InvalidArgument("ncf: training diverged (non-finite loss); lower lr (now " +
                            p.values().at("lr") + ")");
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.log().Debug("ncf epoch {}/{}: loss {:.5f}, {:.3f} s", epoch, epochs, loss, seconds);
    if (callback) {
      PrepareScoring();
      EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, loss);
      callback(*this, report);
    }
  }
  PrepareScoring();
}

void NcfModel::PrepareScoring() {
  item_first_layer_.clear();
  if (!shape_.use_mlp || net_.n_items == 0) return;
  const std::size_t m = shape_.mlp_factors;
  const auto h1 = static_cast<Eigen::Index>(shape_.hidden[0]);
  const auto n = static_cast<Eigen::Index>(net_.n_items);
  item_first_layer_.resize(net_.n_items * shape_.hidden[0]);
  // W_1 is h1 x 2m row-major: the item part is its columns [m, 2m).
  ConstMap weight(net_.dense.data() + net_.layout.weight[0], h1, static_cast<Eigen::Index>(2 * m));
  ConstVectorMap bias(net_.dense.data() + net_.layout.bias[0], h1);
  ConstMap items(net_.item_mlp.data(), n, static_cast<Eigen::Index>(m));
  Eigen::Map<RowMatrix> out(item_first_layer_.data(), n, h1);
  out.noalias() = items * weight.rightCols(static_cast<Eigen::Index>(m)).transpose();
  out.rowwise() += bias.transpose();
}

void NcfModel::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const std::size_t n = n_items();
  if (users.empty() || n == 0) return;
  const std::size_t f = shape_.GmfWidth();
  const std::size_t m = shape_.use_mlp ? shape_.mlp_factors : 0;
  const float out_bias = net_.dense.empty() ? 0.0f : net_.dense[net_.layout.out_bias];
  std::fill(out, out + users.size() * n, out_bias);
  if (net_.dense.empty() || net_.n_items != n) return;  // not trained
  const float* out_w = net_.dense.data() + net_.layout.out_weight;
  auto known = [&](UserIndex user) { return user < net_.n_users; };
  if (f > 0) {
    // GMF: s_g(u, i) = (w_g (.) p_u) . q_i, one sgemm for the batch.
    std::vector<float> block(users.size() * f, 0.0f);
    for (std::size_t row = 0; row < users.size(); ++row) {
      if (!known(users[row])) continue;
      const float* p = net_.user_gmf.data() + std::size_t{users[row]} * f;
      for (std::size_t c = 0; c < f; ++c) block[row * f + c] = out_w[c] * p[c];
    }
    kernels::GemmNT(users.size(), n, f, 1.0f, block.data(), net_.item_gmf.data(), 1.0f, out);
  }
  if (m == 0) return;
  const std::size_t layers = shape_.hidden.size();
  const auto h1 = static_cast<Eigen::Index>(shape_.hidden[0]);
  ConstMap first(net_.dense.data() + net_.layout.weight[0], h1, static_cast<Eigen::Index>(2 * m));
  ConstVectorMap final_w(out_w + f, static_cast<Eigen::Index>(shape_.hidden.back()));
  Eigen::VectorXf user_part(h1);
  Eigen::VectorXf scores;
  RowMatrix a, b;
  for (std::size_t row = 0; row < users.size(); ++row) {
    if (known(users[row])) {
      ConstVectorMap p(net_.user_mlp.data() + std::size_t{users[row]} * m,
                       static_cast<Eigen::Index>(m));
      user_part.noalias() = first.leftCols(static_cast<Eigen::Index>(m)) * p;
    } else {
      user_part.setZero();
    }
    float* scores_out = out + row * n;
    for (std::size_t from = 0; from < n; from += kScoreBlock) {
      const auto count = static_cast<Eigen::Index>(std::min(kScoreBlock, n - from));
      a = (ConstMap(item_first_layer_.data() + from * shape_.hidden[0], count, h1).rowwise() +
           user_part.transpose())
              .cwiseMax(0.0f);
      for (std::size_t l = 1; l < layers; ++l) {
        const auto width = static_cast<Eigen::Index>(shape_.hidden[l]);
        ConstVectorMap bias(net_.dense.data() + net_.layout.bias[l], width);
        b.resize(count, width);
        ncf::Gemm(false, true, static_cast<std::size_t>(count), shape_.hidden[l], shape_.hidden[l - 1],
                  a.data(), net_.dense.data() + net_.layout.weight[l], 0.0f, b.data());
        b.rowwise() += bias.transpose();
        a = b.cwiseMax(0.0f);
      }
      scores.noalias() = a * final_w;
      for (Eigen::Index k = 0; k < count; ++k) scores_out[from + static_cast<std::size_t>(k)] += scores[k];
    }
  }
}

void NcfModel::SaveState(ModelWriter& writer) const {
  writer.Write<std::uint64_t>(net_.n_users);
  writer.Write<std::uint64_t>(net_.n_items);
  writer.WriteVector(net_.user_gmf);
  writer.WriteVector(net_.item_gmf);
  writer.WriteVector(net_.user_mlp);
  writer.WriteVector(net_.item_mlp);
  writer.WriteVector(net_.dense);
}

void NcfModel::LoadState(ModelReader& reader) {
  net_.shape = shape_;
  net_.layout = ncf::DenseLayout::For(shape_);
  net_.n_users = reader.Read<std::uint64_t>();
  net_.n_items = reader.Read<std::uint64_t>();
  net_.user_gmf = reader.ReadVector<float>();
  net_.item_gmf = reader.ReadVector<float>();
  net_.user_mlp = reader.ReadVector<float>();
  net_.item_mlp = reader.ReadVector<float>();
  net_.dense = reader.ReadVector<float>();
  const std::size_t f = shape_.GmfWidth();
  const std::size_t m = shape_.use_mlp ? shape_.mlp_factors : 0;
  if (net_.n_users != n_users() || net_.n_items != n_items() ||
      net_.user_gmf.size() != net_.n_users * f || net_.item_gmf.size() != net_.n_items * f ||
      net_.user_mlp.size() != net_.n_users * m || net_.item_mlp.size() != net_.n_items * m ||
      net_.dense.size() != net_.layout.size) {
    throw FormatError(reader.source() + ": ncf network does not match the model's shape and spec");
  }
  PrepareScoring();
}

}  // namespace recforge::models
