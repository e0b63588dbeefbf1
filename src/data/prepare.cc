#include "recforge/data/prepare.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/core/memory.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"

namespace recforge::data {

using nlohmann::json;

// ---------------------------------------------------------------------------
// Option names and validation.

namespace {

struct DedupName {
  DedupPolicy value;
  std::string_view name;
};
constexpr DedupName kDedupNames[] = {{DedupPolicy::kLast, "last"},
                                     {DedupPolicy::kFirst, "first"},
                                     {DedupPolicy::kMax, "max"},
                                     {DedupPolicy::kMean, "mean"},
                                     {DedupPolicy::kSum, "sum"}};

struct SplitName {
  SplitStrategy value;
  std::string_view name;
};
// The first entry of each value is its main name; the others are accepted aliases.
constexpr SplitName kSplitNames[] = {{SplitStrategy::kTemporal, "temporal"},
                                     {SplitStrategy::kLastN, "last-n"},
                                     {SplitStrategy::kLeaveOneOut, "leave-one-out"},
                                     {SplitStrategy::kRatio, "ratio"},
                                     {SplitStrategy::kRandom, "random"},
                                     {SplitStrategy::kLastN, "last_n"},
                                     {SplitStrategy::kLeaveOneOut, "leave_one_out"},
                                     {SplitStrategy::kLeaveOneOut, "loo"}};
constexpr std::size_t kSplitMainNames = 5;

struct ColdName {
  ColdPolicy value;
  std::string_view name;
};
constexpr ColdName kColdNames[] = {{ColdPolicy::kKeep, "keep"}, {ColdPolicy::kDrop, "drop"}};

template <typename Table>
std::string AllowedNames(const Table& table, std::size_t count) {
  std::string names;
  for (std::size_t k = 0; k < count; ++k) {
    if (k > 0) names += ", ";
    names += table[k].name;
  }
  return names;
}

// Ratio thresholds go through a float, so 0.1f is recorded as 0.1 rather than
// 0.10000000149011612: the shortest decimal that reads back as the same float.
double ShortestDouble(float value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  double out = value;
  std::from_chars(buffer, result.ptr, out);
  return out;
}

}  // namespace

DedupPolicy ParseDedupPolicy(std::string_view name) {
  for (const auto& entry : kDedupNames) {
    if (entry.name == name) return entry.value;
  }
  throw InvalidArgument(fmt::format("dedup: unknown policy '{}' (allowed: {})", name,
                                    AllowedNames(kDedupNames, std::size(kDedupNames))));
}

SplitStrategy ParseSplitStrategy(std::string_view name) {
  for (const auto& entry : kSplitNames) {
    if (entry.name == name) return entry.value;
  }
  throw InvalidArgument(fmt::format("split: unknown strategy '{}' (allowed: {})", name,
                                    AllowedNames(kSplitNames, kSplitMainNames)));
}

ColdPolicy ParseColdPolicy(std::string_view name) {
  for (const auto& entry : kColdNames) {
    if (entry.name == name) return entry.value;
  }
  throw InvalidArgument(fmt::format("cold: unknown policy '{}' (allowed: {})", name,
                                    AllowedNames(kColdNames, std::size(kColdNames))));
}

std::string_view Name(DedupPolicy policy) {
  for (const auto& entry : kDedupNames) {
    if (entry.value == policy) return entry.name;
  }
  return "?";
}

std::string_view Name(SplitStrategy strategy) {
  for (const auto& entry : kSplitNames) {
    if (entry.value == strategy) return entry.name;
  }
  return "?";
}

std::string_view Name(ColdPolicy policy) {
  for (const auto& entry : kColdNames) {
    if (entry.value == policy) return entry.name;
  }
  return "?";
}

void PrepareOptions::Validate() const {
  if (Name(dedup) == "?") throw InvalidArgument("dedup: invalid policy value");
  if (Name(split) == "?") throw InvalidArgument("split: invalid strategy value");
  if (Name(cold) == "?") throw InvalidArgument("cold: invalid policy value");
  if (min_rating && !std::isfinite(*min_rating)) {
    throw InvalidArgument(fmt::format("min_rating must be a finite number, got {}", *min_rating));
  }
  if (implicit_threshold && !std::isfinite(*implicit_threshold)) {
    throw InvalidArgument(
        fmt::format("implicit_threshold must be a finite number, got {}", *implicit_threshold));
  }
  if (!(test_ratio > 0.0 && test_ratio < 1.0)) {
    throw InvalidArgument(fmt::format("test_ratio must be in (0, 1), got {}", test_ratio));
  }
  if (!(val_ratio >= 0.0 && val_ratio < 1.0)) {
    throw InvalidArgument(fmt::format("val_ratio must be in [0, 1), got {}", val_ratio));
  }
  const bool ratio_split = split == SplitStrategy::kTemporal || split == SplitStrategy::kRatio ||
                           split == SplitStrategy::kRandom;
  // Nothing is silently ignored (STYLE.md §5): a val option of another strategy is an error.
  if (val_ratio > 0.0 && !ratio_split) {
    throw InvalidArgument(
        fmt::format("val_ratio applies to the temporal, ratio and random splits, not to split={}{}",
                    Name(split), split == SplitStrategy::kLastN ? " (use val_n)" : ""));
  }
  if (ratio_split && !(test_ratio + val_ratio < 1.0)) {
    throw InvalidArgument(
        fmt::format("test_ratio + val_ratio must be < 1, got {} + {}", test_ratio, val_ratio));
  }
  if (last_n == 0) throw InvalidArgument("last_n must be >= 1, got 0");
  if (val_n > 0 && split != SplitStrategy::kLastN) {
    throw InvalidArgument(fmt::format("val_n applies to the last-n split only, not to split={}{}",
                                      Name(split), ratio_split ? " (use val_ratio)" : ""));
  }
}

json PrepareOptions::ToJson() const {
  json j = json::object();
  j["dedup"] = Name(dedup);
  j["min_rating"] = min_rating ? json(ShortestDouble(*min_rating)) : json(nullptr);
  j["implicit_threshold"] =
      implicit_threshold ? json(ShortestDouble(*implicit_threshold)) : json(nullptr);
  j["min_user"] = min_user;
  j["min_item"] = min_item;
  j["split"] = Name(split);
  j["test_ratio"] = test_ratio;
  j["val_ratio"] = val_ratio;
  j["last_n"] = last_n;
  j["val_n"] = val_n;
  j["cold"] = Name(cold);
  j["seed"] = seed;
  return j;
}

// ---------------------------------------------------------------------------
// Internals.

namespace {

using Clock = std::chrono::steady_clock;

// One interaction of a user bucket; the user is implied by the bucket. 16 bytes, so a
// 20M-row dataset needs 320 MB of buckets next to its 400 MB of input columns.
struct Record {
  Timestamp time;
  ItemIndex item;
  float rating;
};
static_assert(sizeof(Record) == 16);

// Marks a record removed by dedup; real item indices are < n_items <= kInvalidIndex.
constexpr ItemIndex kDeadItem = kInvalidIndex;

// Rows bucketed by user. User u's live rows are begin[u][0, count[u]), sorted by
// (time, item) once DedupFilterSort ran. Buckets are carved out of blocks of
// consecutive users (~64 MB each) rather than one array, so the output can be written
// block by block while each finished block is returned to the system: peak memory
// stays near input + output instead of input + buckets + output.
struct UserBuckets {
  struct Block {
    std::size_t first_user = 0;
    std::size_t end_user = 0;
    std::unique_ptr<Record[]> rows;
  };
  std::vector<Record*> begin;
  std::vector<std::uint64_t> count;
  std::vector<Block> blocks;

