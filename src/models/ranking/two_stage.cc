#include "two_stage.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "factor/factor_model.h"
#include "kernels.h"
#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/models/model_io.h"
#include "recforge/models/registry.h"

namespace recforge::models {
namespace {

constexpr std::uint32_t kStateVersion = 1;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kSecondsPerDay = 86400.0;
constexpr std::size_t kParallelRankerRows = 20000;  // ranker rows from which XGBoost uses ctx.threads

// Model sources, in feature order. A family that is not registered (item2vec before its
// group lands) is simply absent from the field table.
struct ModelSourceSpec {
  const char* family;
  long long default_count;
  // Defaults that differ from the sub-family's own (its tuned ml-100k spec).
  std::vector<std::pair<std::string, std::string>> defaults;
};
const std::vector<ModelSourceSpec>& ModelSourceSpecs() {
  static const std::vector<ModelSourceSpec> specs = {
      {"ials", 100, {{"factors", "128"}, {"alpha", "0.1"}}},
      {"itemknn", 100, {}},
      {"item2vec", 0, {}},
  };
  return specs;
}

bool Registered(const std::string& family) {
  for (const auto& row : ModelFamilies()) {
    if (row.name == family) return true;
  }
  return false;
}

bool Better(float score_a, ItemIndex a, float score_b, ItemIndex b) {
  return score_a > score_b || (score_a == score_b && a < b);
}

// Top-n of `scores` over items that are not seen, ties to the smaller index; NaN and
// -inf never enter. Writes 1-based ranks into rank[item] (which must be NaN there).
void SelectTop(const float* scores, std::size_t n_items, const std::vector<char>& seen, std::size_t n,
               std::vector<std::pair<float, ItemIndex>>& pool, std::vector<ItemIndex>& selected) {
  pool.clear();
  selected.clear();
  if (n == 0) return;
  for (std::size_t i = 0; i < n_items; ++i) {
    const float score = scores[i];
    if (seen[i] || std::isnan(score) || score == -std::numeric_limits<float>::infinity()) continue;
    pool.emplace_back(score, static_cast<ItemIndex>(i));
  }
  const std::size_t keep = std::min(n, pool.size());
  auto better = [](const auto& a, const auto& b) { return Better(a.first, a.second, b.first, b.second); };
  std::partial_sort(pool.begin(), pool.begin() + static_cast<std::ptrdiff_t>(keep), pool.end(), better);
  for (std::size_t k = 0; k < keep; ++k) selected.push_back(pool[k].second);
}

TrainingData WindowData(const data::Interactions& rows, const TrainingData& like, int threads) {
  TrainingData window;
  window.n_users = like.n_users;
  window.n_items = like.n_items;
  window.user_items = std::make_shared<const CsrMatrix>(
      CsrMatrix::FromCoordinates(like.n_users, like.n_items, rows.users, rows.items, rows.ratings, threads));
  window.item_users = window.user_items->Transpose();
  window.train = &rows;
  window.item_info = like.item_info;
  window.item_ids = like.item_ids;
  window.dataset_hash = like.dataset_hash;
  return window;
}

// Label rows not strictly later than the user's latest feature row (or, with `global`,
// the newest feature row).
std::size_t LeakingRows(const data::Interactions& features, const data::Interactions& labels, std::size_t n_users,
                        bool global) {
  constexpr Timestamp kNone = std::numeric_limits<Timestamp>::min();
  std::vector<Timestamp> last(n_users, kNone);
  Timestamp newest = kNone;
  for (std::size_t r = 0; r < features.size(); ++r) {
    if (features.users[r] < n_users) last[features.users[r]] = std::max(last[features.users[r]], features.times[r]);
    newest = std::max(newest, features.times[r]);
  }
  std::size_t leaks = 0;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    const Timestamp bound = global ? newest : (labels.users[r] < n_users ? last[labels.users[r]] : kNone);
    if (labels.times[r] <= bound) ++leaks;
  }
  return leaks;
}

}  // namespace

TimeWindows SplitTimeWindows(const data::Interactions& train, std::size_t n_users, bool global, double fraction) {
  TimeWindows windows;
  const std::size_t n = train.size();
  std::vector<char> is_label(n, 0);
  if (global) {
    std::vector<Timestamp> times(train.times);
    std::sort(times.begin(), times.end());
    if (n > 0) {
      const std::size_t cut = std::min(n - 1, static_cast<std::size_t>(std::floor((1.0 - fraction) * n)));
      const Timestamp from = times[cut];
      for (std::size_t r = 0; r < n; ++r) is_label[r] = train.times[r] >= from ? 1 : 0;
      if (from == times.front()) std::fill(is_label.begin(), is_label.end(), 0);  // one time: no later window
    }
  } else {
    std::vector<std::vector<RowIndex>> by_user(n_users);
    for (std::size_t r = 0; r < n; ++r) {
      if (train.users[r] < n_users) by_user[train.users[r]].push_back(r);
    }
    for (auto& rows : by_user) {
      if (rows.size() < 2) continue;
      std::sort(rows.begin(), rows.end(), [&](RowIndex a, RowIndex b) {
        if (train.times[a] != train.times[b]) return train.times[a] < train.times[b];
        return train.items[a] < train.items[b];
      });
      const std::size_t n_label =
          std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(fraction * static_cast<double>(rows.size()))));
      std::size_t cut = rows.size() - std::min(n_label, rows.size() - 1);
      // No time tie across the cut: the label window starts strictly later.
      while (cut > 0 && train.times[rows[cut - 1]] == train.times[rows[cut]]) --cut;
      if (cut == 0) continue;
      for (std::size_t k = cut; k < rows.size(); ++k) is_label[rows[k]] = 1;
    }
  }
  for (std::size_t r = 0; r < n; ++r) {
    auto& part = is_label[r] ? windows.labels : windows.features;
    part.Append(train.users[r], train.items[r], train.ratings[r], train.times[r]);
  }
  return windows;
}

