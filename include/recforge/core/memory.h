// Large-allocation helpers.
#pragma once

#include <cstddef>
#include <vector>

namespace recforge {

// Asks the kernel to back the whole 2 MiB pages inside [data, data + bytes) with
// transparent huge pages. Call it before the memory is first touched: one fault then
// maps 2 MiB instead of 4 KiB (a 400 MB column costs ~200 faults instead of ~100k),
// and rows read at random stay within the TLB. A no-op where THP is off or the
// range holds no whole huge page.
void AdviseHugePages(const void* data, std::size_t bytes);

// vector::reserve(n) followed by AdviseHugePages on the new capacity.
template <typename T>
void ReserveHugePages(std::vector<T>& values, std::size_t n) {
  values.reserve(n);
  AdviseHugePages(values.data(), values.capacity() * sizeof(T));
}

}  // namespace recforge