  std::size_t n_users() const { return count.size(); }
  std::span<Record> rows(std::size_t user) { return {begin[user], count[user]}; }
  std::span<const Record> rows(std::size_t user) const { return {begin[user], count[user]}; }
};

constexpr std::uint64_t kBlockRows = std::uint64_t{1} << 22;
// Users per work item of the dynamic per-user loops: small enough to balance skewed
// degrees, large enough that handing groups out costs nothing.
constexpr std::size_t kUserGroup = 64;
// Loops over fewer rows than this are not worth waking threads for.
constexpr std::uint64_t kParallelRows = std::uint64_t{1} << 15;

// floor(ratio * n) that floating error can never lower: 0.2 * 5 must give 1, also
// when the product comes out as 0.99999999999999989.
std::uint64_t FloorRatio(double ratio, std::uint64_t n) {
  double product = ratio * static_cast<double>(n);
  return static_cast<std::uint64_t>(std::floor(product * (1.0 + 1e-12) + 1e-9));
}

// How many per-thread scratch arrays of `bytes_per_part` to use for a pass over
// `rows` rows: threads only when there is work, and scratch of at most ~2 bytes per
// row (or 8 MiB), so datasets with huge id ranges and few rows fall back to one array.
int ScratchParts(int threads, std::uint64_t rows, std::uint64_t bytes_per_part) {
  if (threads <= 1 || rows < kParallelRows) return 1;
  std::uint64_t budget = std::max<std::uint64_t>(rows * 2, std::uint64_t{8} << 20);
  std::uint64_t affordable = budget / std::max<std::uint64_t>(bytes_per_part, 1);
  return static_cast<int>(
      std::clamp<std::uint64_t>(affordable, 1, static_cast<std::uint64_t>(threads)));
}

// Splits users into `parts` contiguous ranges of similar row counts; returns the
// parts + 1 boundaries.
std::vector<std::size_t> SplitUsersByRows(const std::vector<std::uint64_t>& count, int parts) {
  std::uint64_t total = 0;
  for (std::uint64_t c : count) total += c;
  std::vector<std::size_t> bounds(static_cast<std::size_t>(parts) + 1, count.size());
  bounds[0] = 0;
  std::uint64_t acc = 0;
  int next = 1;
  for (std::size_t user = 0; user < count.size() && next < parts; ++user) {
    acc += count[user];
    while (next < parts &&
           acc * static_cast<std::uint64_t>(parts) >= total * static_cast<std::uint64_t>(next)) {
      bounds[static_cast<std::size_t>(next++)] = user + 1;
    }
  }
  return bounds;
}

// Calls fn(part, user_begin, user_end) on `parts` contiguous user ranges in parallel.
template <typename Fn>
void ForEachUserRange(const std::vector<std::uint64_t>& count, int parts, Fn&& fn) {
  std::vector<std::size_t> bounds = SplitUsersByRows(count, parts);
  ParallelFor<int>(0, parts, parts, [&](int part) {
    fn(part, bounds[static_cast<std::size_t>(part)], bounds[static_cast<std::size_t>(part) + 1]);
  });
}

// Calls fn(user) for every user in [user_begin, user_end), in dynamic groups of users
// (degrees are skewed, so static ranges would leave a thread idle).
template <typename Fn>
void ForEachUserDynamic(std::size_t user_begin, std::size_t user_end, int threads, Fn&& fn) {
  std::size_t n_groups = (user_end - user_begin + kUserGroup - 1) / kUserGroup;
  ParallelFor<std::size_t>(
      0, n_groups, threads,
      [&](std::size_t group) {
        std::size_t first = user_begin + group * kUserGroup;
        std::size_t last = std::min(user_end, first + kUserGroup);
        for (std::size_t user = first; user < last; ++user) fn(user);
      },
      Schedule::kDynamic, 1);
}

// The same with one scratch object per thread (make_scratch() runs once on each
// thread), for loops whose scratch is too big to build per group: fn(user, scratch).
// Groups are handed out from a shared counter, i.e. a dynamic schedule.
template <typename MakeScratch, typename Fn>
void ForEachUserWithScratch(std::size_t user_begin, std::size_t user_end, int threads,
                            MakeScratch&& make_scratch, Fn&& fn) {
  std::atomic<std::size_t> next{user_begin};
  ParallelRegion(threads, [&](int) {
    auto scratch = make_scratch();
    while (true) {
      std::size_t first = next.fetch_add(kUserGroup, std::memory_order_relaxed);
      if (first >= user_end) break;
      std::size_t last = std::min(user_end, first + kUserGroup);
      for (std::size_t user = first; user < last; ++user) fn(user, scratch);
    }
  });
}

// Flags set concurrently from several threads. Each is written only with 1, and
// only after a relaxed load saw 0, so hot flags stay shared in every core's cache.
class ConcurrentFlags {
 public:
  explicit ConcurrentFlags(std::size_t n) : flags_(n) {}
  void Set(std::size_t k) {
    if (flags_[k].load(std::memory_order_relaxed) == 0) {
      flags_[k].store(1, std::memory_order_relaxed);
    }
  }
  bool Get(std::size_t k) const { return flags_[k].load(std::memory_order_relaxed) != 0; }
  std::uint64_t Count() const {
    std::uint64_t n = 0;
    for (const auto& flag : flags_) n += flag.load(std::memory_order_relaxed);
    return n;
  }
  std::size_t size() const { return flags_.size(); }

