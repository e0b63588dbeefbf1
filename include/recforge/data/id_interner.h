// Interning of original string ids into dense indices during parsing.
//
// Each parsing thread owns one IdInterner (no locking). Canonical unsigned integers
// ("42", not "042") take a fast path through a u64-keyed open-addressing table;
// other ids are copied into an arena and found through a string table. At the end,
// MergeInterners numbers the union of all ids in sorted order and gives every
// interner a local -> global remap table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "recforge/data/dataset.h"

namespace recforge::data {

class IdInterner {
 public:
  IdInterner();

  // Returns the local index of `id`, adding it when new. `id` need not outlive the call.
  std::uint32_t Intern(std::string_view id);

  std::size_t size() const { return entries_.size(); }

  struct Entry {
    bool numeric;
    std::uint64_t number;   // valid when numeric
    std::string_view text;  // valid when !numeric (points into the arena)
  };
  const Entry& entry(std::uint32_t local) const { return entries_[local]; }

 private:
  std::uint32_t InternNumber(std::uint64_t number);
  std::uint32_t InternText(std::string_view text);
  std::string_view Store(std::string_view text);
  void GrowNumbers();
  void GrowTexts();

  // A text slot keeps short ids inline, so a probe usually touches one cache line
  // instead of slot + entry + arena.
  static constexpr std::size_t kInlineBytes = 18;
  struct TextSlot {
    std::uint64_t hash;
    std::uint32_t index_plus_one;  // 0 = empty
    std::uint16_t length;
    char inline_key[kInlineBytes];
  };
  static_assert(sizeof(TextSlot) == 32);

  std::vector<Entry> entries_;
  // Open addressing, power-of-two capacity, slots hold entry index + 1 (0 = empty).
  std::vector<std::uint64_t> number_keys_;
  std::vector<std::uint32_t> number_slots_;
  std::size_t number_count_ = 0;
  std::vector<TextSlot> text_slots_;
  std::size_t text_count_ = 0;
  // Files are usually grouped by user: the previous id repeats most of the time.
  std::string last_text_;
  std::uint32_t last_index_ = 0;
  bool has_last_ = false;
  std::vector<std::unique_ptr<char[]>> arena_;
  std::size_t arena_used_ = 0;
  std::size_t arena_capacity_ = 0;
};

// Sorted union of the interners' ids: canonical integers first in numeric order, then
// the other ids bytewise. remaps[k][local] is the global index of interner k's id.
struct MergedIds {
  IdMap ids;
  std::vector<std::vector<std::uint32_t>> remaps;
};
MergedIds MergeInterners(const std::vector<const IdInterner*>& interners);

}  // namespace recforge::data
