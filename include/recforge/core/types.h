// Named index types, so that a user index is never confused with an item index or
// an offset into a column (STYLE.md §3).
#pragma once

#include <cstdint>
#include <limits>

namespace recforge {

using UserIndex = std::uint32_t;   // dense 0-based index into user_ids.txt
using ItemIndex = std::uint32_t;   // dense 0-based index into item_ids.txt
using RowIndex = std::uint64_t;    // position of an interaction in the columns
using Timestamp = std::int64_t;    // Unix seconds (UTC)

inline constexpr std::uint32_t kInvalidIndex = std::numeric_limits<std::uint32_t>::max();

}  // namespace recforge