 private:
  std::vector<std::atomic<std::uint8_t>> flags_;
};

// Column lengths and index ranges; a corrupt dataset directory must not be able to
// make us write out of bounds.
void CheckInteractions(const Interactions& in, std::size_t n_users, std::size_t n_items) {
  std::size_t n = in.users.size();
  if (in.items.size() != n || in.ratings.size() != n || in.times.size() != n) {
    throw FormatError(fmt::format(
        "prepare: interaction columns differ in length (users {}, items {}, ratings {}, times {})",
        n, in.items.size(), in.ratings.size(), in.times.size()));
  }
  if (n_users > kInvalidIndex || n_items > kInvalidIndex) {
    throw FormatError(fmt::format("prepare: too many users ({}) or items ({}) for 32-bit indices",
                                  n_users, n_items));
  }
}

[[noreturn]] void ThrowIndexError(const char* what, std::size_t row, std::uint32_t index,
                                  std::size_t limit) {
  throw FormatError(fmt::format("prepare: row {} has {} index {} but the id map has {} entries",
                                row, what, index, limit));
}

// Per-key row counts of a u32 column (user or item indices), checking the range.
std::vector<std::uint64_t> CountKeys(const std::vector<std::uint32_t>& keys, std::size_t n_keys,
                                     const char* what, int threads) {
  const std::size_t n = keys.size();
  const int parts = ScratchParts(threads, n, n_keys * sizeof(std::uint64_t));
  std::vector<std::vector<std::uint64_t>> partial(static_cast<std::size_t>(parts));
  ParallelFor<int>(0, parts, parts, [&](int part) {
    auto& counts = partial[static_cast<std::size_t>(part)];
    counts.assign(n_keys, 0);
    std::size_t begin = n * static_cast<std::size_t>(part) / static_cast<std::size_t>(parts);
    std::size_t end = n * static_cast<std::size_t>(part + 1) / static_cast<std::size_t>(parts);
    for (std::size_t row = begin; row < end; ++row) {
      if (keys[row] >= n_keys) ThrowIndexError(what, row, keys[row], n_keys);
      ++counts[keys[row]];
    }
  });
  for (std::size_t part = 1; part < partial.size(); ++part) {
    for (std::size_t k = 0; k < n_keys; ++k) partial[0][k] += partial[part][k];
  }
  return std::move(partial[0]);
}

// Counting sort of the rows by user into blocks of buckets; rows of a user keep their
// input order (the dedup tie rules depend on it). Runs in `chunks` contiguous slices
// of the input, each with its own per-user cursors, when that memory is affordable.
UserBuckets BucketByUser(const Interactions& in, std::size_t n_users, std::size_t n_items,
                         int threads, ConcurrentFlags& items_present) {
  const std::size_t n = in.size();
  const int chunks = ScratchParts(threads, n, n_users * sizeof(std::uint64_t));
  // cursor[chunk * n_users + user]: rows of `user` in the chunk, then the chunk's
  // first slot within the user's bucket.
  std::vector<std::uint64_t> cursor(static_cast<std::size_t>(chunks) * n_users, 0);
  auto chunk_begin = [&](int chunk) {
    return n * static_cast<std::size_t>(chunk) / static_cast<std::size_t>(chunks);
  };
  ParallelFor<int>(0, chunks, chunks, [&](int chunk) {
    std::uint64_t* counts = cursor.data() + static_cast<std::size_t>(chunk) * n_users;
    for (std::size_t row = chunk_begin(chunk), end = chunk_begin(chunk + 1); row < end; ++row) {
      UserIndex user = in.users[row];
      ItemIndex item = in.items[row];
      if (user >= n_users) ThrowIndexError("user", row, user, n_users);
      if (item >= n_items) ThrowIndexError("item", row, item, n_items);
      ++counts[user];
      items_present.Set(item);
    }
  });

  UserBuckets buckets;
  buckets.begin.assign(n_users, nullptr);
  buckets.count.assign(n_users, 0);
  for (std::size_t user = 0; user < n_users; ++user) {
    std::uint64_t total = 0;
    for (int chunk = 0; chunk < chunks; ++chunk) {
      std::uint64_t& c = cursor[static_cast<std::size_t>(chunk) * n_users + user];
      std::uint64_t rows = c;
      c = total;
      total += rows;
    }
    // Dedup keys pack a row's position within its user into 32 bits.
    if (total > std::numeric_limits<std::uint32_t>::max()) {
      throw FormatError(
          fmt::format("prepare: user index {} has {} rows (limit 2^32 - 1)", user, total));
    }
    buckets.count[user] = total;
  }
  for (std::size_t first = 0; first < n_users;) {
    std::size_t last = first;
    std::uint64_t rows = 0;
    while (last < n_users && (rows < kBlockRows || last == first)) rows += buckets.count[last++];
    UserBuckets::Block block;
    block.first_user = first;
    block.end_user = last;
    // Uninitialised on purpose: pages are committed only when the scatter writes them.
    if (rows > 0) {
      block.rows = std::make_unique_for_overwrite<Record[]>(rows);
      AdviseHugePages(block.rows.get(), rows * sizeof(Record));
    }
    Record* next = block.rows.get();
    for (std::size_t user = first; user < last; ++user) {
      buckets.begin[user] = next;
      next += buckets.count[user];
    }
    buckets.blocks.push_back(std::move(block));
    first = last;
  }

  // The chunk's write position in each user's bucket.
  std::vector<Record*> next(cursor.size());
  for (std::size_t k = 0; k < next.size(); ++k) next[k] = buckets.begin[k % n_users] + cursor[k];
  cursor = std::vector<std::uint64_t>();

  ParallelFor<int>(0, chunks, chunks, [&](int chunk) {
    Record** user_next = next.data() + static_cast<std::size_t>(chunk) * n_users;
    // Every store goes to a different user's bucket and usually misses the cache, and
    // stores commit in order, so each miss would stall the next. Destinations are
    // therefore computed kAhead rows early and prefetched for writing.
    constexpr std::size_t kAhead = 16;
    Record* destination[kAhead];
    const std::size_t begin = chunk_begin(chunk), end = chunk_begin(chunk + 1);
    for (std::size_t row = begin; row < std::min(end, begin + kAhead); ++row) {
      destination[row - begin] = user_next[in.users[row]]++;
      __builtin_prefetch(destination[row - begin], 1);
    }
    for (std::size_t row = begin; row < end; ++row) {
      Record*& slot = destination[(row - begin) % kAhead];
      Record* target = slot;
      if (row + kAhead < end) {
        slot = user_next[in.users[row + kAhead]]++;
        __builtin_prefetch(slot, 1);
      }
      *target = Record{in.times[row], in.items[row], in.ratings[row]};
    }
  });
  return buckets;
}

// Whether `candidate`, seen after `kept` in input order, replaces it (DedupPolicy).
// ">=" on time lets a later tied row win, "<" keeps the earlier one.
inline bool Replaces(DedupPolicy policy, const Record& candidate, const Record& kept) {
  switch (policy) {
    case DedupPolicy::kFirst:
      return candidate.time < kept.time;
    case DedupPolicy::kMax:
      return candidate.rating > kept.rating ||
             (candidate.rating == kept.rating && candidate.time >= kept.time);
    default:  // last, mean, sum: the latest row carries the time
      return candidate.time >= kept.time;
  }
}

// Per-thread scratch of the per-user pass.
struct DedupScratch {
  // Per item: 1 + the last user index that had it (0: none yet), and the position of
  // its kept row in that user's bucket. Sized n_items, or empty when the catalog is too
  // large for one copy per thread (then dedup sorts keys instead).
  std::vector<std::uint32_t> stamp;
  std::vector<std::uint32_t> slot;
  std::vector<std::uint64_t> keys;  // (item, position) keys of the sorting fallback
  std::vector<double> sums;         // mean / sum: per kept position
  std::vector<std::uint32_t> counts;
};

// Keeps one record per item of a user's bucket (still in input order); returns the new
// row count. One pass with per-item stamps, so the common no-repeat case costs O(n).
std::uint64_t DedupUser(Record* rows, std::uint64_t n, std::uint32_t user, DedupPolicy policy,
                        DedupScratch& scratch) {
  if (n < 2) return n;
  const bool aggregate = policy == DedupPolicy::kMean || policy == DedupPolicy::kSum;
  bool any_repeat = false;
  auto merge = [&](std::uint64_t kept_at, std::uint64_t k) {
    if (!any_repeat) {
      any_repeat = true;
      if (aggregate) {
        // Sums in input order in double, so the result does not depend on anything
        // but the input.
        scratch.sums.resize(n);
        scratch.counts.assign(n, 0);
      }
    }
    if (aggregate) {
      if (scratch.counts[kept_at] == 0) {
        scratch.sums[kept_at] = rows[kept_at].rating;
        scratch.counts[kept_at] = 1;
      }
      scratch.sums[kept_at] += rows[k].rating;
      ++scratch.counts[kept_at];
    }
    if (Replaces(policy, rows[k], rows[kept_at])) rows[kept_at] = rows[k];
    rows[k].item = kDeadItem;
  };
  if (!scratch.stamp.empty()) {
    const std::uint32_t tag = user + 1;
    for (std::uint64_t k = 0; k < n; ++k) {
      ItemIndex item = rows[k].item;
      if (scratch.stamp[item] != tag) {
        scratch.stamp[item] = tag;
        scratch.slot[item] = static_cast<std::uint32_t>(k);
      } else {
        merge(scratch.slot[item], k);
      }
    }
  } else {
    // (item, position) keys: sorting them groups each item's rows in input order.
    scratch.keys.resize(n);
    for (std::uint64_t k = 0; k < n; ++k) scratch.keys[k] = (std::uint64_t{rows[k].item} << 32) | k;
    std::sort(scratch.keys.begin(), scratch.keys.end());
    std::uint64_t kept_at = 0;
    for (std::uint64_t k = 0; k < n; ++k) {
      std::uint64_t position = static_cast<std::uint32_t>(scratch.keys[k]);
      if (k > 0 && (scratch.keys[k] >> 32) == (scratch.keys[k - 1] >> 32)) {
        merge(kept_at, position);
      } else {
        kept_at = position;
      }
    }
  }
  if (!any_repeat) return n;
  if (aggregate) {
    for (std::uint64_t k = 0; k < n; ++k) {
      if (scratch.counts[k] == 0 || rows[k].item == kDeadItem) continue;
      double total = scratch.sums[k];
      if (policy == DedupPolicy::kMean) total /= scratch.counts[k];
      rows[k].rating = static_cast<float>(total);
    }
  }
  Record* kept =
      std::remove_if(rows, rows + n, [](const Record& r) { return r.item == kDeadItem; });
  return static_cast<std::uint64_t>(kept - rows);
}

// (time, item) order; a functor rather than a function pointer so std::sort inlines it.
struct TimeOrder {
  bool operator()(const Record& a, const Record& b) const {
    return a.time != b.time ? a.time < b.time : a.item < b.item;
  }
};

struct StageRows {
  std::uint64_t after_dedup = 0;
  std::uint64_t after_filter = 0;
};

// Per user: dedup, rating filter, then sort by (time, item). Everything after this
// works on time-ordered buckets.
StageRows DedupFilterSort(UserBuckets& buckets, std::size_t n_items, const PrepareOptions& options,
                          int threads) {
  std::optional<float> bound;
  if (options.min_rating) bound = *options.min_rating;
  if (options.implicit_threshold) {
    bound = bound ? std::max(*bound, *options.implicit_threshold) : *options.implicit_threshold;
  }
  const bool binarise = options.implicit_threshold.has_value();
  std::uint64_t rows_total = 0;
  for (std::uint64_t c : buckets.count) rows_total += c;
  // Per-thread stamps cost 8 bytes per item; worth it unless the catalog dwarfs the rows.
  const bool use_stamps =
      n_items * sizeof(std::uint32_t) * 2 * static_cast<std::uint64_t>(threads) <=
      std::max<std::uint64_t>(rows_total * 4, std::uint64_t{64} << 20);
  std::atomic<std::uint64_t> after_dedup{0}, after_filter{0};
  ForEachUserWithScratch(
      0, buckets.n_users(), threads,
      [&] {
        DedupScratch scratch;
        if (use_stamps) {
          scratch.stamp.assign(n_items, 0);
          scratch.slot.resize(n_items);
        }
        return scratch;
      },
      [&](std::size_t user, DedupScratch& scratch) {
        Record* rows = buckets.begin[user];
        std::uint64_t n = DedupUser(rows, buckets.count[user], static_cast<std::uint32_t>(user),
                                    options.dedup, scratch);
        after_dedup.fetch_add(n, std::memory_order_relaxed);
        if (bound) {
          float b = *bound;
          // `!(rating >= b)` also drops NaN ratings.
          n = static_cast<std::uint64_t>(
              std::remove_if(rows, rows + n, [b](const Record& r) { return !(r.rating >= b); }) -
              rows);
        }
        if (binarise) {
          for (std::uint64_t k = 0; k < n; ++k) rows[k].rating = 1.0f;
        }
        after_filter.fetch_add(n, std::memory_order_relaxed);
        // Inputs are often already in time order per user; skip the sort then.
        if (!std::is_sorted(rows, rows + n, TimeOrder())) std::sort(rows, rows + n, TimeOrder());
        buckets.count[user] = n;
      });
  return {after_dedup.load(), after_filter.load()};
}

// Row counts per item over the live rows of the buckets.
std::vector<std::uint64_t> ItemDegrees(const UserBuckets& buckets, std::size_t n_items,
                                       int threads) {
  std::uint64_t total = 0;
  for (std::uint64_t c : buckets.count) total += c;
  const int parts = ScratchParts(threads, total, n_items * sizeof(std::uint64_t));
  std::vector<std::vector<std::uint64_t>> partial(static_cast<std::size_t>(parts));
  ForEachUserRange(buckets.count, parts, [&](int part, std::size_t first, std::size_t last) {
    auto& degree = partial[static_cast<std::size_t>(part)];
    degree.assign(n_items, 0);
    for (std::size_t user = first; user < last; ++user) {
      for (const Record& r : buckets.rows(user)) ++degree[r.item];
    }
  });
  for (std::size_t part = 1; part < partial.size(); ++part) {
    for (std::size_t k = 0; k < n_items; ++k) partial[0][k] += partial[part][k];
  }
  return std::move(partial[0]);
}

struct KCoreFlags {
  std::vector<std::uint8_t> user_alive;
  std::vector<std::uint8_t> item_alive;
  bool removed_any = false;
};

// The k-core of the user-item multigraph whose edges are rows: the largest set of
// users and items in which every user keeps >= min_user rows and every item >= min_item
// rows among the kept ones. It is unique, so peeling (remove whatever is below its
// threshold, update the neighbours' degrees, repeat) reaches the same fixed point as
// repeated full passes, in one sweep over the rows instead of one per pass.
// for_each_item(user, fn) calls fn(item) for each row of the user. Users / items with
// no rows come out as not alive.
template <typename ForEachItem>
KCoreFlags PeelKCore(std::vector<std::uint64_t> user_degree, std::vector<std::uint64_t> item_degree,
                     std::uint32_t min_user, std::uint32_t min_item, ForEachItem&& for_each_item) {
  const std::size_t n_users = user_degree.size();
  const std::size_t n_items = item_degree.size();
  const std::uint64_t user_floor = std::max<std::uint32_t>(min_user, 1);
  const std::uint64_t item_floor = std::max<std::uint32_t>(min_item, 1);
  KCoreFlags flags;
  flags.user_alive.resize(n_users);
  flags.item_alive.resize(n_items);
  std::vector<std::uint32_t> dead_users, dead_items;
  for (std::size_t user = 0; user < n_users; ++user) {
    flags.user_alive[user] = user_degree[user] >= user_floor;
    if (!flags.user_alive[user] && user_degree[user] > 0) {
      dead_users.push_back(static_cast<std::uint32_t>(user));
    }
  }
  for (std::size_t item = 0; item < n_items; ++item) {
    flags.item_alive[item] = item_degree[item] >= item_floor;
    if (!flags.item_alive[item] && item_degree[item] > 0) {
      dead_items.push_back(static_cast<std::uint32_t>(item));
    }
  }
  flags.removed_any = !dead_users.empty() || !dead_items.empty();
  // With one side at threshold <= 1, removing rows can never push anything of that side
  // below its threshold in a way that matters (it merely loses rows): one pass is the
  // fixed point. Only when both thresholds bite do removals cascade.
  if (min_user <= 1 || min_item <= 1 || !flags.removed_any) return flags;

  // item -> users adjacency (one entry per row), built from the same rows.
  std::vector<std::uint64_t> item_offsets(n_items + 1, 0);
  for (std::size_t item = 0; item < n_items; ++item) {
    item_offsets[item + 1] = item_offsets[item] + item_degree[item];
  }
  std::vector<std::uint32_t> item_users(item_offsets[n_items]);
  {
    std::vector<std::uint64_t> fill(item_offsets.begin(), item_offsets.end() - 1);
    for (std::size_t user = 0; user < n_users; ++user) {
      for_each_item(user, [&](ItemIndex item) {
        item_users[fill[item]++] = static_cast<std::uint32_t>(user);
      });
    }
  }
  while (!dead_users.empty() || !dead_items.empty()) {
    if (!dead_users.empty()) {
      std::uint32_t user = dead_users.back();
      dead_users.pop_back();
      for_each_item(user, [&](ItemIndex item) {
        if (flags.item_alive[item] && --item_degree[item] < item_floor) {
          flags.item_alive[item] = 0;
          dead_items.push_back(item);
        }
      });
    } else {
      std::uint32_t item = dead_items.back();
      dead_items.pop_back();
      for (std::uint64_t p = item_offsets[item]; p < item_offsets[item + 1]; ++p) {
        std::uint32_t user = item_users[p];
        if (flags.user_alive[user] && --user_degree[user] < user_floor) {
          flags.user_alive[user] = 0;
          dead_users.push_back(user);
        }
      }
    }
  }
  return flags;
}

// Ordering key of the random split: a seeded hash of the (user, item) pair, which is
// unique after dedup, so the order is total and independent of row order and threads.
struct RandomKey {
  std::uint64_t hash;
  std::uint32_t user;
  std::uint32_t item;
  auto operator<=>(const RandomKey&) const = default;
};

// Keyed by two seed-derived 64-bit masks, so seeds that differ in a few bits still give
// unrelated orders; each step is a bijection, so distinct pairs never share a hash.
RandomKey MakeRandomKey(std::uint64_t seed, std::uint32_t user, std::uint32_t item) {
  std::uint64_t pair = (std::uint64_t{user} << 32) | item;
  return {Mix64(Mix64(pair ^ DeriveSeed(seed, 1)) ^ DeriveSeed(seed, 2)), user, item};
}

constexpr int kRadixBits = 16;
constexpr std::size_t kRadixBuckets = std::size_t{1} << kRadixBits;

// Sums per-part histograms (parts of 2^16 counters) into the first.
std::vector<std::uint64_t> ReduceHistograms(std::vector<std::vector<std::uint64_t>>& partial) {
  for (std::size_t part = 1; part < partial.size(); ++part) {
    for (std::size_t k = 0; k < kRadixBuckets; ++k) partial[0][k] += partial[part][k];
  }
  return std::move(partial[0]);
}

// The live-row time at ascending rank `rank` (< total rows), by histogram
// refinement over [lo, hi]: every pass narrows the range 65536-fold, so even the full
// int64 range needs at most four passes and no copy of the times.
Timestamp SelectTime(const UserBuckets& buckets, std::uint64_t rank, Timestamp lo, Timestamp hi,
                     std::uint64_t total, int threads) {
  const int parts = ScratchParts(threads, total, kRadixBuckets * sizeof(std::uint64_t));
  std::uint64_t below = 0;  // live rows with time < lo
  while (true) {
    std::uint64_t width = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    int shift = width < kRadixBuckets ? 0 : std::bit_width(width) - kRadixBits;
    std::vector<std::vector<std::uint64_t>> partial(static_cast<std::size_t>(parts));
    ForEachUserRange(buckets.count, parts, [&](int part, std::size_t first, std::size_t last) {
      auto& histogram = partial[static_cast<std::size_t>(part)];
      histogram.assign(kRadixBuckets, 0);
      for (std::size_t user = first; user < last; ++user) {
        auto rows = buckets.rows(user);
        // Rows are time-sorted: only the slice inside [lo, hi] is visited.
        auto begin = std::partition_point(rows.begin(), rows.end(),
                                          [&](const Record& r) { return r.time < lo; });
        for (auto it = begin; it != rows.end() && it->time <= hi; ++it) {
          std::uint64_t offset =
              static_cast<std::uint64_t>(it->time) - static_cast<std::uint64_t>(lo);
          ++histogram[offset >> shift];
        }
      }
    });
    std::vector<std::uint64_t> histogram = ReduceHistograms(partial);
    std::size_t bucket = 0;
    while (bucket + 1 < kRadixBuckets && below + histogram[bucket] <= rank)
      below += histogram[bucket++];
    std::uint64_t bucket_lo = static_cast<std::uint64_t>(lo) + (std::uint64_t{bucket} << shift);
    if (shift == 0) return static_cast<Timestamp>(bucket_lo);
    std::uint64_t bucket_width = (std::uint64_t{1} << shift) - 1;
    std::uint64_t bucket_hi =
        std::min(width - (std::uint64_t{bucket} << shift), bucket_width) + bucket_lo;
    lo = static_cast<Timestamp>(bucket_lo);
    hi = static_cast<Timestamp>(bucket_hi);
  }
}

// The random keys at ascending ranks `ranks` among all live rows (two passes: a
// histogram of the top 16 hash bits, then the few keys of the chosen buckets sorted).
std::vector<RandomKey> SelectRandomKeys(const UserBuckets& buckets,
                                        const std::vector<std::uint64_t>& ranks, std::uint64_t seed,
                                        std::uint64_t total, int threads) {
  const int parts = ScratchParts(threads, total, kRadixBuckets * sizeof(std::uint64_t));
  constexpr int kShift = 64 - kRadixBits;
  std::vector<std::vector<std::uint64_t>> partial(static_cast<std::size_t>(parts));
  ForEachUserRange(buckets.count, parts, [&](int part, std::size_t first, std::size_t last) {
    auto& histogram = partial[static_cast<std::size_t>(part)];
    histogram.assign(kRadixBuckets, 0);
    for (std::size_t user = first; user < last; ++user) {
      for (const Record& r : buckets.rows(user)) {
        ++histogram[MakeRandomKey(seed, static_cast<std::uint32_t>(user), r.item).hash >> kShift];
      }
    }
  });
  std::vector<std::uint64_t> histogram = ReduceHistograms(partial);
  std::vector<std::size_t> bucket_of(ranks.size());
  std::vector<std::uint64_t> below_of(ranks.size());
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    std::uint64_t below = 0;
    std::size_t bucket = 0;
    while (bucket + 1 < kRadixBuckets && below + histogram[bucket] <= ranks[k])
      below += histogram[bucket++];
    bucket_of[k] = bucket;
    below_of[k] = below;
  }
  std::vector<std::vector<RandomKey>> found(static_cast<std::size_t>(parts));
  ForEachUserRange(buckets.count, parts, [&](int part, std::size_t first, std::size_t last) {
    for (std::size_t user = first; user < last; ++user) {
      for (const Record& r : buckets.rows(user)) {
        RandomKey key = MakeRandomKey(seed, static_cast<std::uint32_t>(user), r.item);
        std::size_t bucket = key.hash >> kShift;
        if (std::find(bucket_of.begin(), bucket_of.end(), bucket) != bucket_of.end()) {
          found[static_cast<std::size_t>(part)].push_back(key);
        }
      }
    }
  });
  std::vector<RandomKey> candidates;
  for (auto& part : found) candidates.insert(candidates.end(), part.begin(), part.end());
  std::sort(candidates.begin(), candidates.end());
  std::vector<RandomKey> result(ranks.size());
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    // The chosen bucket's keys are contiguous in the sorted candidates.
    auto first = std::find_if(candidates.begin(), candidates.end(), [&](const RandomKey& key) {
      return (key.hash >> kShift) == bucket_of[k];
    });
    result[k] = *(first + static_cast<std::ptrdiff_t>(ranks[k] - below_of[k]));
  }
  return result;
}

