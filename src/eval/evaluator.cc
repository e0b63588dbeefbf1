#include "recforge/eval/evaluator.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/eval/metrics.h"
#include "recforge/eval/stats.h"

namespace recforge::eval {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The accuracy metrics, in report order, and where RankingValues keeps each.
constexpr const char* kAccuracyNames[] = {"precision", "recall", "ndcg", "map", "mrr", "hit_rate"};
constexpr double RankingValues::*kAccuracyFields[] = {
    &RankingValues::precision, &RankingValues::recall, &RankingValues::ndcg,
    &RankingValues::map,       &RankingValues::mrr,    &RankingValues::hit_rate};
constexpr std::size_t kAccuracyCount = std::size(kAccuracyNames);

// Streams of options.seed, so that changing one use never shifts another.
constexpr std::uint64_t kNegativeStream = 0x6e6567;   // "neg"
constexpr std::uint64_t kBootstrapStream = 0x626f6f;  // "boo"
constexpr std::uint64_t kAucBootstrapStream = 0x617563;

// Item indices of each user in (a filtered view of) one part: sorted, distinct.
struct UserGroups {
  std::vector<std::uint64_t> offsets;  // n_users + 1
  std::vector<ItemIndex> items;
  std::span<const ItemIndex> Of(UserIndex user) const {
    return {items.data() + offsets[user],
            static_cast<std::size_t>(offsets[user + 1] - offsets[user])};
  }
  std::size_t Size(UserIndex user) const {
    return static_cast<std::size_t>(offsets[user + 1] - offsets[user]);
  }
};

template <typename Keep>
UserGroups GroupByUser(const data::Interactions& part, std::size_t n_users, std::size_t n_items,
                       Keep keep) {
  UserGroups groups;
  groups.offsets.assign(n_users + 1, 0);
  for (std::size_t row = 0; row < part.size(); ++row) {
    if (part.users[row] >= n_users || part.items[row] >= n_items) {
      throw FormatError(
          fmt::format("evaluation part row {}: user {} / item {} outside the id maps ({} / {})",
                      row, part.users[row], part.items[row], n_users, n_items));
    }
    if (keep(row)) ++groups.offsets[part.users[row] + 1];
  }
  for (std::size_t user = 0; user < n_users; ++user)
    groups.offsets[user + 1] += groups.offsets[user];
  groups.items.resize(groups.offsets[n_users]);
  std::vector<std::uint64_t> fill(groups.offsets.begin(), groups.offsets.end() - 1);
  for (std::size_t row = 0; row < part.size(); ++row) {
    if (keep(row)) groups.items[fill[part.users[row]]++] = part.items[row];
  }
  // Sort each user's items and drop repeats (impossible after `data prepare`, but a
  // hand-built dataset may have them), compacting in place.
  std::uint64_t write = 0;
  for (std::size_t user = 0; user < n_users; ++user) {
    auto begin = groups.items.begin() + static_cast<std::ptrdiff_t>(groups.offsets[user]);
    auto end = groups.items.begin() + static_cast<std::ptrdiff_t>(groups.offsets[user + 1]);
    std::sort(begin, end);
    end = std::unique(begin, end);
    groups.offsets[user] = write;
    for (auto it = begin; it != end; ++it) groups.items[write++] = *it;
  }
  groups.offsets[n_users] = write;
  groups.items.resize(write);
  return groups;
}

// Which metrics to compute, after applicability.
struct Selection {
  std::vector<std::size_t> accuracy;  // indices into kAccuracyNames
  bool auc = false, coverage = false, novelty = false, diversity = false, rmse = false, mae = false;
  bool NeedsLists() const { return !accuracy.empty() || coverage || novelty || diversity; }
};

Selection Select(const EvalOptions& options, const models::Recommender& model, bool has_categories,
                 std::vector<std::string>& notes) {
  const bool explicit_list = !options.metrics.empty();
  std::set<std::string> wanted(options.metrics.begin(), options.metrics.end());
  if (!explicit_list) wanted.insert(MetricNames().begin(), MetricNames().end());
  const bool restricted = options.protocol == Protocol::kNextItem || options.cold_items;
  if (!explicit_list && options.protocol == Protocol::kNextItem) wanted = {"hit_rate", "ndcg", "mrr"};
  auto take = [&](const std::string& name, bool applies, const std::string& why) {
    if (!wanted.count(name)) return false;
    if (!applies && explicit_list) notes.push_back(fmt::format("{}: left out, {}", name, why));
    return applies;
  };
  Selection selection;
  for (std::size_t a = 0; a < kAccuracyCount; ++a) {
    if (wanted.count(kAccuracyNames[a])) selection.accuracy.push_back(a);
  }
  if (restricted) {  // next-item / --cold-items: ranking accuracy only
    const std::string why = options.cold_items ? "--cold-items reports ranking accuracy only"
                                               : "the next-item protocol reports ranking accuracy only";
    for (const char* name : {"auc", "coverage", "novelty", "diversity", "rmse", "mae"}) {
      if (explicit_list && wanted.count(name)) notes.push_back(fmt::format("{}: left out, {}", name, why));
    }
    return selection;
  }
  const bool full = options.protocol == Protocol::kFull;
  const std::string sampled_why = "it describes real top-K lists, not lists of sampled candidates";
  selection.auc = wanted.count("auc") > 0;
  selection.coverage = take("coverage", full, sampled_why);
  selection.novelty = take("novelty", full, sampled_why);
  selection.diversity = take("diversity", full, sampled_why) &&
                        take("diversity", has_categories, "the dataset's items have no categories");
  const std::string rating_why = fmt::format("{} does not predict ratings", model.family());
  selection.rmse = take("rmse", model.PredictsRatings(), rating_why);
  selection.mae = take("mae", model.PredictsRatings(), rating_why);
  return selection;
}

// Category ids of every item (sorted, distinct); empty when no item has any.
std::vector<std::vector<std::uint32_t>> ItemCategories(const data::PreparedDataset& prepared) {
  std::vector<std::vector<std::uint32_t>> categories;
  if (prepared.item_info.empty()) return categories;
  // A local index: IdMap::Find builds its index lazily, which is not safe while another
  // evaluation of the same dataset runs.
  std::unordered_map<std::string_view, ItemIndex> item_index;
  item_index.reserve(prepared.items.size());
  for (std::size_t item = 0; item < prepared.items.size(); ++item) {
    item_index.emplace(prepared.items.id(static_cast<ItemIndex>(item)),
                       static_cast<ItemIndex>(item));
  }
  std::unordered_map<std::string, std::uint32_t> category_ids;
  bool any = false;
  categories.resize(prepared.items.size());
  for (const auto& info : prepared.item_info) {
    auto found = item_index.find(info.item_id);
    if (found == item_index.end() || info.categories.empty()) continue;
    auto& ids = categories[found->second];
    for (const auto& name : info.categories) {
      auto [it, inserted] =
          category_ids.emplace(name, static_cast<std::uint32_t>(category_ids.size()));
      ids.push_back(it->second);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    any = true;
  }
  if (!any) categories.clear();
  return categories;
}

// Where each per-user quantity lives in a row of the per-user table.
struct Layout {
  std::size_t n_ks = 0;
  std::size_t accuracy_begin = 0;  // accuracy.size() x n_ks, by metric then K
  std::size_t auc = SIZE_MAX;
  std::size_t novelty_begin = SIZE_MAX;
  std::size_t diversity_begin = SIZE_MAX;
  std::size_t width = 0;
};

Layout MakeLayout(const Selection& selection, const std::vector<int>& ks,
                  std::vector<std::string>& columns) {
  Layout layout;
  layout.n_ks = ks.size();
  for (std::size_t a : selection.accuracy) {
    for (int k : ks) columns.push_back(fmt::format("{}@{}", kAccuracyNames[a], k));
  }
  if (selection.auc) {
    layout.auc = columns.size();
    columns.push_back("auc");
  }
  if (selection.novelty) {
    layout.novelty_begin = columns.size();
    for (int k : ks) columns.push_back(fmt::format("novelty@{}", k));
  }
  if (selection.diversity) {
    layout.diversity_begin = columns.size();
    for (int k : ks) columns.push_back(fmt::format("diversity@{}", k));
  }
  layout.width = columns.size();
  return layout;
}

// Everything one evaluation needs that does not change per user.
struct Job {
  const models::Recommender& model;
  const EvalOptions& options;
  const Context& ctx;
  const Selection& selection;
  const Layout& layout;
  std::vector<std::size_t> ks;  // sorted, distinct
  std::size_t n_items = 0;
  const UserGroups& relevant;
  std::vector<UserIndex> users;  // evaluated users, ascending
  std::vector<double>& values;   // per-user table, row-major
  // Beyond-accuracy inputs (full protocol).
  std::vector<std::uint32_t> popularity;
  std::size_t n_train_users = 0;
  std::vector<std::vector<std::uint32_t>> categories;
  std::span<const ItemIndex> candidates;  // --cold-items with cold candidates; empty = all
};

// Fills the list-derived columns of one user's row.
void FillListColumns(const Job& job, std::span<const ItemIndex> ranked,
                     std::span<const ItemIndex> relevant, double* row,
                     std::vector<RankingValues>& scratch) {
  const Selection& selection = job.selection;
  const Layout& layout = job.layout;
  if (!selection.accuracy.empty()) {
    RankingMetricsAtKs(ranked, relevant, job.ks, scratch);
    std::size_t column = layout.accuracy_begin;
    for (std::size_t a : selection.accuracy) {
      for (std::size_t j = 0; j < layout.n_ks; ++j) row[column++] = scratch[j].*kAccuracyFields[a];
    }
  }
  for (std::size_t j = 0; j < layout.n_ks; ++j) {
    if (selection.novelty) {
      auto value = NoveltyAtK(ranked, job.ks[j], job.popularity, job.n_train_users);
      row[layout.novelty_begin + j] = value.value_or(kNaN);
    }
    if (selection.diversity) {
      auto value = IntraListDiversityAtK(ranked, job.ks[j], job.categories);
      row[layout.diversity_begin + j] = value.value_or(kNaN);
    }
  }
}

void RunFullProtocol(Job& job, CoverageAccumulator& coverage) {
  const auto& model = job.model;
  const int threads = std::max(1, job.ctx.threads);
  const std::size_t n_users = job.users.size();
  const std::size_t width = job.layout.width;
  models::RecommendOptions options;
  options.k = job.ks.back();
  options.exclude_seen = true;
  options.candidates = job.candidates;
  // Users go through in chunks: the lists of one chunk are all that is held at once.
  const std::size_t chunk = std::max<std::size_t>(4096, 512 * static_cast<std::size_t>(threads));
  constexpr std::size_t kBlock = 64;
  for (std::size_t begin = 0; begin < n_users; begin += chunk) {
    const std::size_t end = std::min(n_users, begin + chunk);
    std::span<const UserIndex> users(job.users.data() + begin, end - begin);
    if (job.selection.NeedsLists()) {
      // The ranking is the model's own batch Recommend: the same masking, top-k and
      // tie rule as `recforge recommend`, so the numbers agree with recomputation from
      // its output.
      std::vector<models::RankedItems> lists = model.Recommend(users, options, threads);
      const std::size_t n_blocks = (users.size() + kBlock - 1) / kBlock;
      ParallelFor<std::size_t>(
          0, n_blocks, threads,
          [&](std::size_t block) {
            std::vector<RankingValues> scratch;
            const std::size_t first = block * kBlock;
            const std::size_t last = std::min(users.size(), first + kBlock);
            for (std::size_t k = first; k < last; ++k) {
              FillListColumns(job, lists[k].items, job.relevant.Of(users[k]),
                              &job.values[(begin + k) * width], scratch);
            }
          },
          Schedule::kDynamic, 1);
      if (job.selection.coverage) {
        for (const auto& list : lists) coverage.Add(list.items);
      }
    }
    if (job.selection.auc) {
      // AUC needs every score, which Recommend does not hand out: score the rows again
      // and apply the same exclusion (seen items) here. Batches as in Recommend.
      const std::size_t n_items = job.n_items;
      const std::size_t batch =
          std::max<std::size_t>(1, std::min<std::size_t>(256, (2u << 20) / n_items + 1));
      const std::size_t n_batches = (users.size() + batch - 1) / batch;
      ParallelFor<std::size_t>(
          0, n_batches, threads,
          [&](std::size_t b) {
            const std::size_t first = b * batch;
            const std::size_t last = std::min(users.size(), first + batch);
            std::vector<float> block((last - first) * n_items);
            model.ScoreUsers(users.subspan(first, last - first), block.data());
            for (std::size_t k = first; k < last; ++k) {
              const UserIndex user = users[k];
              // The same exclusion as Recommend: the user's seen items.
              std::span<const float> row(block.data() + (k - first) * n_items, n_items);
              job.values[(begin + k) * width + job.layout.auc] =
                  RowAuc(row, model.seen().RowIndices(user), job.relevant.Of(user)).value_or(kNaN);
            }
          },
          Schedule::kDynamic, 1);
    }
    job.ctx.ReportProgress("evaluate", end, n_users);
  }
}

// Draws up to `count` items with taken[item] == 0, without replacement, marking them
// taken and appending them to `out`. `available` = number of untaken items.
void SampleNegatives(std::vector<std::uint8_t>& taken, std::size_t available, std::size_t count,
                     Rng& rng, std::vector<ItemIndex>& out) {
  const std::size_t n_items = taken.size();
  count = std::min(count, available);
  if (count == 0) return;
  if (4 * (available - count) >= n_items) {
    // Rejection: every draw succeeds with probability >= 1/4.
    while (count > 0) {
      ItemIndex item = static_cast<ItemIndex>(rng.Below(n_items));
      if (taken[item]) continue;
      taken[item] = 1;
      out.push_back(item);
      --count;
    }
    return;
  }
  // Dense case (the user has seen most of the catalog): partial Fisher-Yates over the
  // untaken items.
  std::vector<ItemIndex> pool;
  pool.reserve(available);
  for (std::size_t item = 0; item < n_items; ++item) {
    if (!taken[item]) pool.push_back(static_cast<ItemIndex>(item));
  }
  for (std::size_t k = 0; k < count; ++k) {
    std::size_t pick = k + rng.Below(pool.size() - k);
    std::swap(pool[k], pool[pick]);
    taken[pool[k]] = 1;
    out.push_back(pool[k]);
  }
}

void RunSampledProtocol(Job& job, const UserGroups& part_items, const UserGroups* other_part) {
  const auto& model = job.model;
  const int threads = std::max(1, job.ctx.threads);
  const std::size_t n_users = job.users.size();
  const std::size_t width = job.layout.width;
  const std::size_t n_negatives = static_cast<std::size_t>(job.options.sampled_negatives);
  const std::uint64_t negative_seed = DeriveSeed(job.options.seed, kNegativeStream);
  // Every user has its own candidate set, so Recommend runs per user (on one thread,
  // inside this loop over blocks of users).
  constexpr std::size_t kBlock = 16;
  const std::size_t chunk = std::max<std::size_t>(4096, 512 * static_cast<std::size_t>(threads));
  for (std::size_t begin = 0; begin < n_users; begin += chunk) {
    const std::size_t end = std::min(n_users, begin + chunk);
    const std::size_t n_blocks = (end - begin + kBlock - 1) / kBlock;
    ParallelFor<std::size_t>(
        0, n_blocks, threads,
        [&](std::size_t block) {
          std::vector<std::uint8_t> taken(job.n_items, 0);
          std::vector<ItemIndex> candidates, marked;
          std::vector<RankingValues> scratch;
          std::vector<std::pair<ItemIndex, float>> by_item;
          std::vector<float> positives, negatives;
          const std::size_t first = begin + block * kBlock;
          const std::size_t last = std::min(end, first + kBlock);
          for (std::size_t k = first; k < last; ++k) {
            const UserIndex user = job.users[k];
            const auto relevant = job.relevant.Of(user);
            // Negatives come from items the user never interacted with in any part.
            marked.clear();
            auto mark = [&](std::span<const ItemIndex> items) {
              for (ItemIndex item : items) {
                if (!taken[item]) {
                  taken[item] = 1;
                  marked.push_back(item);
                }
              }
            };
            mark(model.seen().RowIndices(user));
            mark(part_items.Of(user));
            if (other_part != nullptr) mark(other_part->Of(user));
            mark(relevant);
            candidates.assign(relevant.begin(), relevant.end());
            // Per-user stream: the sample does not depend on the thread count.
            Rng rng(DeriveSeed(negative_seed, user));
            SampleNegatives(taken, job.n_items - marked.size(), n_negatives, rng, candidates);
            for (ItemIndex item : marked) taken[item] = 0;
            for (std::size_t c = relevant.size(); c < candidates.size(); ++c)
              taken[candidates[c]] = 0;

            models::RecommendOptions options;
            options.k = candidates.size();
            options.exclude_seen = true;
            options.candidates = candidates;
            models::RankedItems list =
                model.Recommend(std::span<const UserIndex>(&user, 1), options, 1)[0];
            double* row = &job.values[k * width];
            FillListColumns(job, list.items, relevant, row, scratch);
            if (!job.selection.auc) continue;
            // The list holds every candidate with a finite score; the rest rank last.
            by_item.clear();
            for (std::size_t r = 0; r < list.items.size(); ++r)
              by_item.emplace_back(list.items[r], list.scores[r]);
            std::sort(by_item.begin(), by_item.end());
            auto score_of = [&](ItemIndex item) {
              auto it =
                  std::lower_bound(by_item.begin(), by_item.end(), std::make_pair(item, kNegInf));
              return it != by_item.end() && it->first == item ? it->second : kNegInf;
            };
            positives.clear();
            negatives.clear();
            for (std::size_t c = 0; c < candidates.size(); ++c) {
              (c < relevant.size() ? positives : negatives).push_back(score_of(candidates[c]));
            }
            row[job.layout.auc] = Auc(positives, negatives).value_or(kNaN);
          }
        },
        Schedule::kDynamic, 1);
    job.ctx.ReportProgress("evaluate", end, n_users);
  }
}

// Each user's history for the next-item protocol: its rows of the given parts in
// (time, item) order, with their ratings.
struct Histories {
  std::vector<std::uint64_t> offsets;  // n_users + 1
  std::vector<ItemIndex> items;
  std::vector<float> values;
};

Histories BuildHistories(std::span<const data::Interactions* const> parts, std::size_t n_users,
                         std::size_t n_items) {
  struct Entry {
    Timestamp time;
    ItemIndex item;
    float value;
  };
  std::vector<std::vector<Entry>> by_user(n_users);
  for (const data::Interactions* part : parts) {
    for (std::size_t row = 0; row < part->size(); ++row) {
      if (part->users[row] >= n_users || part->items[row] >= n_items) {
        throw FormatError(fmt::format("next-item history row {}: user {} / item {} outside the id maps", row,
                                      part->users[row], part->items[row]));
      }
      by_user[part->users[row]].push_back({part->times[row], part->items[row], part->ratings[row]});
    }
  }
  Histories histories;
  histories.offsets.assign(n_users + 1, 0);
  for (std::size_t user = 0; user < n_users; ++user) {
    auto& entries = by_user[user];
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.time != b.time ? a.time < b.time : a.item < b.item;
    });
    for (const Entry& entry : entries) {
      histories.items.push_back(entry.item);
      histories.values.push_back(entry.value);
    }
    histories.offsets[user + 1] = histories.items.size();
    std::vector<Entry>().swap(entries);
  }
  return histories;
}