std::vector<ParamField> TwoStageModel::Fields() {
  std::vector<ParamField> fields;
  for (const auto& source : ModelSourceSpecs()) {
    if (!Registered(source.family)) continue;
    fields.push_back(IntParam(source.family, source.default_count, 0, 100000,
                              fmt::format("Candidates from the {} sub-model (its top-N by user score); 0 = "
                                          "none (ials still feeds scores and emb when emb > 0)",
                                          source.family)));
  }
  fields.push_back(IntParam("emb", 50, 0, 100000,
                            "Candidates nearest (cosine over the ials item factors) to the user's last "
                            "`history` items; 0 = none"));
  fields.push_back(IntParam("cooc", 100, 0, 100000,
                            "Candidates co-occurring most with the user's last `history` items; 0 = none"));
  fields.push_back(IntParam("pop", 50, 0, 100000, "Most popular items added as candidates; 0 = none"));
  fields.push_back(IntParam("history", 10, 1, 10000, "Last N items of a user for the emb / cooc sources and "
                                                      "the similarity features"));
  fields.push_back(IntParam("cooc_neighbors", 200, 1, 1000000, "Co-occurring items kept per item"));
  fields.push_back(FloatParam("recent_days", 30, 0, 1e6, "Window of the recent-popularity feature, in days"));
  fields.push_back(ChoiceParam("ann", "auto", {"auto", "exact", "hnsw"},
                               "emb neighbour search: exact scan, HNSW graph (hnswlib), or auto = HNSW "
                               "from ann_min_items items on"));
  fields.push_back(IntParam("ann_min_items", 20000, 1, 1000000000, "auto: catalog size from which HNSW is used"));
  fields.push_back(IntParam("hnsw_m", 16, 2, 1000, "HNSW graph degree M"));
  fields.push_back(IntParam("hnsw_ef", 100, 1, 100000, "HNSW search breadth (construction uses 2 ef)"));
  fields.push_back(ChoiceParam("window", "user", {"user", "global"},
                               "Without a val part: label window = each user's latest interactions "
                               "(user) or all interactions after a global time cut (global)"));
  fields.push_back(FloatParam("val_fraction", 0.2, 0.01, 0.9,
                              "Share of the interactions carved out of train as the label window"));
  fields.push_back(IntParam("trees", 200, 1, 100000, "Boosting rounds of the LambdaMART ranker", {"rounds"}));
  fields.push_back(FloatParam("eta", 0.05, 1e-6, 1, "Ranker learning rate", {"learning_rate"}));
  fields.push_back(IntParam("max_depth", 6, 1, 32, "Ranker tree depth"));
  fields.push_back(FloatParam("min_child_weight", 1, 0, 1e9, "Ranker minimum hessian per leaf"));
  fields.push_back(FloatParam("subsample", 1, 0.01, 1, "Ranker row subsampling per tree"));
  fields.push_back(FloatParam("colsample", 1, 0.01, 1, "Ranker feature subsampling per tree", {"colsample_bytree"}));
  fields.push_back(FloatParam("reg_lambda", 1, 0, 1e9, "Ranker L2 regularisation of leaf weights"));
  // The sub-models' own fields, prefixed with their family.
  for (const auto& source : ModelSourceSpecs()) {
    if (!Registered(source.family)) continue;
    for (ParamField field : FindFamily(source.family).fields()) {
      for (const auto& [key, value] : source.defaults) {
        if (key == field.name) field.default_value = value;
      }
      field.name = fmt::format("{}.{}", source.family, field.name);
      for (auto& alias : field.aliases) alias = fmt::format("{}.{}", source.family, alias);
      field.help = fmt::format("[{} sub-model] {}", source.family, field.help);
      fields.push_back(std::move(field));
    }
  }
  return fields;
}

// One user as stage 1 and the features see it.
struct TwoStageModel::UserInput {
  UserIndex user = kInvalidIndex;                // row of every model source (or invalid)
  std::span<const ItemIndex> recent;             // last `history` items, oldest first
  std::span<const ItemIndex> seen;               // every item of the user (never a candidate)
  float count = 0, mean_rating = 0;
  float idle_days = kNaN;
  std::span<const std::uint32_t> categories;     // category ids of the user's items
  std::span<const float> category_shares;        // and the share of items in each
  // Fold-in history for the model sources (ScoreHistory) when user is invalid.
  std::span<const ItemIndex> history_items;
  std::span<const float> history_values;
};