enum Part : int { kTrain = 0, kVal = 1, kTest = 2, kDropped = -1 };

// Where each live row goes. For every strategy but random, a user's time-ordered rows
// split into three contiguous runs: train [0, train_end), val [train_end, val_end),
// test [val_end, n).
class SplitPlan {
 public:
  SplitPlan(const PrepareOptions& options, const UserBuckets& buckets, std::uint64_t total,
            int threads)
      : options_(options) {
    if (options.split == SplitStrategy::kTemporal) PlanTemporal(buckets, total, threads);
    if (options.split == SplitStrategy::kRandom) PlanRandom(buckets, total, threads);
  }

  // Calls fn(k, part) for each row k of the user's time-ordered rows, skipping train
  // rows unless with_train. Contiguous strategies walk their three runs without a
  // per-row decision.
  template <typename Fn>
  void ForEachRow(std::uint32_t user, std::span<const Record> rows, bool with_train,
                  Fn&& fn) const {
    if (per_row()) {
      const std::uint8_t* part = row_part_.data() + row_offset_[user];
      for (std::uint64_t k = 0; k < rows.size(); ++k) {
        if (part[k] != kTrain || with_train) fn(k, static_cast<Part>(part[k]));
      }
      return;
    }
    Runs runs = UserRuns(rows);
    if (with_train) {
      for (std::uint64_t k = 0; k < runs.train_end; ++k) fn(k, kTrain);
    }
    for (std::uint64_t k = runs.train_end; k < runs.val_end; ++k) fn(k, kVal);
    for (std::uint64_t k = runs.val_end; k < rows.size(); ++k) fn(k, kTest);
  }