// Leave-one-out next-item ranking: score every item for the user's history (ScoreHistory,
// else the fitted user), exclude the history, rank. `from_history[k]` records which.
void RunNextItemProtocol(Job& job, const Histories& histories, std::vector<std::uint8_t>& from_history) {
  const auto& model = job.model;
  const int threads = std::max(1, job.ctx.threads);
  const std::size_t n_users = job.users.size();
  const std::size_t width = job.layout.width;
  const std::size_t n_items = job.n_items;
  constexpr std::size_t kBlock = 16;
  from_history.assign(n_users, 0);
  const std::size_t n_blocks = (n_users + kBlock - 1) / kBlock;
  ParallelFor<std::size_t>(
      0, n_blocks, threads,
      [&](std::size_t block) {
        std::vector<float> row(n_items);
        std::vector<RankingValues> scratch;
        models::RankedItems list;
        const std::size_t first = block * kBlock;
        const std::size_t last = std::min(n_users, first + kBlock);
        for (std::size_t k = first; k < last; ++k) {
          const UserIndex user = job.users[k];
          const std::size_t begin = histories.offsets[user], end = histories.offsets[user + 1];
          std::span<const ItemIndex> items(histories.items.data() + begin, end - begin);
          std::span<const float> values(histories.values.data() + begin, end - begin);
          bool scored = !items.empty() && model.ScoreHistory(items, values, row.data());
          if (!scored) model.ScoreUsers(std::span<const UserIndex>(&user, 1), row.data());
          from_history[k] = scored ? 1 : 0;
          for (ItemIndex item : items) row[item] = kNegInf;
          for (ItemIndex item : model.seen().RowIndices(user)) row[item] = kNegInf;
          for (float& score : row) {
            if (std::isnan(score)) score = kNegInf;
          }
          models::TopK(row.data(), n_items, job.ks.back(), list);
          FillListColumns(job, list.items, job.relevant.Of(user), &job.values[k * width], scratch);
        }
      },
      Schedule::kDynamic, 1);
  job.ctx.ReportProgress("evaluate", n_users, n_users);
}