struct TwoStageModel::Scratch {
  explicit Scratch(std::size_t n_items, std::size_t n_sources, std::size_t n_categories)
      : rows(n_sources, std::vector<float>(n_items)),
        ranks(n_sources, std::vector<float>(n_items, kNaN)),
        seen(n_items, 0),
        emb_rank(n_items, kNaN),
        cooc_rank(n_items, kNaN),
        pop_rank(n_items, kNaN),
        proposed(n_items, 0),
        accumulator(n_items, 0.0f),
        category_share(n_categories, 0.0f) {}
  std::vector<std::vector<float>> rows;   // dense score row per model source
  std::vector<std::vector<float>> ranks;  // 1-based rank in each source's top-N, else NaN
  std::vector<char> seen;
  std::vector<float> emb_rank, cooc_rank, pop_rank;
  std::vector<std::uint8_t> proposed;     // number of sources proposing the item
  std::vector<float> accumulator;
  std::vector<float> category_share;
  std::vector<std::pair<float, ItemIndex>> pool;
  std::vector<ItemIndex> selected, touched;
  std::vector<std::pair<ItemIndex, float>> neighbours;
  std::vector<ItemIndex> candidates;
  std::vector<float> features, margins;
};

TwoStageModel::TwoStageModel(ParamValues params) : Recommender(std::move(params)) {
  emb_count_ = static_cast<std::size_t>(this->params().Int("emb"));
  cooc_count_ = static_cast<std::size_t>(this->params().Int("cooc"));
  pop_count_ = static_cast<std::size_t>(this->params().Int("pop"));
  window_options_.history = static_cast<std::size_t>(this->params().Int("history"));
  window_options_.cooc_neighbors = static_cast<std::size_t>(this->params().Int("cooc_neighbors"));
  window_options_.recent_days = this->params().Float("recent_days");
  CreateSources();
  feature_names_ = FeatureNames();
}

TwoStageModel::~TwoStageModel() = default;

void TwoStageModel::CreateSources() {
  sources_.clear();
  for (const auto& spec : ModelSourceSpecs()) {
    if (!Registered(spec.family)) continue;
    const auto count = static_cast<std::size_t>(params().Int(spec.family));
    const bool needed = count > 0 || (std::string(spec.family) == "ials" && emb_count_ > 0);
    if (!needed) continue;
    // The sub-spec from the prefixed keys: "ials:alpha=0.1,factors=128,...".
    const std::string prefix = fmt::format("{}.", spec.family);
    std::string sub_spec = spec.family;
    bool first = true;
    for (const auto& [key, value] : params().values()) {
      if (key.rfind(prefix, 0) != 0) continue;
      sub_spec += first ? ':' : ',';
      first = false;
      sub_spec += key.substr(prefix.size()) + "=" + value;
    }
    sources_.push_back({spec.family, count, CreateModel(sub_spec)});
  }
}

const Recommender* TwoStageModel::source_model(const std::string& family) const {
  for (const auto& source : sources_) {
    if (source.family == family) return source.model.get();
  }
  return nullptr;
}

std::vector<std::string> TwoStageModel::FeatureNames() const {
  std::vector<std::string> names;
  for (const auto& source : sources_) {
    names.push_back(source.family + "_score");
    names.push_back(source.family + "_rank");
  }
  for (const char* name : {"emb_rank", "emb_max", "emb_mean", "cooc_rank", "cooc_sum", "cooc_max", "cooc_norm",
                           "pop_rank", "pop", "pop_recent", "item_age_days", "item_idle_days", "item_mean_rating",
                           "user_count", "user_mean_rating", "user_idle_days", "cat_max", "cat_sum", "n_sources"}) {
    names.emplace_back(name);
  }
  return names;
}

void TwoStageModel::FitSources(const TrainingData& data, const Context& ctx) {
  for (std::size_t s = 0; s < sources_.size(); ++s) {
    Context sub = ctx;
    sub.seed = DeriveSeed(ctx.seed, 1 + s);
    sources_[s].model->Fit(data, sub);
  }
}

void TwoStageModel::BuildEmbeddingIndex() {
  emb_index_ = EmbeddingIndex();
  const auto* ials = dynamic_cast<const FactorModel*>(source_model("ials"));
  if (ials == nullptr || ials->factors() == 0 || ials->item_factors().size() != n_items() * ials->factors()) return;
  emb_index_.Build(ials->item_factors(), n_items(), ials->factors(), params().Choice("ann"),
                   static_cast<std::size_t>(params().Int("ann_min_items")),
                   static_cast<std::size_t>(params().Int("hnsw_m")),
                   static_cast<std::size_t>(params().Int("hnsw_ef")));
}