  void Describe(json& split) const {
    if (test_cut_) split["test_cutoff_time"] = *test_cut_;
    if (val_cut_) split["val_cutoff_time"] = *val_cut_;
  }

 private:
  bool per_row() const { return options_.split == SplitStrategy::kRandom; }

  struct Runs {
    std::uint64_t train_end;
    std::uint64_t val_end;
  };
  Runs UserRuns(std::span<const Record> rows) const {
    const std::uint64_t n = rows.size();
    std::uint64_t n_test = 0, n_val = 0;
    switch (options_.split) {
      case SplitStrategy::kLastN:
        if (n > 0) {
          n_test = std::min<std::uint64_t>(options_.last_n, n - 1);
          n_val = std::min<std::uint64_t>(options_.val_n, n - 1 - n_test);
        }
        break;
      case SplitStrategy::kLeaveOneOut:
        n_test = n >= 2 ? 1 : 0;
        n_val = n >= 3 ? 1 : 0;
        break;
      case SplitStrategy::kRatio:
        if (n > 0) {
          n_test = std::min(n, std::max<std::uint64_t>(1, FloorRatio(options_.test_ratio, n)));
          if (options_.val_ratio > 0.0) {
            std::uint64_t room = n - n_test > 0 ? n - n_test - 1 : 0;
            n_val = std::min(room, std::max<std::uint64_t>(1, FloorRatio(options_.val_ratio, n)));
          }
        }
        break;
      case SplitStrategy::kTemporal: {
        auto at_or_after = [&](Timestamp cut) {
          return static_cast<std::uint64_t>(
              std::partition_point(rows.begin(), rows.end(),
                                   [cut](const Record& r) { return r.time < cut; }) -
              rows.begin());
        };
        std::uint64_t test_begin = test_cut_ ? at_or_after(*test_cut_) : n;
        std::uint64_t val_begin =
            val_cut_ ? std::min(at_or_after(*val_cut_), test_begin) : test_begin;
        return {val_begin, test_begin};
      }
      case SplitStrategy::kRandom:
        return {n, n};
    }
    return {n - n_test - n_val, n - n_test};
  }