// Mean of the defined (non-NaN) values of one column; NaN when none.
double ColumnMean(const std::vector<double>& values, std::size_t n_rows, std::size_t width,
                  std::size_t column, std::size_t* defined = nullptr) {
  double sum = 0;
  std::size_t count = 0;
  for (std::size_t row = 0; row < n_rows; ++row) {
    double value = values[row * width + column];
    if (std::isnan(value)) continue;
    sum += value;
    ++count;
  }
  if (defined != nullptr) *defined = count;
  return count > 0 ? sum / static_cast<double>(count) : kNaN;
}

// Rating-prediction error over every row of the part, in parallel over row blocks.
void RatingErrors(const models::Recommender& model, const data::Interactions& part,
                  const Selection& selection, int threads, EvalReport& report) {
  if (part.empty()) return;
  std::vector<float> predictions(part.size());
  const std::size_t block =
      std::max<std::size_t>(4096, part.size() / (8 * static_cast<std::size_t>(threads)) + 1);
  const std::size_t n_blocks = (part.size() + block - 1) / block;
  ParallelFor<std::size_t>(
      0, n_blocks, threads,
      [&](std::size_t b) {
        const std::size_t first = b * block;
        const std::size_t count = std::min(part.size(), first + block) - first;
        model.PredictPairs(std::span<const UserIndex>(part.users.data() + first, count),
                           std::span<const ItemIndex>(part.items.data() + first, count),
                           predictions.data() + first);
      },
      Schedule::kDynamic, 1);
  // A model may decline a pair (als with cold_start_strategy=nan predicts NaN for users
  // or items without training rows). Those pairs are left out and counted, not averaged
  // into a NaN.
  std::vector<float> defined_predictions, defined_truth;
  defined_predictions.reserve(predictions.size());
  defined_truth.reserve(predictions.size());
  for (std::size_t row = 0; row < predictions.size(); ++row) {
    if (std::isnan(predictions[row])) continue;
    defined_predictions.push_back(predictions[row]);
    defined_truth.push_back(part.ratings[row]);
  }
  const std::size_t undefined = predictions.size() - defined_predictions.size();
  if (undefined > 0) {
    report.notes.push_back(fmt::format("rmse/mae: {} of {} test pairs have no prediction (NaN, e.g. cold users or "
                                       "items) and are left out",
                                       undefined, predictions.size()));
  }
  std::optional<double> rmse = Rmse(defined_predictions, defined_truth);
  std::optional<double> mae = Mae(defined_predictions, defined_truth);
  if (selection.rmse && rmse) report.metrics["rmse"] = *rmse;
  if (selection.mae && mae) report.metrics["mae"] = *mae;
}

}  // namespace