void TwoStageModel::Candidates(const UserInput& user, Scratch& scratch, std::vector<ItemIndex>& candidates,
                               std::vector<float>& features) const {
  const std::size_t n = n_items();
  const std::size_t n_sources = sources_.size();
  for (auto item : user.seen) {
    if (item < n) scratch.seen[item] = 1;
  }
  scratch.touched.clear();
  auto propose = [&](ItemIndex item) {
    if (scratch.proposed[item] == 0) scratch.touched.push_back(item);
    if (scratch.proposed[item] < 255) ++scratch.proposed[item];
  };
  // Model sources: dense rows, top-N.
  for (std::size_t s = 0; s < n_sources; ++s) {
    float* row = scratch.rows[s].data();
    if (user.user != kInvalidIndex) {
      sources_[s].model->ScoreUsers(std::span<const UserIndex>(&user.user, 1), row);
    } else if (!sources_[s].model->ScoreHistory(user.history_items, user.history_values, row)) {
      std::fill(row, row + n, kNaN);
    }
    SelectTop(row, n, scratch.seen, sources_[s].count, scratch.pool, scratch.selected);
    for (std::size_t r = 0; r < scratch.selected.size(); ++r) {
      scratch.ranks[s][scratch.selected[r]] = static_cast<float>(r + 1);
      propose(scratch.selected[r]);
    }
  }
  // emb: neighbours of the recent items, each scored by its best cosine.
  if (emb_count_ > 0 && !emb_index_.empty()) {
    std::vector<ItemIndex> reached;
    for (auto item : user.recent) {
      emb_index_.Neighbours(item, emb_count_ + user.seen.size(), scratch.neighbours);
      for (const auto& [other, cosine] : scratch.neighbours) {
        if (scratch.seen[other]) continue;
        if (scratch.accumulator[other] == 0.0f) reached.push_back(other);
        // Cosines are shifted to (0, 2] so that 0 means "not reached".
        scratch.accumulator[other] = std::max(scratch.accumulator[other], 1.0f + std::max(cosine, -1.0f + 1e-6f));
      }
    }
    scratch.pool.clear();
    for (auto item : reached) scratch.pool.emplace_back(scratch.accumulator[item], item);
    const std::size_t keep = std::min(emb_count_, scratch.pool.size());
    auto better = [](const auto& a, const auto& b) { return Better(a.first, a.second, b.first, b.second); };
    std::partial_sort(scratch.pool.begin(), scratch.pool.begin() + static_cast<std::ptrdiff_t>(keep),
                      scratch.pool.end(), better);
    for (std::size_t r = 0; r < keep; ++r) {
      scratch.emb_rank[scratch.pool[r].second] = static_cast<float>(r + 1);
      propose(scratch.pool[r].second);
    }
    for (auto item : reached) scratch.accumulator[item] = 0.0f;
  }
  // cooc: summed co-occurrence counts with the recent items.
  if (cooc_count_ > 0) {
    std::vector<ItemIndex> reached;
    for (auto item : user.recent) {
      auto others = window_.cooc.RowIndices(item);
      auto counts = window_.cooc.RowValues(item);
      for (std::size_t k = 0; k < others.size(); ++k) {
        if (scratch.seen[others[k]]) continue;
        if (scratch.accumulator[others[k]] == 0.0f) reached.push_back(others[k]);
        scratch.accumulator[others[k]] += counts[k];
      }
    }
    scratch.pool.clear();
    for (auto item : reached) scratch.pool.emplace_back(scratch.accumulator[item], item);
    const std::size_t keep = std::min(cooc_count_, scratch.pool.size());
    auto better = [](const auto& a, const auto& b) { return Better(a.first, a.second, b.first, b.second); };
    std::partial_sort(scratch.pool.begin(), scratch.pool.begin() + static_cast<std::ptrdiff_t>(keep),
                      scratch.pool.end(), better);
    for (std::size_t r = 0; r < keep; ++r) {
      scratch.cooc_rank[scratch.pool[r].second] = static_cast<float>(r + 1);
      propose(scratch.pool[r].second);
    }
    for (auto item : reached) scratch.accumulator[item] = 0.0f;
  }
  // pop: the most popular unseen items.
  for (std::size_t k = 0, rank = 0; k < window_.by_pop.size() && rank < pop_count_; ++k) {
    const ItemIndex item = window_.by_pop[k];
    if (scratch.seen[item]) continue;
    scratch.pop_rank[item] = static_cast<float>(++rank);
    propose(item);
  }

  candidates.assign(scratch.touched.begin(), scratch.touched.end());
  std::sort(candidates.begin(), candidates.end());

  // Features.
  const std::size_t n_features = feature_names_.size();
  features.assign(candidates.size() * n_features, kNaN);
  const bool categories = window_.has_categories();
  for (std::size_t c = 0; c < user.categories.size(); ++c) scratch.category_share[user.categories[c]] = user.category_shares[c];
  const double now = static_cast<double>(window_.now);
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const ItemIndex item = candidates[c];
    float* f = features.data() + c * n_features;
    std::size_t k = 0;
    for (std::size_t s = 0; s < n_sources; ++s) {
      f[k++] = scratch.rows[s][item];
      f[k++] = scratch.ranks[s][item];
    }
    f[k++] = scratch.emb_rank[item];
    if (!emb_index_.empty() && !user.recent.empty()) {
      float best = -1.0f, sum = 0.0f;
      for (auto other : user.recent) {
        const float cosine = kernels::Dot(emb_index_.Unit(item), emb_index_.Unit(other), emb_index_.dim());
        best = std::max(best, cosine);
        sum += cosine;
      }
      f[k] = best;
      f[k + 1] = sum / static_cast<float>(user.recent.size());
    }
    k += 2;
    f[k++] = scratch.cooc_rank[item];
    {
      float sum = 0.0f, best = 0.0f, norm = 0.0f;
      for (auto other : user.recent) {
        const float count = window_.Cooc(other, item);
        sum += count;
        best = std::max(best, count);
        const float denominator = std::sqrt(window_.pop[other] * window_.pop[item]);
        if (denominator > 0) norm += count / denominator;
      }
      f[k++] = sum;
      f[k++] = best;
      f[k++] = norm;
    }
    f[k++] = scratch.pop_rank[item];
    f[k++] = window_.pop[item];
    f[k++] = window_.pop_recent[item];
    const bool has_item = window_.pop[item] > 0;
    f[k++] = has_item ? static_cast<float>((now - static_cast<double>(window_.item_first[item])) / kSecondsPerDay) : kNaN;
    f[k++] = has_item ? static_cast<float>((now - static_cast<double>(window_.item_last[item])) / kSecondsPerDay) : kNaN;
    f[k++] = has_item ? window_.item_mean_rating[item] : kNaN;
    f[k++] = user.count;
    f[k++] = user.mean_rating;
    f[k++] = user.idle_days;
    if (categories) {
      float best = 0.0f, sum = 0.0f;
      for (auto category : window_.item_categories.RowIndices(item)) {
        best = std::max(best, scratch.category_share[category]);
        sum += scratch.category_share[category];
      }
      f[k] = best;
      f[k + 1] = sum;
    }
    k += 2;
    f[k++] = static_cast<float>(scratch.proposed[item]);
  }

  // Reset the scratch for the next user.
  for (auto item : scratch.touched) {
    for (std::size_t s = 0; s < n_sources; ++s) scratch.ranks[s][item] = kNaN;
    scratch.emb_rank[item] = scratch.cooc_rank[item] = scratch.pop_rank[item] = kNaN;
    scratch.proposed[item] = 0;
  }
  for (auto item : user.seen) {
    if (item < n) scratch.seen[item] = 0;
  }
  for (auto category : user.categories) scratch.category_share[category] = 0.0f;
}

