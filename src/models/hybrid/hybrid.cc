#include "hybrid/hybrid.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"

namespace recforge::models {
namespace {

// Draws before a negative is given up (a user who has seen nearly every item).
constexpr int kNegativeTries = 8;
// Fold-in: passes over the history.
constexpr int kFoldInPasses = 20;
// mode=batch: a batch's negative search runs in parallel from about this many
// (positives x factors x draws) on.
constexpr double kParallelSearchWork = 1 << 18;

enum class Loss { kBpr, kWarp, kWarpKos };

Loss ParseLoss(const std::string& name) {
  if (name == "bpr") return Loss::kBpr;
  if (name == "warp") return Loss::kWarp;
  return Loss::kWarpKos;
}

// Row r's features and weights (CSR).
struct FeatureRows {
  std::vector<std::uint64_t> ptr{0};
  std::vector<std::uint32_t> feature;
  std::vector<float> weight;
  std::size_t rows() const { return ptr.size() - 1; }
};

// Embeddings (and biases) of one side, with their Adagrad accumulators.
struct Table {
  std::vector<float> embedding, embedding_g;  // features x k
  std::vector<float> bias, bias_g;            // features (empty: no biases)
};

inline bool SortedContains(const std::uint32_t* base, std::size_t n, std::uint32_t key) {
  if (n == 0) return false;
  while (n > 1) {
    const std::size_t half = n / 2;
    base = base[half] <= key ? base + half : base;
    n -= half;
  }
  return *base == key;
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline double SoftplusOfNegative(double x) {
  return x > 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}

// One positive after its negative search: the step the apply phase runs.
struct Sample {
  UserIndex user = 0;
  ItemIndex positive = 0;
  ItemIndex negative = kInvalidIndex;  // kInvalidIndex: no update
  float weight = 0;                    // WARP rank weight (1 for BPR)
};

// Everything a step reads and writes.
class Trainer {
 public:
  std::size_t k = 0;
  Loss loss = Loss::kWarp;
  bool adagrad = true;
  float lr = 0.05f;
  float user_alpha = 0, item_alpha = 0;
  int max_sampled = 10, kos_k = 5, kos_n = 10;
  const CsrMatrix* seen = nullptr;
  const FeatureRows* user_rows = nullptr;
  const FeatureRows* item_rows = nullptr;
  Table* users = nullptr;
  Table* items = nullptr;
  const std::vector<ItemIndex>* pool = nullptr;  // negative candidates: items with interactions

  // out = sum of w e over the row's features; returns the sum of w b.
  static float Represent(const FeatureRows& rows, const Table& table, std::size_t k, std::uint32_t row,
                         float* out) {
    std::fill_n(out, k, 0.0f);
    float bias = 0.0f;
    for (std::uint64_t at = rows.ptr[row]; at < rows.ptr[row + 1]; ++at) {
      const std::uint32_t f = rows.feature[at];
      const float w = rows.weight[at];
      kernels::Axpy(w, table.embedding.data() + std::size_t{f} * k, out, k);
      if (!table.bias.empty()) bias += w * table.bias[f];
    }
    return bias;
  }

  bool Seen(UserIndex user, ItemIndex item) const {
    const std::uint64_t begin = seen->indptr[user];
    return SortedContains(seen->indices.data() + begin, seen->indptr[user + 1] - begin, item);
  }

  ItemIndex DrawNegative(UserIndex user, Rng& rng) const {
    for (int attempt = 0; attempt < kNegativeTries; ++attempt) {
      const ItemIndex item = (*pool)[rng.Below(pool->size())];
      if (!Seen(user, item)) return item;
    }
    return kInvalidIndex;
  }

  // The negative search of positive (user, item): k-OS positive choice, then one BPR
  // negative or the first WARP violator. `scratch` holds 3k floats.
  Sample Search(UserIndex user, ItemIndex item, Rng& rng, float* scratch) const {
    Sample sample;
    sample.user = user;
    sample.positive = item;
    if (loss == Loss::kBpr) {
      sample.negative = DrawNegative(user, rng);
      sample.weight = 1.0f;
      return sample;
    }
    float* p = scratch;
    float* q = scratch + k;
    Represent(*user_rows, *users, k, user, p);
    auto score = [&](ItemIndex i) {
      const float bias = Represent(*item_rows, *items, k, i, q);
      return bias + kernels::Dot(p, q, k);
    };
    float positive_score = 0.0f;
    if (loss == Loss::kWarpKos) {
      // The kos_k-th best of kos_n positives drawn from the user's items.
      const std::uint64_t begin = seen->indptr[user];
      const std::uint64_t length = seen->indptr[user + 1] - begin;
      thread_local std::vector<std::pair<float, ItemIndex>> drawn;
      drawn.clear();
      for (int d = 0; d < kos_n; ++d) {
        const ItemIndex candidate = seen->indices[begin + rng.Below(length)];
        drawn.emplace_back(score(candidate), candidate);
      }
      std::sort(drawn.begin(), drawn.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      const auto& chosen = drawn[std::min<std::size_t>(static_cast<std::size_t>(kos_k), drawn.size()) - 1];
      sample.positive = chosen.second;
      positive_score = chosen.first;
    } else {
      positive_score = score(item);
    }
    const double candidates =
        static_cast<double>(pool->size()) - static_cast<double>(seen->indptr[user + 1] - seen->indptr[user]);
    for (int draws = 1; draws <= max_sampled; ++draws) {
      const ItemIndex negative = DrawNegative(user, rng);
      if (negative == kInvalidIndex) break;
      if (score(negative) > positive_score - 1.0f) {
        sample.negative = negative;
        sample.weight = static_cast<float>(std::log(std::max(1.0, std::floor((candidates - 1.0) / draws))));
        if (sample.weight <= 0.0f) sample.negative = kInvalidIndex;
        break;
      }
    }
    return sample;
  }

  // Moves k floats `param` against scale * direction + alpha * param (Adagrad or SGD).
  void Update(float* param, float* accum, const float* direction, float scale, float alpha) const {
    if (adagrad) {
      for (std::size_t d = 0; d < k; ++d) {
        const float g = scale * direction[d] + alpha * param[d];
        param[d] -= lr * g / std::sqrt(accum[d]);
        accum[d] += g * g;
      }
    } else {
      for (std::size_t d = 0; d < k; ++d) param[d] -= lr * (scale * direction[d] + alpha * param[d]);
    }
  }
  void UpdateBias(float& param, float& accum, float g) const {
    if (adagrad) {
      param -= lr * g / std::sqrt(accum);
      accum += g * g;
    } else {
      param -= lr * g;
    }
  }

  // Applies one sample with fresh representations; returns its loss. `scratch`: 4k floats.
  double Apply(const Sample& sample, float* scratch) const {
    if (sample.negative == kInvalidIndex) return 0.0;
    float* p = scratch;
    float* qi = scratch + k;
    float* qj = scratch + 2 * k;
    float* diff = scratch + 3 * k;
    Represent(*user_rows, *users, k, sample.user, p);
    const float bi = Represent(*item_rows, *items, k, sample.positive, qi);
    const float bj = Represent(*item_rows, *items, k, sample.negative, qj);
    for (std::size_t d = 0; d < k; ++d) diff[d] = qi[d] - qj[d];
    const float x = kernels::Dot(p, diff, k) + bi - bj;
    float c = 0.0f;  // d loss / d x = -c
    double value = 0.0;
    if (loss == Loss::kBpr) {
      c = Sigmoid(-x);
      value = SoftplusOfNegative(x);
    } else {
      const float hinge = 1.0f - x;
      if (hinge <= 0.0f) return 0.0;  // no longer violated with the fresh parameters
      c = sample.weight;
      value = static_cast<double>(sample.weight) * hinge;
    }
    // Gradients: d/dp = -c diff, d/dq_i = -c p, d/dq_j = c p, d/db_i = -c, d/db_j = c.
    const FeatureRows& ur = *user_rows;
    for (std::uint64_t at = ur.ptr[sample.user]; at < ur.ptr[sample.user + 1]; ++at) {
      const std::size_t f = ur.feature[at];
      Update(users->embedding.data() + f * k, users->embedding_g.data() + f * k, diff, -c * ur.weight[at],
             user_alpha);
    }
    auto item_side = [&](ItemIndex item, float sign) {
      const FeatureRows& ir = *item_rows;
      for (std::uint64_t at = ir.ptr[item]; at < ir.ptr[item + 1]; ++at) {
        const std::size_t f = ir.feature[at];
        const float w = ir.weight[at];
        Update(items->embedding.data() + f * k, items->embedding_g.data() + f * k, p, sign * c * w, item_alpha);
        UpdateBias(items->bias[f], items->bias_g[f], sign * c * w + item_alpha * items->bias[f]);
      }
    };
    item_side(sample.positive, -1.0f);
    item_side(sample.negative, 1.0f);
    return value;
  }
};

void InitTable(Table& table, std::size_t features, std::size_t k, bool biases, std::uint64_t seed) {
  table.embedding.resize(features * k);
  Rng rng(seed);
  const float scale = 1.0f / static_cast<float>(k);
  for (float& value : table.embedding) value = (rng.UniformFloat() - 0.5f) * scale;
  table.embedding_g.assign(features * k, 1.0f);
  if (biases) {
    table.bias.assign(features, 0.0f);
    table.bias_g.assign(features, 1.0f);
  }
}

}  // namespace

std::vector<ParamField> HybridModel::Fields() {
  return {
      IntParam("factors", 64, 1, 4096, "Embedding dimensions of every feature", {"k", "dim", "no_components"}),
      IntParam("epochs", 30, 1, 100000, "Passes over the training positives", {"iterations", "iters"}),
      ChoiceParam("loss", "warp", {"warp", "bpr", "warp-kos"},
                  "Ranking loss: warp (rank-weighted hinge), bpr (log-sigmoid), warp-kos (k-order statistic WARP)"),
      ChoiceParam("learning_schedule", "adagrad", {"adagrad", "sgd"},
                  "Per-feature learning rate: adagrad (lr / sqrt(sum of squared gradients)) or plain sgd",
                  {"schedule"}),
      FloatParam("lr", 0.05, 1e-6, 10, "Learning rate", {"learning_rate"}),
      FloatParam("lr_decay", 1.0, 0.1, 1, "sgd: lr factor per epoch (lr = lr0 * lr_decay^(epoch-1))"),
      FloatParam("user_alpha", 1e-6, 0, 100, "L2 penalty on user feature embeddings, per step"),
      FloatParam("item_alpha", 1e-6, 0, 100, "L2 penalty on item feature embeddings and biases, per step"),
      IntParam("max_sampled", 10, 1, 100000, "warp: negatives drawn per positive before giving up"),
      IntParam("kos_k", 5, 1, 1000, "warp-kos: the k-th best-scored of the drawn positives is used"),
      IntParam("kos_n", 10, 1, 1000, "warp-kos: positives drawn per step"),
      BoolParam("item_ids", true,
                "Item id features for items with training interactions (off: metadata only; an item "
                "without known metadata keeps its id)"),
      BoolParam("categories", true, "category=<name> features (genres / categories)"),
      BoolParam("metadata", true, "Features from the other metadata fields (decade, store, price bucket, ...)"),
      BoolParam("title_tokens", false, "title=<token> features from the title words"),
      IntParam("min_feature_items", 2, 1, 1000000000, "Metadata features on fewer items are dropped"),
      BoolParam("normalize", true, "Feature weights of an item are 1 / its number of features (else 1)"),
      ChoiceParam("mode", "batch", {"batch", "hogwild"},
                  "Parallelism: batch (parallel negative search, ordered updates: deterministic) or hogwild "
                  "(lock-free, not deterministic)"),
      IntParam("batch", 1024, 1, 1 << 24,
               "mode=batch: positives per mini-batch (the model depends on it, not on the thread count)"),
  };
}

hybrid::FeatureOptions HybridModel::FeatureOptionsFromParams() const {
  hybrid::FeatureOptions options;
  options.categories = params().Bool("categories");
  options.metadata = params().Bool("metadata");
  options.title_tokens = params().Bool("title_tokens");
  return options;
}

void HybridModel::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  const auto& p = params();
  factors_ = static_cast<std::size_t>(p.Int("factors"));
  const std::size_t k = factors_;
  const std::size_t n_users = data.n_users;
  const std::size_t n_items = data.n_items;
  const CsrMatrix& seen_matrix = *data.user_items;
  const int epochs = static_cast<int>(p.Int("epochs"));
  const bool normalize = p.Bool("normalize");
  const bool item_ids = p.Bool("item_ids");
  const auto min_items = static_cast<std::size_t>(p.Int("min_feature_items"));

  // Items with training interactions: the negative pool and the id features.
  has_interactions_.assign(n_items, 0);
  std::vector<ItemIndex> pool;
  for (std::size_t item = 0; item < n_items; ++item) {
    if (data.item_users.RowLength(item) > 0) {
      has_interactions_[item] = 1;
      pool.push_back(static_cast<ItemIndex>(item));
    }
  }

  // Metadata vocabulary: names on >= min_feature_items of the catalog's items.
  std::vector<std::vector<std::string>> item_names(n_items);
  if (data.item_info != nullptr && data.item_ids != nullptr) {
    const hybrid::FeatureOptions options = FeatureOptionsFromParams();
    data.item_ids->BuildIndex();
    for (const auto& info : *data.item_info) {
      const auto index = data.item_ids->Find(info.item_id);
      if (!index || *index >= n_items) continue;  // a metadata-only item outside the model
      auto names = hybrid::ItemFeatureNames(info, options);
      auto& row = item_names[*index];
      row.insert(row.end(), names.begin(), names.end());
      std::sort(row.begin(), row.end());
      row.erase(std::unique(row.begin(), row.end()), row.end());
    }
  }
  std::map<std::string, std::size_t> counts;
  for (const auto& names : item_names) {
    for (const auto& name : names) ++counts[name];
  }
  feature_names_.clear();
  feature_index_.clear();
  for (const auto& [name, count] : counts) {
    if (count < min_items) continue;
    feature_index_.emplace(name, static_cast<std::uint32_t>(feature_names_.size()));
    feature_names_.push_back(name);
  }

  // Item feature rows: [id feature] + known metadata features. Id features are numbered
  // first (in item order), metadata feature v is row n_id + v.
  std::vector<std::vector<std::uint32_t>> metadata_rows(n_items);
  std::vector<char> wants_id(n_items, 0);
  std::size_t n_id = 0;
  for (std::size_t item = 0; item < n_items; ++item) {
    for (const auto& name : item_names[item]) {
      if (auto it = feature_index_.find(name); it != feature_index_.end()) metadata_rows[item].push_back(it->second);
    }
    wants_id[item] = has_interactions_[item] && (item_ids || metadata_rows[item].empty());
    n_id += wants_id[item] ? 1 : 0;
  }
  item_names.clear();
  FeatureRows item_rows;
  std::uint32_t next_id = 0;
  for (std::size_t item = 0; item < n_items; ++item) {
    const std::size_t count = metadata_rows[item].size() + (wants_id[item] ? 1 : 0);
    const float w = normalize && count > 0 ? 1.0f / static_cast<float>(count) : 1.0f;
    if (wants_id[item]) {
      item_rows.feature.push_back(next_id++);
      item_rows.weight.push_back(w);
    }
    for (std::uint32_t v : metadata_rows[item]) {
      item_rows.feature.push_back(static_cast<std::uint32_t>(n_id + v));
      item_rows.weight.push_back(w);
    }
    item_rows.ptr.push_back(item_rows.feature.size());
  }
  // User feature rows: the user id (the training data carries no user attributes).
  FeatureRows user_rows;
  user_rows.feature.resize(n_users);
  std::iota(user_rows.feature.begin(), user_rows.feature.end(), 0u);
  user_rows.weight.assign(n_users, 1.0f);
  user_rows.ptr.resize(n_users + 1);
  std::iota(user_rows.ptr.begin(), user_rows.ptr.end(), std::uint64_t{0});

  Table users, items;
  InitTable(users, n_users, k, false, DeriveSeed(ctx.seed, 1));
  InitTable(items, n_id + feature_names_.size(), k, true, DeriveSeed(ctx.seed, 2));

  Trainer trainer;
  trainer.k = k;
  trainer.loss = ParseLoss(p.Choice("loss"));
  trainer.adagrad = p.Choice("learning_schedule") == "adagrad";
  trainer.user_alpha = static_cast<float>(p.Float("user_alpha"));
  trainer.item_alpha = static_cast<float>(p.Float("item_alpha"));
  trainer.max_sampled = static_cast<int>(p.Int("max_sampled"));
  trainer.kos_k = static_cast<int>(p.Int("kos_k"));
  trainer.kos_n = static_cast<int>(p.Int("kos_n"));
  trainer.seen = &seen_matrix;
  trainer.user_rows = &user_rows;
  trainer.item_rows = &item_rows;
  trainer.users = &users;
  trainer.items = &items;
  trainer.pool = &pool;

  // Writes P, Q and the item biases from the feature tables.
  auto materialise = [&] {
    user_factors_.assign(n_users * k, 0.0f);
    item_factors_.assign(n_items * k, 0.0f);
    item_bias_.assign(n_items, 0.0f);
    user_bias_.clear();
    global_bias_ = 0.0f;
    ParallelFor<std::size_t>(0, n_users, ctx.threads, [&](std::size_t user) {
      if (seen_matrix.RowLength(user) == 0) return;  // no interactions: a zero vector
      Trainer::Represent(user_rows, users, k, static_cast<std::uint32_t>(user), user_factors_.data() + user * k);
    });
    ParallelFor<std::size_t>(0, n_items, ctx.threads, [&](std::size_t item) {
      item_bias_[item] =
          Trainer::Represent(item_rows, items, k, static_cast<std::uint32_t>(item), item_factors_.data() + item * k);
    });
    feature_embeddings_.assign(items.embedding.begin() + static_cast<std::ptrdiff_t>(n_id * k), items.embedding.end());
    feature_bias_.assign(items.bias.begin() + static_cast<std::ptrdiff_t>(n_id), items.bias.end());
    FactorsChanged();
  };

  // Positives: entry e of the CSR is (entry_user[e], indices[e]).
  const std::size_t nnz = seen_matrix.indices.size();
  std::vector<UserIndex> entry_user(nnz);
  for (std::size_t user = 0; user < n_users; ++user) {
    for (std::uint64_t e = seen_matrix.indptr[user]; e < seen_matrix.indptr[user + 1]; ++e) {
      entry_user[e] = static_cast<UserIndex>(user);
    }
  }
  std::vector<std::uint32_t> order(nnz);
  const bool hogwild = p.Choice("mode") == "hogwild";
  const auto batch = static_cast<std::size_t>(p.Int("batch"));
  const int threads = std::max(1, ctx.threads);
  const float lr0 = static_cast<float>(p.Float("lr"));
  const double lr_decay = p.Float("lr_decay");
  std::vector<Sample> samples(hogwild ? 0 : std::min(batch, nnz));
  std::vector<float> apply_scratch(4 * k);

  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    trainer.lr = trainer.adagrad ? lr0 : static_cast<float>(lr0 * std::pow(lr_decay, epoch - 1));
    std::iota(order.begin(), order.end(), 0u);
    const std::uint64_t epoch_seed = DeriveSeed(ctx.seed, 0x6879627200000000ULL + static_cast<std::uint64_t>(epoch));
    {
      Rng shuffle(epoch_seed);
      for (std::size_t at = nnz; at > 1; --at) std::swap(order[at - 1], order[shuffle.Below(at)]);
    }
    double loss = 0.0;
    std::uint64_t updates = 0;
    if (pool.empty() || nnz == 0) {
      // Nothing to rank against.
    } else if (!hogwild) {
      for (std::size_t begin = 0; begin < nnz; begin += batch) {
        const std::size_t end = std::min(nnz, begin + batch);
        // A parallel region costs a wake-up of every thread (milliseconds on a loaded
        // machine): small searches (bpr's single draw, tiny data) stay on this thread.
        // The result is the same either way (one random stream per position).
        const double search_work = static_cast<double>(end - begin) * static_cast<double>(k) *
                                   (trainer.loss == Loss::kBpr ? 1.0 : trainer.max_sampled);
        ParallelFor<std::size_t>(
            begin, end, search_work >= kParallelSearchWork ? threads : 1,
            [&](std::size_t position) {
              thread_local std::vector<float> scratch;
              scratch.resize(3 * k);
              Rng rng(DeriveSeed(epoch_seed, position));
              const std::uint32_t e = order[position];
              samples[position - begin] = trainer.Search(entry_user[e], seen_matrix.indices[e], rng, scratch.data());
            },
            Schedule::kDynamic, 16);
        for (std::size_t s = 0; s < end - begin; ++s) {
          loss += trainer.Apply(samples[s], apply_scratch.data());
          updates += samples[s].negative != kInvalidIndex ? 1 : 0;
        }
      }
    } else {
      // Hogwild: contiguous shares of the shuffled positives, updates without locks.
      std::vector<double> thread_loss(static_cast<std::size_t>(threads), 0.0);
      std::vector<std::uint64_t> thread_updates(static_cast<std::size_t>(threads), 0);
      ParallelRegion(threads, [&](int t) {
        std::vector<float> scratch(4 * k);
        const std::size_t begin = nnz * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
        const std::size_t end = nnz * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
        for (std::size_t position = begin; position < end; ++position) {
          Rng rng(DeriveSeed(epoch_seed, position));
          const std::uint32_t e = order[position];
          const Sample sample = trainer.Search(entry_user[e], seen_matrix.indices[e], rng, scratch.data());
          thread_loss[static_cast<std::size_t>(t)] += trainer.Apply(sample, scratch.data());
          thread_updates[static_cast<std::size_t>(t)] += sample.negative != kInvalidIndex ? 1 : 0;
        }
      });
      for (int t = 0; t < threads; ++t) {
        loss += thread_loss[static_cast<std::size_t>(t)];
        updates += thread_updates[static_cast<std::size_t>(t)];
      }
    }
    loss = nnz > 0 ? loss / static_cast<double>(nnz) : 0.0;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double update_fraction = nnz > 0 ? static_cast<double>(updates) / static_cast<double>(nnz) : 0.0;
    ctx.log().Debug("hybrid epoch {}/{}: loss {:.5f}, updates {:.3f}, {:.3f} s", epoch, epochs, loss,
                    update_fraction, seconds);
    if (callback) {
      materialise();
      EpochReport report = EpochReport::WithLoss(epoch, epochs, seconds, loss);
      report.metrics["updates"] = update_fraction;
      callback(*this, report);
    }
  }
  materialise();
  UseSingleThreadedBlas();
}

bool HybridModel::ContentVector(const data::ItemInfo& info, float* vector, float* bias) const {
  const std::size_t k = factors_;
  std::fill_n(vector, k, 0.0f);
  *bias = 0.0f;
  std::vector<std::uint32_t> known;
  for (const auto& name : hybrid::ItemFeatureNames(info, FeatureOptionsFromParams())) {
    if (auto it = feature_index_.find(name); it != feature_index_.end()) known.push_back(it->second);
  }
  if (known.empty()) return false;
  const float w = params().Bool("normalize") ? 1.0f / static_cast<float>(known.size()) : 1.0f;
  for (std::uint32_t v : known) {
    kernels::Axpy(w, feature_embeddings_.data() + std::size_t{v} * k, vector, k);
    *bias += w * feature_bias_[v];
  }
  return true;
}

bool HybridModel::FoldIn(std::span<const ItemIndex> items, std::span<const float>, float* user_vector,
                         float* user_bias) const {
  const std::size_t k = factors_;
  const std::size_t n = n_items();
  *user_bias = 0.0f;
  std::fill_n(user_vector, k, 0.0f);
  std::vector<ItemIndex> history;
  for (ItemIndex item : items) {
    if (item < n) history.push_back(item);
  }
  std::sort(history.begin(), history.end());
  history.erase(std::unique(history.begin(), history.end()), history.end());
  std::vector<ItemIndex> pool;
  for (std::size_t item = 0; item < n; ++item) {
    if (item < has_interactions_.size() && has_interactions_[item] &&
        !std::binary_search(history.begin(), history.end(), static_cast<ItemIndex>(item))) {
      pool.push_back(static_cast<ItemIndex>(item));
    }
  }
  if (history.empty() || pool.empty() || k == 0) return true;

  const Loss loss = ParseLoss(params().Choice("loss"));
  const bool adagrad = params().Choice("learning_schedule") == "adagrad";
  const float lr = static_cast<float>(params().Float("lr"));
  const float alpha = static_cast<float>(params().Float("user_alpha"));
  const int max_sampled = loss == Loss::kBpr ? 1 : static_cast<int>(params().Int("max_sampled"));
  std::vector<float> user(k, 0.0f), accum(k, 1.0f), diff(k);
  std::uint64_t seed = 0x68796272ULL;
  for (ItemIndex item : history) seed = Mix64(seed ^ item);
  Rng rng(seed);
  auto score = [&](ItemIndex item) { return kernels::Dot(user.data(), ItemVector(item), k) + item_bias_[item]; };
  for (int pass = 0; pass < kFoldInPasses; ++pass) {
    for (ItemIndex positive : history) {
      const float positive_score = score(positive);
      ItemIndex negative = kInvalidIndex;
      float c = 0.0f;
      for (int draws = 1; draws <= max_sampled; ++draws) {
        const ItemIndex candidate = pool[rng.Below(pool.size())];
        const float x = positive_score - score(candidate);
        if (loss == Loss::kBpr) {
          negative = candidate;
          c = Sigmoid(-x);
          break;
        }
        if (x < 1.0f) {
          negative = candidate;
          c = static_cast<float>(
              std::log(std::max(1.0, std::floor((static_cast<double>(pool.size()) - 1.0) / draws))));
          break;
        }
      }
      if (negative == kInvalidIndex || c <= 0.0f) continue;
      const float* qi = ItemVector(positive);
      const float* qj = ItemVector(negative);
      for (std::size_t d = 0; d < k; ++d) {
        const float g = -c * (qi[d] - qj[d]) + alpha * user[d];
        if (adagrad) {
          user[d] -= lr * g / std::sqrt(accum[d]);
          accum[d] += g * g;
        } else {
          user[d] -= lr * g;
        }
      }
    }
  }
  std::copy(user.begin(), user.end(), user_vector);
  return true;
}

void HybridModel::SaveExtra(ModelWriter& writer) const {
  writer.Write<std::uint64_t>(feature_names_.size());
  for (const auto& name : feature_names_) writer.WriteString(name);
  writer.WriteVector(feature_embeddings_);
  writer.WriteVector(feature_bias_);
  writer.WriteVector(has_interactions_);
}

void HybridModel::LoadExtra(ModelReader& reader) {
  const auto count = reader.Read<std::uint64_t>();
  feature_names_.clear();
  feature_index_.clear();
  for (std::uint64_t v = 0; v < count; ++v) {
    feature_names_.push_back(reader.ReadString());
    feature_index_.emplace(feature_names_.back(), static_cast<std::uint32_t>(v));
  }
  feature_embeddings_ = reader.ReadVector<float>();
  feature_bias_ = reader.ReadVector<float>();
  has_interactions_ = reader.ReadVector<std::uint8_t>();
  if (feature_embeddings_.size() != count * factors_ || feature_bias_.size() != count ||
      has_interactions_.size() != n_items()) {
    throw FormatError(reader.source() + ": hybrid model: feature tables do not match the model's shape");
  }
}

}  // namespace recforge::models