// ---- options ------------------------------------------------------------------------

const std::vector<std::string>& MetricNames() {
  static const std::vector<std::string> names = {"precision", "recall",    "ndcg", "map",
                                                 "mrr",       "hit_rate",  "auc",  "coverage",
                                                 "novelty",   "diversity", "rmse", "mae"};
  return names;
}

std::pair<Protocol, int> EvalOptions::ParseProtocol(std::string_view text) {
  if (text == "full") return {Protocol::kFull, 0};
  if (text == "next-item") return {Protocol::kNextItem, 0};
  constexpr std::string_view kPrefix = "sampled:";
  if (text.substr(0, kPrefix.size()) == kPrefix) {
    std::string_view number = text.substr(kPrefix.size());
    int negatives = 0;
    auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), negatives);
    if (error == std::errc() && end == number.data() + number.size() && negatives >= 1) {
      return {Protocol::kSampled, negatives};
    }
  }
  throw InvalidArgument(fmt::format(
      "--protocol '{}' is invalid (valid: full, sampled:N with N >= 1 negatives per user, next-item)",
      text));
}

std::string EvalOptions::ProtocolLabel() const {
  if (protocol == Protocol::kNextItem) return "next-item";
  return protocol == Protocol::kFull ? std::string("full")
                                     : fmt::format("sampled:{}", sampled_negatives);
}