void TwoStageModel::ScoreFromInput(const UserInput& user, Scratch& scratch, float* out) const {
  const std::size_t n = n_items();
  Candidates(user, scratch, scratch.candidates, scratch.features);
  const auto& candidates = scratch.candidates;
  scratch.margins.resize(candidates.size());
  ranker_.Predict(scratch.features.data(), candidates.size(), scratch.margins.data());
  float lowest = 0.0f;
  for (std::size_t c = 0; c < candidates.size(); ++c) lowest = c == 0 ? scratch.margins[c] : std::min(lowest, scratch.margins[c]);
  const float max_pop = window_.by_pop.empty() ? 0.0f : window_.pop[window_.by_pop[0]];
  for (std::size_t i = 0; i < n; ++i) {
    const float pop = max_pop > 0 ? window_.pop[i] / max_pop : 0.0f;
    out[i] = lowest - 1.0f - 0.5f * (1.0f - pop);
  }
  for (std::size_t c = 0; c < candidates.size(); ++c) out[candidates[c]] = scratch.margins[c];
}

void TwoStageModel::ScoreUsers(std::span<const UserIndex> users, float* out) const {
  const std::size_t n = n_items();
  Scratch scratch(n, sources_.size(), window_.item_categories.n_cols);
  for (std::size_t k = 0; k < users.size(); ++k) {
    const UserIndex user = users[k];
    float* row = out + k * n;
    if (user >= n_users() || user >= window_.n_users || window_.user_count[user] == 0.0f || !ranker_.trained()) {
      for (std::size_t i = 0; i < n; ++i) row[i] = i < window_.pop.size() ? window_.pop[i] : 0.0f;
      continue;
    }
    UserInput input;
    input.user = user;
    input.recent = window_.recent.RowIndices(user);
    input.seen = seen().RowIndices(user);
    input.count = window_.user_count[user];
    input.mean_rating = window_.user_mean_rating[user];
    input.idle_days = static_cast<float>(static_cast<double>(window_.now - window_.user_last[user]) / kSecondsPerDay);
    if (window_.has_categories()) {
      input.categories = window_.user_categories.RowIndices(user);
      input.category_shares = window_.user_categories.RowValues(user);
    }
    ScoreFromInput(input, scratch, row);
  }
}