  void PlanTemporal(const UserBuckets& buckets, std::uint64_t total, int threads) {
    std::uint64_t n_test = FloorRatio(options_.test_ratio, total);
    std::uint64_t n_val = FloorRatio(options_.val_ratio, total);
    if (total == 0) return;
    Timestamp lo = std::numeric_limits<Timestamp>::max();
    Timestamp hi = std::numeric_limits<Timestamp>::min();
    for (std::size_t user = 0; user < buckets.n_users(); ++user) {
      auto rows = buckets.rows(user);
      if (rows.empty()) continue;
      lo = std::min(lo, rows.front().time);
      hi = std::max(hi, rows.back().time);
    }
    // Test: every row at or after the time of rank total - n_test. Ties at the cutoff
    // all go to test, so the test part can be a little larger than n_test.
    if (n_test > 0 && n_test <= total) {
      test_cut_ = SelectTime(buckets, total - n_test, lo, hi, total, threads);
    }
    if (n_val > 0 && n_test + n_val <= total) {
      val_cut_ = SelectTime(buckets, total - n_test - n_val, lo, hi, total, threads);
    }
  }

  void PlanRandom(const UserBuckets& buckets, std::uint64_t total, int threads) {
    std::uint64_t n_test = FloorRatio(options_.test_ratio, total);
    std::uint64_t n_val = FloorRatio(options_.val_ratio, total);
    // Ranks in [0, n_test) are test and [n_test, n_test + n_val) val: the thresholds
    // are the keys at those two ranks (absent = no upper bound, never reached as the
    // ratios sum to < 1).
    std::vector<std::uint64_t> ranks;
    if (n_test < total) ranks.push_back(n_test);
    if (n_test + n_val < total) ranks.push_back(n_test + n_val);
    std::vector<RandomKey> keys = SelectRandomKeys(buckets, ranks, options_.seed, total, threads);
    std::optional<RandomKey> test_end, val_end;
    if (keys.size() >= 1) test_end = keys[0];
    if (keys.size() >= 2) val_end = keys[1];
    // Each row's part is decided once and kept (1 byte per row) for the later passes,
    // which would otherwise hash every row again.
    row_offset_.resize(buckets.n_users() + 1, 0);
    for (std::size_t user = 0; user < buckets.n_users(); ++user) {
      row_offset_[user + 1] = row_offset_[user] + buckets.count[user];
    }
    row_part_.resize(total);
    ForEachUserDynamic(0, buckets.n_users(), threads, [&](std::size_t user) {
      std::uint8_t* part = row_part_.data() + row_offset_[user];
      for (const Record& r : buckets.rows(user)) {
        RandomKey key = MakeRandomKey(options_.seed, static_cast<std::uint32_t>(user), r.item);
        *part++ = !test_end || key < *test_end ? kTest : !val_end || key < *val_end ? kVal : kTrain;
      }
    });
  }

  const PrepareOptions& options_;
  std::optional<Timestamp> test_cut_, val_cut_;
  std::vector<std::uint64_t> row_offset_;  // random: first live row of each user
  std::vector<std::uint8_t> row_part_;     // random: Part of each live row
};

// Users and items present in each set of interactions: counts after a stage.
json StageJson(std::string_view stage, std::uint64_t rows, std::uint64_t users,
               std::uint64_t items) {
  return json{{"stage", stage}, {"rows", rows}, {"users", users}, {"items", items}};
}

std::uint64_t CountNonZero(const std::vector<std::uint64_t>& values) {
  return static_cast<std::uint64_t>(
      std::count_if(values.begin(), values.end(), [](std::uint64_t v) { return v > 0; }));
}

// rows / users / items of one output part; rows are sorted by user, so distinct users
// are the number of changes.
json PartJson(const Interactions& part, std::size_t n_items) {
  std::uint64_t users = 0;
  for (std::size_t k = 0; k < part.size(); ++k) {
    users += k == 0 || part.users[k] != part.users[k - 1];
  }
  std::vector<std::uint8_t> seen(n_items, 0);
  for (ItemIndex item : part.items) seen[item] = 1;
  std::uint64_t items = static_cast<std::uint64_t>(std::count(seen.begin(), seen.end(), 1));
  return json{{"rows", part.size()}, {"users", users}, {"items", items}};
}

