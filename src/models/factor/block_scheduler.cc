#include "block_scheduler.h"

#include <algorithm>
#include <numeric>

#include "recforge/core/random.h"

namespace recforge::models {
namespace {

// Deals `n` rows to `bins` bins in snake order of decreasing degree. Ties are broken
// by a seeded random key, so equal-degree rows do not land in bins by index order.
std::vector<std::uint32_t> SnakeBins(std::size_t n, int bins, std::uint64_t seed,
                                     const std::vector<std::uint64_t>& degree) {
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::vector<std::uint64_t> key(n);
  for (std::size_t k = 0; k < n; ++k) key[k] = Mix64(seed + k);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return degree[a] != degree[b] ? degree[a] > degree[b] : key[a] < key[b];
  });
  std::vector<std::uint32_t> bin(n);
  const std::size_t period = 2 * static_cast<std::size_t>(bins);
  for (std::size_t rank = 0; rank < n; ++rank) {
    std::size_t phase = rank % period;
    bin[order[rank]] = static_cast<std::uint32_t>(
        phase < static_cast<std::size_t>(bins) ? phase : period - 1 - phase);
  }
  return bin;
}

}  // namespace

BlockGrid BlockGrid::Build(const CsrMatrix& user_items, int bins, int col_splits,
                           std::uint64_t seed, bool keep_values, int threads) {
  BlockGrid grid;
  grid.bins_ = std::max(1, bins);
  grid.col_splits_ = std::max(1, col_splits);
  const std::size_t n_users = user_items.n_rows;
  const std::size_t n_items = user_items.n_cols;
  const int n_micro = grid.col_micro_bins();

  std::vector<std::uint64_t> user_degree(n_users), item_degree(n_items, 0);
  for (std::size_t user = 0; user < n_users; ++user) user_degree[user] = user_items.RowLength(user);
  for (std::uint32_t item : user_items.indices) ++item_degree[item];
  grid.row_bin_ = SnakeBins(n_users, grid.bins_, DeriveSeed(seed, 1), user_degree);
  grid.col_micro_bin_ = SnakeBins(n_items, n_micro, DeriveSeed(seed, 2), item_degree);

  // Items of each micro-bin, ascending (a counting sort keeps them ordered).
  grid.bin_item_offsets_.assign(n_micro + 1, 0);
  for (std::size_t item = 0; item < n_items; ++item) {
    ++grid.bin_item_offsets_[grid.col_micro_bin_[item] + 1];
  }
  std::partial_sum(grid.bin_item_offsets_.begin(), grid.bin_item_offsets_.end(),
                   grid.bin_item_offsets_.begin());
  grid.bin_items_.resize(n_items);
  {
    std::vector<std::uint64_t> cursor(grid.bin_item_offsets_.begin(),
                                      grid.bin_item_offsets_.end() - 1);
    for (std::size_t item = 0; item < n_items; ++item) {
      grid.bin_items_[cursor[grid.col_micro_bin_[item]]++] = static_cast<ItemIndex>(item);
    }
  }

  // Users of each row bin, ascending, and the interactions per row bin: each row bin
  // owns a contiguous region of entries_, so the bins fill in parallel.
  std::vector<std::vector<UserIndex>> bin_users(grid.bins_);
  std::vector<std::uint64_t> bin_start(grid.bins_ + 1, 0);
  for (std::size_t user = 0; user < n_users; ++user) {
    bin_users[grid.row_bin_[user]].push_back(static_cast<UserIndex>(user));
    bin_start[grid.row_bin_[user] + 1] += user_degree[user];
  }
  std::partial_sum(bin_start.begin(), bin_start.end(), bin_start.begin());

  grid.entries_.resize(user_items.nnz());
  if (keep_values) grid.values_.resize(user_items.nnz());
  grid.micro_offsets_.assign(static_cast<std::size_t>(grid.bins_) * n_micro + 1, 0);
  grid.micro_offsets_.back() = user_items.nnz();
  ParallelFor<int>(
      0, grid.bins_, threads,
      [&](int row_bin) {
        std::vector<std::uint64_t> count(n_micro, 0);
        for (UserIndex user : bin_users[row_bin]) {
          for (std::uint32_t item : user_items.RowIndices(user)) ++count[grid.col_micro_bin_[item]];
        }
        std::vector<std::uint64_t> cursor(n_micro);
        std::uint64_t offset = bin_start[row_bin];
        for (int micro = 0; micro < n_micro; ++micro) {
          grid.micro_offsets_[grid.MicroIndex(row_bin, micro)] = offset;
          cursor[micro] = offset;
          offset += count[micro];
        }
        for (UserIndex user : bin_users[row_bin]) {
          auto items = user_items.RowIndices(user);
          auto values = user_items.RowValues(user);
          for (std::size_t k = 0; k < items.size(); ++k) {
            std::uint64_t at = cursor[grid.col_micro_bin_[items[k]]]++;
            grid.entries_[at] = BlockEntry{user, items[k]};
            if (keep_values) grid.values_[at] = values[k];
          }
        }
      },
      Schedule::kDynamic, 1);
  return grid;
}