bool TwoStageModel::ScoreHistory(std::span<const ItemIndex> items, std::span<const float> values, float* out) const {
  const std::size_t n = n_items();
  if (!ranker_.trained()) return false;
  std::vector<ItemIndex> kept;
  std::vector<float> kept_values;
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (items[k] >= n) continue;
    kept.push_back(items[k]);
    kept_values.push_back(k < values.size() ? values[k] : 1.0f);
  }
  if (kept.empty()) {
    for (std::size_t i = 0; i < n; ++i) out[i] = window_.pop[i];
    return true;
  }
  // The last `history` distinct items, oldest first.
  std::vector<ItemIndex> recent;
  for (std::size_t k = kept.size(); k > 0 && recent.size() < window_options_.history; --k) {
    if (std::find(recent.begin(), recent.end(), kept[k - 1]) == recent.end()) recent.push_back(kept[k - 1]);
  }
  std::reverse(recent.begin(), recent.end());
  std::vector<ItemIndex> seen_items(kept);
  std::sort(seen_items.begin(), seen_items.end());
  seen_items.erase(std::unique(seen_items.begin(), seen_items.end()), seen_items.end());
  std::vector<std::uint32_t> categories;
  std::vector<float> shares;
  if (window_.has_categories()) {
    std::vector<float> share(window_.item_categories.n_cols, 0.0f);
    for (auto item : seen_items) {
      for (auto category : window_.item_categories.RowIndices(item)) share[category] += 1.0f;
    }
    for (std::uint32_t c = 0; c < share.size(); ++c) {
      if (share[c] == 0.0f) continue;
      categories.push_back(c);
      shares.push_back(share[c] / static_cast<float>(seen_items.size()));
    }
  }
  UserInput input;
  input.recent = recent;
  input.seen = seen_items;
  input.count = static_cast<float>(seen_items.size());
  input.mean_rating =
      std::accumulate(kept_values.begin(), kept_values.end(), 0.0f) / static_cast<float>(kept_values.size());
  input.idle_days = 0.0f;
  input.categories = categories;
  input.category_shares = shares;
  input.history_items = kept;
  input.history_values = kept_values;
  std::vector<float> probe(n);
  for (const auto& source : sources_) {
    if (!source.model->ScoreHistory(kept, kept_values, probe.data())) return false;
  }
  Scratch scratch(n, sources_.size(), window_.item_categories.n_cols);
  ScoreFromInput(input, scratch, out);
  return true;
}

RankedItems TwoStageModel::SimilarItems(ItemIndex item, std::size_t k) const {
  const Recommender* ials = source_model("ials");
  return ials != nullptr ? ials->SimilarItems(item, k) : RankedItems{};
}