class StageTimer {
 public:
  explicit StageTimer(const Context& ctx) : ctx_(ctx), last_(Clock::now()) {}
  void Done(std::string_view stage, int index, int total) {
    auto now = Clock::now();
    ctx_.log().Debug("prepare: {} took {:.3f} s", stage,
                     std::chrono::duration<double>(now - last_).count());
    ctx_.ReportProgress("prepare", static_cast<std::uint64_t>(index),
                        static_cast<std::uint64_t>(total));
    last_ = now;
  }

 private:
  const Context& ctx_;
  Clock::time_point last_;
};

}  // namespace

// ---------------------------------------------------------------------------

std::vector<bool> KCoreMask(const Interactions& interactions, std::size_t n_users,
                            std::size_t n_items, std::uint32_t min_user, std::uint32_t min_item,
                            int threads) {
  CheckInteractions(interactions, n_users, n_items);
  const std::size_t n = interactions.size();
  std::vector<std::uint64_t> user_degree = CountKeys(interactions.users, n_users, "user", threads);
  std::vector<std::uint64_t> item_degree = CountKeys(interactions.items, n_items, "item", threads);
  // user -> items adjacency for the peel (counting sort by user).
  std::vector<std::uint64_t> offsets(n_users + 1, 0);
  for (std::size_t user = 0; user < n_users; ++user) {
    offsets[user + 1] = offsets[user] + user_degree[user];
  }
  std::vector<ItemIndex> user_items;
  if (min_user > 1 && min_item > 1) {
    user_items.resize(n);
    std::vector<std::uint64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t row = 0; row < n; ++row) {
      user_items[fill[interactions.users[row]]++] = interactions.items[row];
    }
  }
  KCoreFlags flags = PeelKCore(std::move(user_degree), std::move(item_degree), min_user, min_item,
                               [&](std::size_t user, auto&& fn) {
                                 for (std::uint64_t p = offsets[user]; p < offsets[user + 1]; ++p) {
                                   fn(user_items[p]);
                                 }
                               });
  std::vector<bool> mask(n);
  for (std::size_t row = 0; row < n; ++row) {
    mask[row] =
        flags.user_alive[interactions.users[row]] && flags.item_alive[interactions.items[row]];
  }
  return mask;
}