ColdCandidates EvalOptions::ParseColdCandidates(std::string_view text) {
  if (text == "cold") return ColdCandidates::kCold;
  if (text == "all") return ColdCandidates::kAll;
  throw InvalidArgument(fmt::format("--cold-candidates '{}' is invalid (valid: cold, all)", text));
}

void EvalOptions::Validate() const {
  if (ks.empty()) throw InvalidArgument("--k needs at least one cut-off");
  for (int k : ks) {
    if (k < 1 || k > 1'000'000)
      throw InvalidArgument(fmt::format("--k {} is out of range [1, 1000000]", k));
  }
  for (const auto& name : metrics) {
    if (std::find(MetricNames().begin(), MetricNames().end(), name) == MetricNames().end()) {
      throw InvalidArgument(fmt::format("--metrics: unknown metric '{}' (valid: {})", name,
                                        fmt::join(MetricNames(), ", ")));
    }
  }
  if (part != "test" && part != "val") {
    throw InvalidArgument(fmt::format("--part '{}' is invalid (valid: test, val)", part));
  }
  if (bootstrap_samples < 0) throw InvalidArgument("--bootstrap must be >= 0");
  if (protocol == Protocol::kSampled && sampled_negatives < 1) {
    throw InvalidArgument("--protocol sampled:N needs N >= 1");
  }
  if (relevance_threshold && !std::isfinite(*relevance_threshold)) {
    throw InvalidArgument("--relevance-threshold must be a finite number");
  }
  if (cold_items && protocol != Protocol::kFull) {
    throw InvalidArgument(fmt::format("--cold-items needs --protocol full (got {})", ProtocolLabel()));
  }
}