void TwoStageModel::FitImpl(const TrainingData& data, const Context& ctx, const TrainCallback& callback) {
  const auto start = std::chrono::steady_clock::now();
  if (data.train == nullptr) {
    throw InvalidArgument("two-stage: the training data has no interaction rows with times (TrainingData.train)");
  }
  summary_ = TwoStageSummary();
  const bool global = params().Choice("window") == "global";
  const bool has_val = data.validation != nullptr && !data.validation->empty();
  TimeWindows carved;
  const data::Interactions* feature_rows = data.train;
  const data::Interactions* label_rows = data.validation;
  if (!has_val) {
    carved = SplitTimeWindows(*data.train, data.n_users, global, params().Float("val_fraction"));
    feature_rows = &carved.features;
    label_rows = &carved.labels;
  }
  summary_.window = has_val ? "val part" : (global ? "global carve" : "per-user carve");
  summary_.feature_rows = feature_rows->size();
  summary_.label_rows = label_rows->size();
  summary_.leaking_label_rows = LeakingRows(*feature_rows, *label_rows, data.n_users, global && !has_val);
  if (summary_.leaking_label_rows > 0) {
    ctx.log().Warn("two-stage: {} of {} val rows are not later than their user's train rows (the val part "
                   "overlaps train in time)",
                   summary_.leaking_label_rows, summary_.label_rows);
  }
  if (label_rows->empty() || feature_rows->empty()) {
    throw InvalidArgument(fmt::format("two-stage: no label window to train the ranker on ({} feature rows, {} "
                                      "label rows; each user needs 2 interactions at distinct times)",
                                      feature_rows->size(), label_rows->size()));
  }
  ctx.log().Info("two-stage: {}: {} feature rows, {} label rows", summary_.window, summary_.feature_rows,
                 summary_.label_rows);

  // Stage 1 on the feature window.
  TrainingData feature_data = has_val ? TrainingData() : WindowData(*feature_rows, data, ctx.threads);
  const TrainingData& fdata = has_val ? data : feature_data;
  FitSources(fdata, ctx);
  window_ = FeatureWindow::Build(*feature_rows, data.n_users, data.n_items, data.item_info, data.item_ids,
                                 window_options_, ctx.threads);
  BuildEmbeddingIndex();
  summary_.hnsw = emb_index_.uses_hnsw();

  // Ranker rows: one group per user with a label item among its candidates.
  std::vector<std::vector<ItemIndex>> labels(data.n_users);
  for (std::size_t r = 0; r < label_rows->size(); ++r) {
    if (label_rows->users[r] < data.n_users) labels[label_rows->users[r]].push_back(label_rows->items[r]);
  }
  std::vector<UserIndex> label_users;
  for (std::size_t u = 0; u < data.n_users; ++u) {
    auto& list = labels[u];
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    if (!list.empty() && window_.user_count[u] > 0) label_users.push_back(static_cast<UserIndex>(u));
  }
  const std::size_t n_features = feature_names_.size();
  std::vector<std::vector<float>> user_features(label_users.size());
  std::vector<std::vector<float>> user_labels(label_users.size());
  std::vector<std::size_t> user_found(label_users.size(), 0), user_relevant(label_users.size(), 0);
  const CsrMatrix& window_seen = *fdata.user_items;
  ParallelRegion(ctx.threads, [&](int part) {
    Scratch scratch(data.n_items, sources_.size(), window_.item_categories.n_cols);
    std::vector<ItemIndex> candidates;
    for (std::size_t k = static_cast<std::size_t>(part); k < label_users.size();
         k += static_cast<std::size_t>(std::max(1, ctx.threads))) {
      const UserIndex user = label_users[k];
      UserInput input;
      input.user = user;
      input.recent = window_.recent.RowIndices(user);
      input.seen = window_seen.RowIndices(user);
      input.count = window_.user_count[user];
      input.mean_rating = window_.user_mean_rating[user];
      input.idle_days =
          static_cast<float>(static_cast<double>(window_.now - window_.user_last[user]) / kSecondsPerDay);
      if (window_.has_categories()) {
        input.categories = window_.user_categories.RowIndices(user);
        input.category_shares = window_.user_categories.RowValues(user);
      }
      Candidates(input, scratch, candidates, user_features[k]);
      const auto& relevant = labels[user];
      user_labels[k].resize(candidates.size());
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        const bool hit = std::binary_search(relevant.begin(), relevant.end(), candidates[c]);
        user_labels[k][c] = hit ? 1.0f : 0.0f;
        user_found[k] += hit ? 1 : 0;
      }
      for (auto item : relevant) user_relevant[k] += window_seen.Contains(user, item) ? 0 : 1;
    }
  });
  std::vector<float> features, targets;
  std::vector<std::uint32_t> groups;
  std::size_t total_candidates = 0, found = 0, relevant = 0;
  for (std::size_t k = 0; k < label_users.size(); ++k) {
    total_candidates += user_labels[k].size();
    found += user_found[k];
    relevant += user_relevant[k];
    if (user_found[k] == 0 || user_found[k] == user_labels[k].size()) continue;  // no ranking to learn
    features.insert(features.end(), user_features[k].begin(), user_features[k].end());
    targets.insert(targets.end(), user_labels[k].begin(), user_labels[k].end());
    groups.push_back(static_cast<std::uint32_t>(user_labels[k].size()));
    summary_.ranker_positives += user_found[k];
    std::vector<float>().swap(user_features[k]);
  }
  summary_.ranker_users = groups.size();
  summary_.ranker_rows = targets.size();
  summary_.mean_candidates =
      label_users.empty() ? 0.0 : static_cast<double>(total_candidates) / static_cast<double>(label_users.size());
  summary_.candidate_recall = relevant == 0 ? 0.0 : static_cast<double>(found) / static_cast<double>(relevant);
  ctx.log().Info("two-stage: {} users, {:.1f} candidates per user, candidate recall {:.3f} of label items; "
                 "ranker on {} users / {} rows ({} positive)",
                 label_users.size(), summary_.mean_candidates, summary_.candidate_recall, summary_.ranker_users,
                 summary_.ranker_rows, summary_.ranker_positives);
  if (groups.empty()) {
    throw InvalidArgument("two-stage: no user of the label window has a label item among its candidates (raise "
                          "the candidate counts, or the data is too small to train a ranker)");
  }

  // Stage 2.
  RankerOptions options;
  options.trees = static_cast<int>(params().Int("trees"));
  options.eta = params().Float("eta");
  options.max_depth = static_cast<int>(params().Int("max_depth"));
  options.min_child_weight = params().Float("min_child_weight");
  options.subsample = params().Float("subsample");
  options.colsample = params().Float("colsample");
  options.reg_lambda = params().Float("reg_lambda");
  options.seed = DeriveSeed(ctx.seed, 0);
  // XGBoost runs several OpenMP regions per tree level: on a few thousand rows they cost
  // more than they save (and spin badly on a loaded machine), so small training sets
  // use one thread. The rule depends only on the data and ctx.threads: still the same
  // model for the same seed and thread count.
  options.threads = targets.size() < kParallelRankerRows ? 1 : ctx.threads;
  ranker_.Train(features, n_features, targets, groups, options);
  importance_ = ranker_.Importance(feature_names_);
  std::stable_sort(importance_.begin(), importance_.end(),
                   [](const auto& a, const auto& b) { return a.total_gain > b.total_gain; });
  double total_gain = 0;
  for (const auto& entry : importance_) total_gain += entry.total_gain;
  for (const auto& entry : importance_) {
    ctx.log().Info("two-stage: feature {:<18} gain {:10.4f}  total_gain {:10.2f} ({:5.1f}%)  splits {}", entry.name,
                   entry.gain, entry.total_gain, total_gain > 0 ? 100.0 * entry.total_gain / total_gain : 0.0,
                   entry.splits);
  }

  // Inference: the sources and the feature window on the full train part.
  if (!has_val) {
    FitSources(data, ctx);
    window_ = FeatureWindow::Build(*data.train, data.n_users, data.n_items, data.item_info, data.item_ids,
                                   window_options_, ctx.threads);
    BuildEmbeddingIndex();
  }
  if (callback) {
    EpochReport report;
    report.epoch = 1;
    report.epochs = 1;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.metrics["candidate_recall"] = summary_.candidate_recall;
    report.metrics["ranker_rows"] = static_cast<double>(summary_.ranker_rows);
    callback(*this, report);
  }
}

