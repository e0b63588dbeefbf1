// Compressed sparse row matrices: the read-only view models get of interactions.
// Row r's entries are indices[indptr[r] .. indptr[r+1]) with matching values,
// column indices ascending within a row.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace recforge {

struct CsrMatrix {
  std::size_t n_rows = 0;
  std::size_t n_cols = 0;
  std::vector<std::uint64_t> indptr;   // n_rows + 1 offsets
  std::vector<std::uint32_t> indices;  // column of each entry
  std::vector<float> values;           // value of each entry

  std::size_t nnz() const { return indices.size(); }
  std::size_t RowLength(std::size_t row) const { return indptr[row + 1] - indptr[row]; }
  std::span<const std::uint32_t> RowIndices(std::size_t row) const {
    return {indices.data() + indptr[row], RowLength(row)};
  }
  std::span<const float> RowValues(std::size_t row) const {
    return {values.data() + indptr[row], RowLength(row)};
  }
  // True when (row, col) is stored (binary search in the row).
  bool Contains(std::size_t row, std::uint32_t col) const;

  // Builds from coordinates; entries repeated for one (row, col) are summed.
  // Cost O(nnz + n_rows) plus the per-row sorts (parallel on `threads`).
  static CsrMatrix FromCoordinates(std::size_t n_rows, std::size_t n_cols, std::span<const std::uint32_t> rows,
                                   std::span<const std::uint32_t> cols, std::span<const float> values,
                                   int threads);
  // The transpose (CSC of this matrix as CSR), O(nnz).
  CsrMatrix Transpose() const;
};

}  // namespace recforge