std::optional<std::size_t> PerUserTable::Column(std::string_view name) const {
  for (std::size_t column = 0; column < columns.size(); ++column) {
    if (columns[column] == name) return column;
  }
  return std::nullopt;
}

// ---- Evaluate -----------------------------------------------------------------------

EvalReport Evaluate(const models::Recommender& model, const data::PreparedDataset& prepared,
                    const EvalOptions& options, const Context& ctx) {
  const auto start = Clock::now();
  options.Validate();
  const data::Interactions* part = nullptr;
  const data::Interactions* other_part = nullptr;  // the other held-out part, if any
  if (options.part == "test") {
    part = &prepared.test;
    if (prepared.val) other_part = &*prepared.val;
  } else {
    if (!prepared.val) throw InvalidArgument("--part val: the prepared dataset has no val part");
    part = &*prepared.val;
    other_part = &prepared.test;
  }
  const std::size_t n_users = prepared.users.size();
  const std::size_t n_items = prepared.items.size();
  if (model.n_users() != n_users || model.n_items() != n_items) {
    throw InvalidArgument(
        fmt::format("the dataset has {} users / {} items but the model {} was trained on {} / {}",
                    n_users, n_items, model.Spec(), model.n_users(), model.n_items()));
  }
  if (model.seen().n_rows != n_users || model.seen().n_cols != n_items) {
    throw InvalidArgument(
        fmt::format("the model {} has no training history for this dataset ({} x {} seen matrix, "
                    "need {} x {}): fit it on "
                    "the dataset or set the train part with SetSeen",
                    model.Spec(), model.seen().n_rows, model.seen().n_cols, n_users, n_items));
  }
  const int threads = std::max(1, ctx.threads);

  EvalReport report;
  report.protocol = options.ProtocolLabel();
  report.part = options.part;
  report.model_spec = model.Spec();
  std::vector<int> ks = options.ks;
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  report.ks = ks;
  report.relevance_threshold = options.relevance_threshold;
  report.n_items = n_items;
  report.bootstrap_samples = options.bootstrap_samples;
  report.seed = options.seed;

  std::vector<std::vector<std::uint32_t>> categories;
  const bool wants_diversity =
      options.metrics.empty() ||
      std::count(options.metrics.begin(), options.metrics.end(), "diversity") > 0;
  if (wants_diversity && options.protocol == Protocol::kFull) categories = ItemCategories(prepared);
  const Selection selection = Select(options, model, !categories.empty(), report.notes);

  // Relevant items per user; users with rows in the part but none relevant are skipped.
  const auto threshold = options.relevance_threshold;
  // --cold-items: items without train rows.
  std::vector<std::uint8_t> cold;
  std::vector<ItemIndex> cold_catalog;
  if (options.cold_items) {
    cold.assign(n_items, 1);
    for (ItemIndex item : prepared.train.items) {
      if (item < n_items) cold[item] = 0;
    }
    for (std::size_t item = 0; item < n_items; ++item) {
      if (cold[item]) cold_catalog.push_back(static_cast<ItemIndex>(item));
    }
  }
  const UserGroups relevant = GroupByUser(*part, n_users, n_items, [&](std::size_t row) {
    return (!threshold || part->ratings[row] >= *threshold) &&
           (!options.cold_items || cold[part->items[row]] != 0);
  });
  const UserGroups part_items =
      GroupByUser(*part, n_users, n_items, [](std::size_t) { return true; });
  std::vector<UserIndex> users;
  for (std::size_t user = 0; user < n_users; ++user) {
    if (relevant.Size(static_cast<UserIndex>(user)) > 0) {
      users.push_back(static_cast<UserIndex>(user));
    } else if (part_items.Size(static_cast<UserIndex>(user)) > 0) {
      ++report.users_skipped;
    }
  }
  report.users_evaluated = users.size();
  if (users.empty()) {
    report.notes.push_back(fmt::format("no user has a relevant {}item in the {} part",
                                       options.cold_items ? "cold " : "", options.part));
  }
  if (options.cold_items) {
    EvalReport::ColdItems summary;
    summary.candidates = options.cold_candidates == ColdCandidates::kCold ? "cold" : "all";
    summary.catalog_cold_items = cold_catalog.size();
    std::vector<std::uint8_t> counted(n_items, 0);
    for (UserIndex user : users) {
      for (ItemIndex item : relevant.Of(user)) {
        summary.relevant_cold_items += counted[item] ? 0 : 1;
        counted[item] = 1;
      }
    }
    report.cold_items = summary;
  }

  PerUserTable& table = report.per_user;
  const Layout layout = MakeLayout(selection, ks, table.columns);
  table.users = users;
  table.relevant.resize(users.size());
  for (std::size_t k = 0; k < users.size(); ++k)
    table.relevant[k] = static_cast<std::uint32_t>(relevant.Size(users[k]));
  table.values.assign(users.size() * layout.width, kNaN);

  Job job{model,    options, ctx,          selection, layout, {}, n_items,
          relevant, users,   table.values, {},        0,      {},  {}};
  if (options.cold_items && options.cold_candidates == ColdCandidates::kCold) {
    job.candidates = cold_catalog;
  }
  job.ks.assign(ks.begin(), ks.end());
  if (selection.novelty) {
    // Popularity = distinct training users per item (the seen matrix holds distinct pairs).
    const CsrMatrix& seen = model.seen();
    job.popularity.assign(n_items, 0);
    for (ItemIndex item : seen.indices) ++job.popularity[item];
    for (std::size_t user = 0; user < seen.n_rows; ++user)
      job.n_train_users += seen.RowLength(user) > 0 ? 1 : 0;
  }
  job.categories = std::move(categories);

  CoverageAccumulator coverage(n_items);
  if (!users.empty() && (selection.NeedsLists() || selection.auc)) {
    if (options.protocol == Protocol::kFull) {
      RunFullProtocol(job, coverage);
    } else if (options.protocol == Protocol::kNextItem) {
      std::vector<const data::Interactions*> parts = {&prepared.train};
      if (options.part == "test" && prepared.val) parts.push_back(&*prepared.val);
      const Histories histories = BuildHistories(parts, n_users, n_items);
      std::vector<std::uint8_t> from_history;
      RunNextItemProtocol(job, histories, from_history);
      EvalReport::NextItemScoring scoring;
      for (std::uint8_t flag : from_history) (flag ? scoring.from_history : scoring.from_fitted_user)++;
      report.next_item = scoring;
      std::size_t several = 0;
      for (UserIndex user : users) several += relevant.Size(user) > 1 ? 1 : 0;
      if (several > 0) {
        report.notes.push_back(fmt::format(
            "next-item: {} users have more than one relevant {} item; all of them count as relevant "
            "(leave-one-out has exactly one: data prepare --split leave-one-out)",
            several, options.part));
      }
    } else {
      std::optional<UserGroups> other_items;
      if (other_part != nullptr) {
        other_items = GroupByUser(*other_part, n_users, n_items, [](std::size_t) { return true; });
      }
      RunSampledProtocol(job, part_items, other_items ? &*other_items : nullptr);
    }
  }
  if (selection.rmse || selection.mae) RatingErrors(model, *part, selection, threads, report);

  // Means over evaluated users (novelty / diversity: over users where they are defined).
  const std::size_t width = layout.width;
  if (!users.empty()) {
    for (std::size_t column = 0; column < width; ++column) {
      double mean = ColumnMean(table.values, users.size(), width, column);
      if (!std::isnan(mean)) report.metrics[table.columns[column]] = mean;
    }
    if (selection.coverage) {
      for (int k : ks)
        report.metrics[fmt::format("coverage@{}", k)] =
            coverage.CoverageAtK(static_cast<std::size_t>(k));
    }
  }

  // Display order and headline metrics.
  for (const auto& name : MetricNames()) {
    if (name == "auc" || name == "rmse" || name == "mae") {
      if (report.metrics.count(name)) report.metric_order.push_back(name);
      continue;
    }
    for (int k : ks) {
      std::string key = fmt::format("{}@{}", name, k);
      if (report.metrics.count(key)) report.metric_order.push_back(key);
    }
  }
  for (std::size_t a : selection.accuracy) {
    for (int k : ks) {
      std::string key = fmt::format("{}@{}", kAccuracyNames[a], k);
      if (report.metrics.count(key)) report.headline_metrics.push_back(key);
    }
  }
  if (report.metrics.count("auc")) report.headline_metrics.push_back("auc");

  // 95% percentile bootstrap over users: the accuracy columns share one set of
  // resamples; AUC (undefined for a user without negatives) is resampled over the
  // users where it is defined.
  if (options.bootstrap_samples > 0 && !users.empty()) {
    const std::size_t n_accuracy = selection.accuracy.size() * ks.size();
    if (n_accuracy > 0) {
      std::vector<double> rows(users.size() * n_accuracy);
      for (std::size_t row = 0; row < users.size(); ++row) {
        std::copy_n(
            table.values.begin() + static_cast<std::ptrdiff_t>(row * width + layout.accuracy_begin),
            n_accuracy, rows.begin() + static_cast<std::ptrdiff_t>(row * n_accuracy));
      }
      auto intervals =
          BootstrapMeanIntervals(rows, users.size(), n_accuracy, options.bootstrap_samples,
                                 DeriveSeed(options.seed, kBootstrapStream), threads);
      for (std::size_t j = 0; j < n_accuracy; ++j) {
        report.confidence_intervals[table.columns[layout.accuracy_begin + j]] = intervals[j];
      }
    }
    if (report.metrics.count("auc")) {
      std::vector<double> defined;
      for (std::size_t row = 0; row < users.size(); ++row) {
        double value = table.values[row * width + layout.auc];
        if (!std::isnan(value)) defined.push_back(value);
      }
      auto intervals =
          BootstrapMeanIntervals(defined, defined.size(), 1, options.bootstrap_samples,
                                 DeriveSeed(options.seed, kAucBootstrapStream), threads);
      report.confidence_intervals["auc"] = intervals[0];
    }
  }
  if (!options.keep_per_user) report.per_user = PerUserTable{};
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

// ---- output -------------------------------------------------------------------------

nlohmann::json EvalReport::ToJson() const {
  nlohmann::json metrics_json = nlohmann::json::object();
  for (const auto& [name, value] : metrics) metrics_json[name] = value;
  nlohmann::json intervals = nlohmann::json::object();
  for (const auto& [name, interval] : confidence_intervals)
    intervals[name] = {interval.first, interval.second};
  nlohmann::json out = {{"protocol", protocol},
                        {"part", part},
                        {"model", model_spec},
                        {"users_evaluated", users_evaluated},
                        {"users_skipped", users_skipped},
                        {"ks", ks},
                        {"n_items", n_items},
                        {"metrics", metrics_json},
                        {"confidence_intervals", intervals},
                        {"confidence_level", 0.95},
                        {"bootstrap_samples", bootstrap_samples},
                        {"seed", seed},
                        {"notes", notes},
                        {"seconds", seconds}};
  out["relevance_threshold"] =
      relevance_threshold ? nlohmann::json(*relevance_threshold) : nlohmann::json();
  if (cold_items) {
    out["cold_items"] = {{"candidates", cold_items->candidates},
                         {"catalog_cold_items", cold_items->catalog_cold_items},
                         {"relevant_cold_items", cold_items->relevant_cold_items}};
  }
  if (next_item) {
    out["next_item"] = {{"scored_from_history", next_item->from_history},
                        {"scored_from_fitted_user", next_item->from_fitted_user}};
  }
  return out;
}

namespace {

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

}  // namespace

void WritePerUserCsv(const EvalReport& report, const data::IdMap& users, const fs::path& path) {
  const PerUserTable& table = report.per_user;
  if (table.size() != report.users_evaluated) {
    throw InvalidArgument("per-user values were not kept (EvalOptions::keep_per_user)");
  }
  std::string text = "user_id,n_relevant";
  for (const auto& column : table.columns) {
    text += ',';
    text += CsvField(column);
  }
  text += '\n';
  const std::size_t width = table.columns.size();
  for (std::size_t row = 0; row < table.size(); ++row) {
    UserIndex user = table.users[row];
    text += CsvField(user < users.size() ? users.id(user) : std::to_string(user));
    text += fmt::format(",{}", table.relevant[row]);
    for (std::size_t column = 0; column < width; ++column) {
      double value = table.values[row * width + column];
      text += ',';
      if (!std::isnan(value)) text += fmt::format("{:.9g}", value);
    }
    text += '\n';
  }
  WriteFileAtomic(path, text);
}

nlohmann::json PairedComparison::ToJson() const {
  return {{"metric", metric},
          {"users", users},
          {"mean_a", mean_a},
          {"mean_b", mean_b},
          {"mean_difference", mean_difference},
          {"difference_ci", {difference_ci.first, difference_ci.second}},
          {"t", t_statistic},
          {"p_value", p_value}};
}

PairedComparison ComparePaired(const EvalReport& a, const EvalReport& b, const std::string& metric,
                               int bootstrap_samples, std::uint64_t seed, int threads) {
  auto column_of = [&](const EvalReport& report, const char* name) {
    if (report.per_user.size() != report.users_evaluated) {
      throw InvalidArgument(
          fmt::format("report {} ({}) has no per-user values (EvalOptions::keep_per_user)", name,
                      report.model_spec));
    }
    auto column = report.per_user.Column(metric);
    if (!column) {
      throw InvalidArgument(fmt::format("report {} ({}) has no per-user values of '{}'", name,
                                        report.model_spec, metric));
    }
    return *column;
  };
  const std::size_t column_a = column_of(a, "A");
  const std::size_t column_b = column_of(b, "B");
  // Both tables are sorted by user index: pair them by merging.
  std::vector<double> values_a, values_b, differences;
  std::size_t i = 0, j = 0;
  while (i < a.per_user.size() && j < b.per_user.size()) {
    const UserIndex user_a = a.per_user.users[i], user_b = b.per_user.users[j];
    if (user_a < user_b) {
      ++i;
    } else if (user_b < user_a) {
      ++j;
    } else {
      const double value_a = a.per_user.Value(i, column_a), value_b = b.per_user.Value(j, column_b);
      if (!std::isnan(value_a) && !std::isnan(value_b)) {
        values_a.push_back(value_a);
        values_b.push_back(value_b);
        differences.push_back(value_a - value_b);
      }
      ++i;
      ++j;
    }
  }
  if (differences.empty()) {
    throw InvalidArgument(
        fmt::format("no user has '{}' in both reports: nothing to compare", metric));
  }
  PairedComparison result;
  result.metric = metric;
  result.users = differences.size();
  auto mean = [](const std::vector<double>& values) {
    double sum = 0;
    for (double value : values) sum += value;
    return sum / static_cast<double>(values.size());
  };
  result.mean_a = mean(values_a);
  result.mean_b = mean(values_b);
  TTestResult test = PairedTTest(differences);
  result.mean_difference = test.mean;
  result.t_statistic = test.t;
  result.p_value = test.p_value;
  result.difference_ci = {kNaN, kNaN};
  if (bootstrap_samples > 0) {
    result.difference_ci = BootstrapMeanIntervals(differences, differences.size(), 1,
                                                  bootstrap_samples, seed, threads)[0];
  }
  return result;
}

}  // namespace recforge::eval