void TwoStageModel::SaveState(ModelWriter& writer) const {
  writer.Write<std::uint32_t>(kStateVersion);
  writer.Write<std::uint32_t>(static_cast<std::uint32_t>(sources_.size()));
  for (const auto& source : sources_) {
    writer.WriteString(source.family);
    writer.WriteString(source.model->Spec());
    ModelWriter sub;
    source.model->SaveState(sub);
    writer.WriteString(sub.bytes());
  }
  window_.Save(writer);
  writer.Write<std::uint64_t>(feature_names_.size());
  for (const auto& name : feature_names_) writer.WriteString(name);
  writer.Write<std::uint64_t>(importance_.size());
  for (const auto& entry : importance_) {
    writer.WriteString(entry.name);
    writer.Write<double>(entry.gain);
    writer.Write<double>(entry.total_gain);
    writer.Write<double>(entry.splits);
  }
  writer.WriteString(ranker_.Serialize());
  writer.WriteString(summary_.window);
  for (std::size_t value : {summary_.feature_rows, summary_.label_rows, summary_.leaking_label_rows,
                            summary_.ranker_users, summary_.ranker_rows, summary_.ranker_positives}) {
    writer.Write<std::uint64_t>(value);
  }
  writer.Write<double>(summary_.mean_candidates);
  writer.Write<double>(summary_.candidate_recall);
  writer.Write<std::uint8_t>(summary_.hnsw ? 1 : 0);
}

void TwoStageModel::LoadState(ModelReader& reader) {
  const auto version = reader.Read<std::uint32_t>();
  if (version != kStateVersion) {
    throw FormatError(fmt::format("{}: two-stage state version {} (this build reads {})", reader.source(), version,
                                  kStateVersion));
  }
  const auto n_sources = reader.Read<std::uint32_t>();
  if (n_sources != sources_.size()) {
    throw FormatError(fmt::format("{}: two-stage model has {} sources, its spec {}", reader.source(), n_sources,
                                  sources_.size()));
  }
  for (auto& source : sources_) {
    const std::string family = reader.ReadString();
    const std::string spec = reader.ReadString();
    const std::string state = reader.ReadString();
    if (family != source.family || spec != source.model->Spec()) {
      throw FormatError(fmt::format("{}: two-stage source '{}' ({}) does not match the spec's '{}'", reader.source(),
                                    family, spec, source.model->Spec()));
    }
    source.model->SetShape(n_users(), n_items(), dataset_hash());
    source.model->SetSeen(seen());
    ModelReader sub(state, fmt::format("{} ({} sub-model)", reader.source(), family));
    source.model->LoadState(sub);
  }
  window_ = FeatureWindow::Load(reader, n_users(), n_items());
  const auto n_names = reader.Read<std::uint64_t>();
  std::vector<std::string> names;
  for (std::uint64_t k = 0; k < n_names && k <= feature_names_.size(); ++k) names.push_back(reader.ReadString());
  if (names != feature_names_) {
    throw FormatError(fmt::format("{}: two-stage features do not match this build's", reader.source()));
  }
  const auto n_importance = reader.Read<std::uint64_t>();
  if (n_importance > feature_names_.size()) throw FormatError(fmt::format("{}: two-stage importance table is corrupt", reader.source()));
  importance_.clear();
  for (std::uint64_t k = 0; k < n_importance; ++k) {
    FeatureImportance entry;
    entry.name = reader.ReadString();
    entry.gain = reader.Read<double>();
    entry.total_gain = reader.Read<double>();
    entry.splits = reader.Read<double>();
    importance_.push_back(std::move(entry));
  }
  ranker_.Deserialize(reader.ReadString(), feature_names_.size(), reader.source());
  summary_ = TwoStageSummary();
  summary_.window = reader.ReadString();
  for (std::size_t* value : {&summary_.feature_rows, &summary_.label_rows, &summary_.leaking_label_rows,
                             &summary_.ranker_users, &summary_.ranker_rows, &summary_.ranker_positives}) {
    *value = reader.Read<std::uint64_t>();
  }
  summary_.mean_candidates = reader.Read<double>();
  summary_.candidate_recall = reader.Read<double>();
  summary_.hnsw = reader.Read<std::uint8_t>() != 0;
  BuildEmbeddingIndex();
}

}  // namespace recforge::models
