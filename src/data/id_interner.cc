#include "recforge/data/id_interner.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "recforge/core/random.h"
#include "recforge/data/text_fields.h"

namespace recforge::data {
namespace {
constexpr std::size_t kInitialSlots = 1024;
constexpr std::size_t kArenaBlock = 1u << 20;

std::uint64_t HashText(std::string_view text) {
  return Mix64(std::hash<std::string_view>{}(text));
}
}  // namespace

IdInterner::IdInterner()
    : number_keys_(kInitialSlots), number_slots_(kInitialSlots, 0), text_slots_(kInitialSlots, TextSlot{}) {}

std::uint32_t IdInterner::Intern(std::string_view id) {
  if (has_last_ && id == last_text_) return last_index_;
  std::uint64_t number;
  std::uint32_t index = IsCanonicalUnsigned(id, &number) ? InternNumber(number) : InternText(id);
  last_text_.assign(id);
  last_index_ = index;
  has_last_ = true;
  return index;
}

std::uint32_t IdInterner::InternNumber(std::uint64_t number) {
  if ((number_count_ + 1) * 2 > number_slots_.size()) GrowNumbers();
  std::size_t mask = number_slots_.size() - 1;
  std::size_t slot = Mix64(number) & mask;
  while (true) {
    std::uint32_t held = number_slots_[slot];
    if (held == 0) break;
    if (number_keys_[slot] == number) return held - 1;
    slot = (slot + 1) & mask;
  }
  auto index = static_cast<std::uint32_t>(entries_.size());
  entries_.push_back(Entry{true, number, {}});
  number_keys_[slot] = number;
  number_slots_[slot] = index + 1;
  ++number_count_;
  return index;
}

std::uint32_t IdInterner::InternText(std::string_view text) {
  if ((text_count_ + 1) * 2 > text_slots_.size()) GrowTexts();
  std::size_t mask = text_slots_.size() - 1;
  std::uint64_t hash = HashText(text);
  std::size_t slot = hash & mask;
  const bool fits_inline = text.size() <= kInlineBytes;
  while (true) {
    const TextSlot& held = text_slots_[slot];
    if (held.index_plus_one == 0) break;
    const bool same_length = held.length == text.size() || (held.length == 0xFFFF && text.size() >= 0xFFFF);
    if (held.hash == hash && same_length) {
      bool equal = fits_inline ? std::memcmp(held.inline_key, text.data(), text.size()) == 0
                               : entries_[held.index_plus_one - 1].text == text;
      if (equal) return held.index_plus_one - 1;
    }
    slot = (slot + 1) & mask;
  }
  auto index = static_cast<std::uint32_t>(entries_.size());
  entries_.push_back(Entry{false, 0, Store(text)});
  TextSlot& fresh = text_slots_[slot];
  fresh.hash = hash;
  fresh.index_plus_one = index + 1;
  fresh.length = static_cast<std::uint16_t>(std::min<std::size_t>(text.size(), 0xFFFF));
  if (fits_inline && !text.empty()) std::memcpy(fresh.inline_key, text.data(), text.size());
  ++text_count_;
  return index;
}

std::string_view IdInterner::Store(std::string_view text) {
  if (arena_used_ + text.size() > arena_capacity_) {
    arena_capacity_ = std::max(kArenaBlock, text.size());
    arena_.push_back(std::make_unique<char[]>(arena_capacity_));
    arena_used_ = 0;
  }
  char* destination = arena_.back().get() + arena_used_;
  if (!text.empty()) std::memcpy(destination, text.data(), text.size());
  arena_used_ += text.size();
  return std::string_view(destination, text.size());
}

void IdInterner::GrowNumbers() {
  std::size_t capacity = number_slots_.size() * 2;
  std::vector<std::uint64_t> keys(capacity);
  std::vector<std::uint32_t> slots(capacity, 0);
  std::size_t mask = capacity - 1;
  for (std::size_t k = 0; k < number_slots_.size(); ++k) {
    if (number_slots_[k] == 0) continue;
    std::size_t slot = Mix64(number_keys_[k]) & mask;
    while (slots[slot] != 0) slot = (slot + 1) & mask;
    keys[slot] = number_keys_[k];
    slots[slot] = number_slots_[k];
  }
  number_keys_.swap(keys);
  number_slots_.swap(slots);
}

void IdInterner::GrowTexts() {
  std::size_t capacity = text_slots_.size() * 2;
  std::vector<TextSlot> slots(capacity, TextSlot{});
  std::size_t mask = capacity - 1;
  for (const TextSlot& held : text_slots_) {
    if (held.index_plus_one == 0) continue;
    std::size_t slot = held.hash & mask;
    while (slots[slot].index_plus_one != 0) slot = (slot + 1) & mask;
    slots[slot] = held;
  }
  text_slots_.swap(slots);
}

MergedIds MergeInterners(const std::vector<const IdInterner*>& interners) {
  std::vector<std::uint64_t> numbers;
  std::vector<std::string_view> texts;
  for (const IdInterner* interner : interners) {
    for (std::uint32_t k = 0; k < interner->size(); ++k) {
      const auto& entry = interner->entry(k);
      if (entry.numeric) {
        numbers.push_back(entry.number);
      } else {
        texts.push_back(entry.text);
      }
    }
  }
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  std::sort(texts.begin(), texts.end());
  texts.erase(std::unique(texts.begin(), texts.end()), texts.end());

  MergedIds merged;
  std::vector<std::string> ids;
  ids.reserve(numbers.size() + texts.size());
  for (std::uint64_t number : numbers) ids.push_back(std::to_string(number));
  for (std::string_view text : texts) ids.emplace_back(text);
  merged.remaps.resize(interners.size());
  for (std::size_t k = 0; k < interners.size(); ++k) {
    const IdInterner& interner = *interners[k];
    auto& remap = merged.remaps[k];
    remap.resize(interner.size());
    for (std::uint32_t local = 0; local < interner.size(); ++local) {
      const auto& entry = interner.entry(local);
      if (entry.numeric) {
        remap[local] = static_cast<std::uint32_t>(
            std::lower_bound(numbers.begin(), numbers.end(), entry.number) - numbers.begin());
      } else {
        remap[local] = static_cast<std::uint32_t>(
            numbers.size() + (std::lower_bound(texts.begin(), texts.end(), entry.text) - texts.begin()));
      }
    }
  }
  merged.ids = IdMap(std::move(ids));
  return merged;
}

}  // namespace recforge::data
