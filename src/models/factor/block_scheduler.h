// Lock-free, deterministic parallel SGD over a block grid (LibMF; STYLE.md §7).
//
// The training matrix (users x items) is cut into `bins` row bins and `bins` column
// groups. Two blocks that share neither a row bin nor a column group touch disjoint
// user rows and disjoint item rows, so they can run at the same time without locks.
//
// Determinism. LibMF hands a free block to whichever worker asks first, so the order
// of updates (and the model) depends on timing. Here an epoch is a fixed sequence of
// `bins` rounds; a round is `bins` blocks that pairwise share no row bin and no column
// group (a permuted diagonal of the grid), and rounds are separated by a barrier. The
// blocks of a round are independent, so it does not matter which thread runs which:
// with each block's random stream derived from (seed, epoch, block), the model depends
// only on the data, the seed and `bins` — never on timing or lock contention.
//
// Column micro-bins. Items are dealt into bins * col_splits micro-bins once; every
// epoch the micro-bins are regrouped at random into `bins` column groups. Pairwise
// losses (BPR) draw the negative item from the positive's column group (the only
// items the block may write), so a fixed grouping would never compare items of
// different groups and would leave each group's score offset free. Regrouping every
// epoch lets every pair of micro-bins meet (about one epoch in `bins`).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "recforge/core/csr.h"
#include "recforge/core/parallel.h"
#include "recforge/core/random.h"
#include "recforge/core/types.h"

namespace recforge::models {

// Fisher-Yates shuffle of `first` and, when non-empty, `second` (same length) with the
// same permutation. Written out rather than std::shuffle so the permutation does not
// depend on the standard library's distribution code.
template <typename A, typename B>
void ShuffleTogether(std::span<A> first, std::span<B> second, Rng& rng) {
  for (std::size_t k = first.size(); k > 1; --k) {
    std::size_t other = rng.Below(k);
    std::swap(first[k - 1], first[other]);
    if (!second.empty()) std::swap(second[k - 1], second[other]);
  }
}

// One training interaction, 8 bytes, as stored in the grid.
struct BlockEntry {
  UserIndex user;
  ItemIndex item;
};

// The interactions of a CSR matrix grouped by (row bin, column micro-bin).
//
// Binning: rows and items are sorted by decreasing degree (ties broken by a seeded
// random key) and dealt to bins in a "snake" order (0, 1, .., n-1, n-1, .., 0, ..),
// which balances both the number of rows and the number of interactions per bin, so
// the blocks of a round take similar time even on Zipf-skewed data.
//
// Memory: 8 bytes per interaction (+4 with values) + 8 bytes per user and item.
// Build cost: O(nnz + (n_users + n_items) log(n_users + n_items)), one pass in parallel.
// Thread-safety: const methods are safe concurrently; MutableMicroBlock() of
// distinct micro-blocks may be used concurrently.
class BlockGrid {
 public:
  // bins >= 1, col_splits >= 1; keep_values stores the CSR values (ratings) beside
  // the entries. Within a micro-block, entries are in CSR order (by user, then item).
  static BlockGrid Build(const CsrMatrix& user_items, int bins, int col_splits, std::uint64_t seed,
                         bool keep_values, int threads);

  int bins() const { return bins_; }
  int col_splits() const { return col_splits_; }
  int col_micro_bins() const { return bins_ * col_splits_; }
  std::size_t nnz() const { return entries_.size(); }

  std::uint32_t RowBin(UserIndex user) const { return row_bin_[user]; }
  std::uint32_t ColMicroBin(ItemIndex item) const { return col_micro_bin_[item]; }

  // Entries (and values, empty without keep_values) of micro-block (row_bin, micro_bin).
  std::span<const BlockEntry> MicroBlock(int row_bin, int micro_bin) const;
  std::span<const float> MicroValues(int row_bin, int micro_bin) const;
  // Mutable views, e.g. to shuffle a micro-block in place (entries and values together).
  std::span<BlockEntry> MutableMicroBlock(int row_bin, int micro_bin);
  std::span<float> MutableMicroValues(int row_bin, int micro_bin);

  // Items of a column micro-bin, ascending.
  std::span<const ItemIndex> MicroBinItems(int micro_bin) const;
  // Every entry (all micro-blocks back to back) and its values.
  std::span<const BlockEntry> entries() const { return entries_; }
  std::span<const float> values() const { return values_; }