namespace {

// `consumed`, when set, is the caller's dataset handed over by value: its interaction
// columns are released right after bucketing, so the input, the buckets and the output
// never coexist (peak memory ~1.8x the binary dataset instead of ~2.2x).
PreparedDataset PrepareImpl(const Dataset& dataset, Dataset* consumed, const PrepareOptions& options,
                            const Context& ctx) {
  options.Validate();
  const Interactions& input = dataset.interactions;
  const std::uint64_t input_rows = input.size();
  // Waking threads costs more than preparing a few thousand rows.
  const int threads = input.size() < kParallelRows ? 1 : std::max(1, ctx.threads);
  const std::size_t n_users = dataset.n_users();
  const std::size_t n_items = dataset.n_items();
  CheckInteractions(input, n_users, n_items);
  StageTimer timer(ctx);
  constexpr int kStages = 6;

  json stages = json::array();
  ConcurrentFlags input_items(n_items);
  UserBuckets buckets = BucketByUser(input, n_users, n_items, threads, input_items);
  const std::uint64_t input_users = CountNonZero(buckets.count);
  const std::uint64_t input_item_count = input_items.Count();
  stages.push_back(StageJson("input", input.size(), input_users, input_item_count));
  if (input.empty()) throw InvalidArgument("prepare: the dataset has no interactions");
  if (consumed != nullptr) consumed->interactions = Interactions();
  timer.Done("bucket by user", 1, kStages);

  StageRows stage_rows = DedupFilterSort(buckets, n_items, options, threads);
  // Dedup never removes a user or an item, only repeated rows.
  stages.push_back(StageJson("dedup", stage_rows.after_dedup, input_users, input_item_count));
  std::vector<std::uint64_t> item_degree = ItemDegrees(buckets, n_items, threads);
  stages.push_back(StageJson("rating_filter", stage_rows.after_filter, CountNonZero(buckets.count),
                             CountNonZero(item_degree)));
  if (stage_rows.after_filter == 0) {
    // Input was not empty and dedup keeps >= 1 row per user, so a filter was set.
    std::string filter;
    if (options.min_rating) filter = fmt::format("min_rating={}", *options.min_rating);
    if (options.implicit_threshold) {
      if (!filter.empty()) filter += ", ";
      filter += fmt::format("implicit_threshold={}", *options.implicit_threshold);
    }
    throw InvalidArgument(
        fmt::format("prepare: no interactions left after the rating filter ({})", filter));
  }
  timer.Done("dedup, filter, sort", 2, kStages);

  KCoreFlags kcore = PeelKCore(buckets.count, item_degree, options.min_user, options.min_item,
                               [&](std::size_t user, auto&& fn) {
                                 for (const Record& r : buckets.rows(user)) fn(r.item);
                               });
  if (kcore.removed_any) {
    ForEachUserDynamic(0, n_users, threads, [&](std::size_t user) {
      if (!kcore.user_alive[user]) {
        buckets.count[user] = 0;
        return;
      }
      auto rows = buckets.rows(user);
      auto kept = std::remove_if(rows.begin(), rows.end(),
                                 [&](const Record& r) { return !kcore.item_alive[r.item]; });
      buckets.count[user] = static_cast<std::uint64_t>(kept - rows.begin());
    });
    item_degree = ItemDegrees(buckets, n_items, threads);
  }
  std::uint64_t total = 0;
  for (std::uint64_t c : buckets.count) total += c;
  stages.push_back(
      StageJson("kcore", total, CountNonZero(buckets.count), CountNonZero(item_degree)));
  if (total == 0) {
    throw InvalidArgument(
        fmt::format("prepare: no interactions left after the k-core filter "
                    "(min_user={}, min_item={})",
                    options.min_user, options.min_item));
  }
  kcore = KCoreFlags();
  timer.Done("k-core", 3, kStages);

  // Split: per-user part counts and which items each part touches.
  SplitPlan plan(options, buckets, total, threads);
  const bool has_val = options.split == SplitStrategy::kLeaveOneOut ||
                       (options.split == SplitStrategy::kLastN && options.val_n > 0) ||
                       options.val_ratio > 0.0;
  std::vector<std::uint32_t> part_rows[3];
  for (auto& rows : part_rows) rows.assign(n_users, 0);
  ConcurrentFlags item_in_part[3] = {ConcurrentFlags(n_items), ConcurrentFlags(n_items),
                                     ConcurrentFlags(n_items)};
  ForEachUserDynamic(0, n_users, threads, [&](std::size_t user) {
    auto rows = buckets.rows(user);
    std::uint32_t counts[3] = {0, 0, 0};
    plan.ForEachRow(static_cast<std::uint32_t>(user), rows, true, [&](std::uint64_t k, Part part) {
      ++counts[part];
      item_in_part[part].Set(rows[k].item);
    });
    for (int part = 0; part < 3; ++part) part_rows[part][user] = counts[part];
  });
  timer.Done("split", 4, kStages);

  // Cold start: val / test rows whose user or item has no train row. The drop decision
  // only reads train-side facts, so later passes can recompute it per row.
  const bool drop_cold = options.cold == ColdPolicy::kDrop;
  auto is_cold = [&](std::size_t user, ItemIndex item) {
    return part_rows[kTrain][user] == 0 || !item_in_part[kTrain].Get(item);
  };
  std::atomic<std::uint64_t> cold_rows[3] = {0, 0, 0};
  std::atomic<std::uint64_t> cold_users[3] = {0, 0, 0};
  ForEachUserDynamic(0, n_users, threads, [&](std::size_t user) {
    if (part_rows[kVal][user] == 0 && part_rows[kTest][user] == 0) return;
    if (part_rows[kTrain][user] == 0) {
      for (int part = 1; part < 3; ++part) cold_users[part] += part_rows[part][user] > 0 ? 1 : 0;
    }
    auto rows = buckets.rows(user);
    std::uint32_t cold[3] = {0, 0, 0};
    plan.ForEachRow(static_cast<std::uint32_t>(user), rows, false, [&](std::uint64_t k, Part part) {
      if (is_cold(user, rows[k].item)) ++cold[part];
    });
    for (int part = 1; part < 3; ++part) cold_rows[part] += cold[part];
    // Dropping removes every cold row (all val / test rows of a user without train rows).
    if (drop_cold) {
      for (int part = 1; part < 3; ++part) part_rows[part][user] -= cold[part];
    }
  });
  json cold = json::object();
  cold["policy"] = Name(options.cold);
  std::uint64_t rows_dropped = 0;
  for (int part = 1; part < 3; ++part) {
    if (part == kVal && !has_val) continue;
    std::uint64_t cold_items = 0;
    for (std::size_t item = 0; item < n_items; ++item) {
      cold_items += item_in_part[part].Get(item) && !item_in_part[kTrain].Get(item);
    }
    cold[part == kVal ? "val" : "test"] =
        json{{"users_not_in_train", cold_users[part].load()},
             {"items_not_in_train", cold_items},
             {"rows_with_cold_user_or_item", cold_rows[part].load()}};
    if (drop_cold) rows_dropped += cold_rows[part].load();
  }
  cold["rows_dropped"] = rows_dropped;
  // Compact the id maps to what remains, in the original order. Without dropping,
  // every live row is in some part; with it, every kept val / test row has a train item.
  std::vector<UserIndex> new_user(n_users, kInvalidIndex);
  std::vector<ItemIndex> new_item(n_items, kInvalidIndex);
  PreparedDataset out;
  {
    std::vector<std::string> ids;
    for (std::size_t user = 0; user < n_users; ++user) {
      if (part_rows[kTrain][user] + part_rows[kVal][user] + part_rows[kTest][user] == 0) continue;
      new_user[user] = static_cast<UserIndex>(ids.size());
      ids.push_back(dataset.users.id(static_cast<std::uint32_t>(user)));
    }
    out.users = IdMap(std::move(ids));
    ids.clear();
    for (std::size_t item = 0; item < n_items; ++item) {
      bool kept = item_in_part[kTrain].Get(item) ||
                  (!drop_cold && (item_in_part[kVal].Get(item) || item_in_part[kTest].Get(item)));
      if (!kept) continue;
      new_item[item] = static_cast<ItemIndex>(ids.size());
      ids.push_back(dataset.items.id(static_cast<std::uint32_t>(item)));
    }
    out.items = IdMap(std::move(ids));
  }
  // Item metadata is kept whole: entries of items without interactions still help
  // cold-start models.
  if (consumed != nullptr) {
    out.item_info = std::move(consumed->item_info);
  } else {
    out.item_info = dataset.item_info;
  }
  timer.Done("cold start", 5, kStages);

  // Write the parts block by block; each block's buckets are freed as soon as its rows
  // are copied, so memory moves from the buckets to the output instead of doubling.
  if (has_val) out.val.emplace();
  Interactions* parts[3] = {&out.train, has_val ? &*out.val : nullptr, &out.test};
  for (int part = 0; part < 3; ++part) {
    if (parts[part] == nullptr) continue;
    std::uint64_t rows = 0;
    for (std::uint32_t c : part_rows[part]) rows += c;
    parts[part]->Reserve(rows);
  }
  for (auto& block : buckets.blocks) {
    const std::size_t first = block.first_user;
    const std::size_t n_block_users = block.end_user - block.first_user;
    // slot[part * n_block_users + k]: next output position of the block's k-th user.
    std::vector<std::uint64_t> slot(3 * n_block_users);
    for (int part = 0; part < 3; ++part) {
      if (parts[part] == nullptr) continue;
      std::uint64_t next = parts[part]->size();
      for (std::size_t k = 0; k < n_block_users; ++k) {
        slot[static_cast<std::size_t>(part) * n_block_users + k] = next;
        next += part_rows[part][first + k];
      }
      parts[part]->Resize(next);
    }
    ForEachUserDynamic(first, block.end_user, threads, [&](std::size_t user) {
      if (new_user[user] == kInvalidIndex) return;
      auto rows = buckets.rows(user);
      std::uint64_t* user_slot = slot.data() + (user - first);
      plan.ForEachRow(
          static_cast<std::uint32_t>(user), rows, true, [&](std::uint64_t k, Part part) {
            const Record& row = rows[k];
            if (part != kTrain && drop_cold && is_cold(user, row.item)) return;
            Interactions& target = *parts[part];
            std::uint64_t at = user_slot[static_cast<std::size_t>(part) * n_block_users]++;
            target.users[at] = new_user[user];
            target.items[at] = new_item[row.item];
            target.ratings[at] = row.rating;
            target.times[at] = row.time;
          });
    });
    block.rows.reset();
  }
  timer.Done("write parts", 6, kStages);

  json split = json::object();
  split["strategy"] = Name(options.split);
  split["train_rows"] = out.train.size();
  if (out.val) split["val_rows"] = out.val->size();
  split["test_rows"] = out.test.size();
  plan.Describe(split);
  stages.push_back(StageJson("output",
                             out.train.size() + (out.val ? out.val->size() : 0) + out.test.size(),
                             out.users.size(), out.items.size()));

  json parent = json::object();
  if (dataset.meta.contains("content_hash")) parent["content_hash"] = dataset.meta["content_hash"];
  // The raw files behind the dataset, by content (paths would break byte-identical
  // output across machines): lineage also when the input was ingested on the fly.
  if (dataset.meta.contains("sources") && dataset.meta["sources"].is_array()) {
    json sources = json::array();
    for (const json& source : dataset.meta["sources"]) {
      sources.push_back({{"file", source.value("file", std::string())},
                         {"format", source.value("format", std::string())},
                         {"sha256", source.value("sha256", std::string())}});
    }
    parent["sources"] = sources;
  }
  parent["rows"] = input_rows;
  parent["n_users"] = n_users;
  parent["n_items"] = n_items;

  out.meta = json::object();
  out.meta["kind"] = "prepared";
  out.meta["parameters"] = options.ToJson();
  out.meta["parent"] = parent;
  out.meta["stages"] = stages;
  out.meta["split"] = split;
  out.meta["cold"] = cold;
  if (dataset.meta.contains("parse_errors")) {
    out.meta["source_parse_errors"] = dataset.meta["parse_errors"];
  }
  out.part_meta[kTrain] = PartJson(out.train, out.items.size());
  out.part_meta[kVal] = out.val ? PartJson(*out.val, out.items.size()) : json(nullptr);
  out.part_meta[kTest] = PartJson(out.test, out.items.size());
  return out;
}

}  // namespace

PreparedDataset Prepare(const Dataset& dataset, const PrepareOptions& options, const Context& ctx) {
  return PrepareImpl(dataset, nullptr, options, ctx);
}

PreparedDataset Prepare(Dataset&& dataset, const PrepareOptions& options, const Context& ctx) {
  return PrepareImpl(dataset, &dataset, options, ctx);
}

}  // namespace recforge::data