std::span<const BlockEntry> BlockGrid::MicroBlock(int row_bin, int micro_bin) const {
  std::size_t index = MicroIndex(row_bin, micro_bin);
  return std::span<const BlockEntry>(entries_).subspan(
      micro_offsets_[index], micro_offsets_[index + 1] - micro_offsets_[index]);
}

std::span<const float> BlockGrid::MicroValues(int row_bin, int micro_bin) const {
  if (values_.empty()) return {};
  std::size_t index = MicroIndex(row_bin, micro_bin);
  return std::span<const float>(values_).subspan(micro_offsets_[index],
                                                 micro_offsets_[index + 1] - micro_offsets_[index]);
}

std::span<BlockEntry> BlockGrid::MutableMicroBlock(int row_bin, int micro_bin) {
  std::size_t index = MicroIndex(row_bin, micro_bin);
  return std::span<BlockEntry>(entries_).subspan(micro_offsets_[index],
                                                 micro_offsets_[index + 1] - micro_offsets_[index]);
}

std::span<float> BlockGrid::MutableMicroValues(int row_bin, int micro_bin) {
  if (values_.empty()) return {};
  std::size_t index = MicroIndex(row_bin, micro_bin);
  return std::span<float>(values_).subspan(micro_offsets_[index],
                                           micro_offsets_[index + 1] - micro_offsets_[index]);
}

std::span<const ItemIndex> BlockGrid::MicroBinItems(int micro_bin) const {
  return std::span<const ItemIndex>(bin_items_)
      .subspan(bin_item_offsets_[micro_bin],
               bin_item_offsets_[micro_bin + 1] - bin_item_offsets_[micro_bin]);
}

EpochPlan BlockScheduler::Plan(int epoch) const {
  EpochPlan plan;
  plan.bins = bins_;
  plan.col_splits = col_splits_;
  Rng rng(DeriveSeed(
      seed_, 0x5c4ed0000ULL + static_cast<std::uint64_t>(static_cast<std::uint32_t>(epoch))));
  plan.group_micro_bins.resize(static_cast<std::size_t>(bins_) * col_splits_);
  std::iota(plan.group_micro_bins.begin(), plan.group_micro_bins.end(), 0u);
  ShuffleTogether(std::span<std::uint32_t>(plan.group_micro_bins), std::span<int>(), rng);
  // Diagonal d pairs row bin r with column group (r + d) mod bins: for a fixed d the
  // row bins and the column groups are each all distinct, and over d = 0..bins-1
  // every (r, c) pair occurs once. The diagonals run in a random order.
  std::vector<std::uint32_t> shifts(bins_);
  std::iota(shifts.begin(), shifts.end(), 0u);
  ShuffleTogether(std::span<std::uint32_t>(shifts), std::span<int>(), rng);
  const auto bins = static_cast<std::uint32_t>(bins_);
  for (std::uint32_t shift : shifts) {
    std::vector<GridBlock> round(bins);
    for (std::uint32_t row_bin = 0; row_bin < bins; ++row_bin) {
      std::uint32_t col_group = (row_bin + shift) % bins;
      round[row_bin] = GridBlock{row_bin, col_group, row_bin * bins + col_group};
    }
    // Larger blocks first would need sizes; a random order is enough for the
    // dynamic schedule and keeps the plan a pure function of (seed, epoch).
    ShuffleTogether(std::span<GridBlock>(round), std::span<int>(), rng);
    plan.rounds.push_back(std::move(round));
  }
  return plan;
}

int AutoBins(int threads, std::size_t n_users, std::size_t n_items, int col_splits,
             std::size_t min_rows, std::size_t min_items) {
  std::size_t bins = std::max<std::size_t>(8, 2 * static_cast<std::size_t>(std::max(1, threads)));
  bins = std::min(bins, n_users / std::max<std::size_t>(1, min_rows));
  bins = std::min(bins, n_items / std::max<std::size_t>(1, min_items * std::max(1, col_splits)));
  return static_cast<int>(std::max<std::size_t>(1, bins));
}

}  // namespace recforge::models