 private:
  std::size_t MicroIndex(int row_bin, int micro_bin) const {
    return static_cast<std::size_t>(row_bin) * col_micro_bins() + micro_bin;
  }
  int bins_ = 1;
  int col_splits_ = 1;
  std::vector<std::uint32_t> row_bin_;        // per user
  std::vector<std::uint32_t> col_micro_bin_;  // per item
  std::vector<std::uint64_t> micro_offsets_;  // bins * col_micro_bins + 1 offsets into entries_
  std::vector<BlockEntry> entries_;
  std::vector<float> values_;
  std::vector<std::uint64_t> bin_item_offsets_;  // col_micro_bins + 1 offsets into bin_items_
  std::vector<ItemIndex> bin_items_;
};

// One block of an epoch: a row bin and a column group. `id` = row_bin * bins +
// col_group is unique within the epoch (use it to index per-block accumulators).
struct GridBlock {
  std::uint32_t row_bin = 0;
  std::uint32_t col_group = 0;
  std::uint32_t id = 0;
};

// What one epoch runs: the column grouping and the rounds, in order.
struct EpochPlan {
  int bins = 1;
  int col_splits = 1;
  // Column group g consists of micro-bins group_micro_bins[g * col_splits .. +col_splits).
  std::vector<std::uint32_t> group_micro_bins;
  // rounds[r] = `bins` blocks that pairwise share no row bin and no column group.
  std::vector<std::vector<GridBlock>> rounds;

  std::span<const std::uint32_t> GroupMicroBins(std::uint32_t col_group) const {
    return std::span<const std::uint32_t>(group_micro_bins)
        .subspan(col_group * col_splits, col_splits);
  }
};

// Plans and runs epochs over a bins x bins grid. Cheap to copy; const and
// thread-safe.
class BlockScheduler {
 public:
  BlockScheduler(int bins, int col_splits, std::uint64_t seed)
      : bins_(bins < 1 ? 1 : bins), col_splits_(col_splits < 1 ? 1 : col_splits), seed_(seed) {}

  int bins() const { return bins_; }
  std::size_t n_blocks() const { return static_cast<std::size_t>(bins_) * bins_; }

  // The plan of `epoch` (any integer; a pure function of seed and epoch): a random
  // regrouping of the column micro-bins and a random order of the `bins` diagonals,
  // each diagonal permuted. Every (row bin, column group) block occurs exactly once.
  EpochPlan Plan(int epoch) const;

  // Runs fn(block) for every block of `plan` on `threads` threads: the rounds in
  // order with a barrier after each, the blocks of a round spread dynamically over
  // the threads. fn must only write rows of its block's row bin and column group.
  // Exceptions thrown by fn are rethrown after the round (ParallelFor).
  template <typename Fn>
  static void Run(const EpochPlan& plan, int threads, Fn&& fn) {
    for (const auto& round : plan.rounds) {
      ParallelFor<std::size_t>(
          0, round.size(), threads, [&](std::size_t k) { fn(round[k]); }, Schedule::kDynamic, 1);
    }
  }

 private:
  int bins_;
  int col_splits_;
  std::uint64_t seed_;
};

// Grid size for `threads` workers: at least 2 blocks per thread and round (so a slow
// block does not idle the others), at least 8 (so results agree for 1 to 4 threads),
// and small enough that each row bin has >= min_rows rows and each column micro-bin
// >= min_items items (tiny data sets get a 1 x 1 grid, i.e. serial SGD).
int AutoBins(int threads, std::size_t n_users, std::size_t n_items, int col_splits,
             std::size_t min_rows = 32, std::size_t min_items = 16);

// Threads worth using for an epoch of `nnz` updates on a bins x bins grid: each round
// (nnz / bins updates) is split over at most one thread per `min_per_thread` updates.
// A round ends with a barrier, and when other processes share the cores a thread can
// wait a whole scheduler time slice there, so small data runs on fewer threads. The
// model does not depend on it (see BlockScheduler).
inline int SgdThreads(int threads, std::size_t nnz, int bins, std::size_t min_per_thread = 50000) {
  const std::size_t per_round = nnz / static_cast<std::size_t>(std::max(1, bins));
  const std::size_t useful =
      std::max<std::size_t>(1, per_round / std::max<std::size_t>(1, min_per_thread));
  return static_cast<int>(
      std::min<std::size_t>(static_cast<std::size_t>(std::max(1, threads)), useful));
}

}  // namespace recforge::models
