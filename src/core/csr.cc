#include "recforge/core/csr.h"

#include <algorithm>
#include <numeric>

#include "recforge/core/parallel.h"

namespace recforge {

bool CsrMatrix::Contains(std::size_t row, std::uint32_t col) const {
  auto cols = RowIndices(row);
  return std::binary_search(cols.begin(), cols.end(), col);
}

CsrMatrix CsrMatrix::FromCoordinates(std::size_t n_rows, std::size_t n_cols, std::span<const std::uint32_t> rows,
                                     std::span<const std::uint32_t> cols, std::span<const float> values,
                                     int threads) {
  CsrMatrix m;
  m.n_rows = n_rows;
  m.n_cols = n_cols;
  m.indptr.assign(n_rows + 1, 0);
  for (std::uint32_t row : rows) ++m.indptr[row + 1];
  std::partial_sum(m.indptr.begin(), m.indptr.end(), m.indptr.begin());
  m.indices.resize(rows.size());
  m.values.resize(rows.size());
  {
    std::vector<std::uint64_t> cursor(m.indptr.begin(), m.indptr.end() - 1);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      std::uint64_t at = cursor[rows[k]]++;
      m.indices[at] = cols[k];
      m.values[at] = values[k];
    }
  }
  // Sort each row by column and sum duplicates; rows shrink in place, then compact.
  std::vector<std::uint64_t> kept(n_rows, 0);
  ParallelFor<std::size_t>(
      0, n_rows, threads,
      [&](std::size_t row) {
        std::uint64_t begin = m.indptr[row], end = m.indptr[row + 1];
        std::size_t n = end - begin;
        if (n == 0) return;
        // Per-thread scratch, reused across rows.
        thread_local std::vector<std::pair<std::uint32_t, float>> entries;
        entries.resize(n);
        for (std::size_t k = 0; k < n; ++k) entries[k] = {m.indices[begin + k], m.values[begin + k]};
        std::sort(entries.begin(), entries.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        std::size_t out = 0;
        for (std::size_t k = 0; k < n; ++k) {
          if (out > 0 && entries[out - 1].first == entries[k].first) {
            entries[out - 1].second += entries[k].second;
          } else {
            entries[out++] = entries[k];
          }
        }
        for (std::size_t k = 0; k < out; ++k) {
          m.indices[begin + k] = entries[k].first;
          m.values[begin + k] = entries[k].second;
        }
        kept[row] = out;
      },
      Schedule::kDynamic, 256);
  std::uint64_t write = 0;
  for (std::size_t row = 0; row < n_rows; ++row) {
    std::uint64_t begin = m.indptr[row];
    for (std::uint64_t k = 0; k < kept[row]; ++k) {
      m.indices[write + k] = m.indices[begin + k];
      m.values[write + k] = m.values[begin + k];
    }
    m.indptr[row] = write;
    write += kept[row];
  }
  m.indptr[n_rows] = write;
  m.indices.resize(write);
  m.values.resize(write);
  m.indices.shrink_to_fit();
  m.values.shrink_to_fit();
  return m;
}

CsrMatrix CsrMatrix::Transpose() const {
  CsrMatrix t;
  t.n_rows = n_cols;
  t.n_cols = n_rows;
  t.indptr.assign(n_cols + 1, 0);
  for (std::uint32_t col : indices) ++t.indptr[col + 1];
  std::partial_sum(t.indptr.begin(), t.indptr.end(), t.indptr.begin());
  t.indices.resize(nnz());
  t.values.resize(nnz());
  std::vector<std::uint64_t> cursor(t.indptr.begin(), t.indptr.end() - 1);
  // Rows are visited in order, so every transposed row comes out sorted.
  for (std::size_t row = 0; row < n_rows; ++row) {
    for (std::uint64_t k = indptr[row]; k < indptr[row + 1]; ++k) {
      std::uint64_t at = cursor[indices[k]]++;
      t.indices[at] = static_cast<std::uint32_t>(row);
      t.values[at] = values[k];
    }
  }
  return t;
}

}  // namespace recforge
