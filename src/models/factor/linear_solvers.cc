#include "factor/linear_solvers.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

#include "factor/eigen.h"
#include "kernels.h"

namespace recforge::models::linalg {
namespace {

// Rows per Gram chunk: large enough for syrk to run near peak, small enough that a
// 200k-row side gives a dozen chunks to spread over the threads.
constexpr std::size_t kGramChunkRows = 16384;
// Entries gathered per syrk call when a row's system is formed explicitly.
constexpr std::size_t kGatherRows = 128;

}  // namespace

void ComputeGramian(const float* factors, std::size_t n, std::size_t k, int threads, float* gram) {
  if (k == 0) return;
  const std::size_t n_chunks = std::max<std::size_t>(1, (n + kGramChunkRows - 1) / kGramChunkRows);
  if (n_chunks == 1) {
    if (n == 0) {
      std::fill(gram, gram + k * k, 0.0f);
    } else {
      kernels::Gramian(n, k, 1.0f, factors, 0.0f, gram);
    }
    return;
  }
  std::vector<float> partial(n_chunks * k * k);
  ParallelFor<std::size_t>(
      0, n_chunks, threads,
      [&](std::size_t chunk) {
        const std::size_t first = chunk * kGramChunkRows;
        const std::size_t rows = std::min(kGramChunkRows, n - first);
        kernels::Gramian(rows, k, 1.0f, factors + first * k, 0.0f, partial.data() + chunk * k * k);
      },
      Schedule::kDynamic, 1);
  // The fixed-order sum that makes the result independent of the thread count; with
  // MPI, this is where the per-rank partial sums would be all-reduced.
  std::copy(partial.begin(), partial.begin() + k * k, gram);
  for (std::size_t chunk = 1; chunk < n_chunks; ++chunk) {
    kernels::Axpy(1.0f, partial.data() + chunk * k * k, gram, k * k);
  }
}

RowBlocks::RowBlocks(const CsrMatrix& matrix, double row_cost, double nnz_cost,
                     std::size_t target_blocks, std::size_t long_row_length)
    : long_row_length_(long_row_length) {
  const std::size_t n_rows = matrix.n_rows;
  double total = 0;
  for (std::size_t row = 0; row < n_rows; ++row) {
    const std::size_t length = matrix.RowLength(row);
    if (length > long_row_length) {
      long_rows_.push_back(row);
      continue;
    }
    max_row_length_ = std::max(max_row_length_, length);
    total += row_cost + nnz_cost * static_cast<double>(length);
  }
  const double target = total / static_cast<double>(std::max<std::size_t>(1, target_blocks));
  std::vector<double> costs;
  bounds_.push_back(0);
  double current = 0;
  for (std::size_t row = 0; row < n_rows; ++row) {
    const std::size_t length = matrix.RowLength(row);
    // Long rows are left out of the blocks (their cost is 0 here); they run tiled.
    const double cost =
        length > long_row_length ? 0.0 : row_cost + nnz_cost * static_cast<double>(length);
    if (cost >= target && current > 0) {  // a heavy row gets a block of its own
      bounds_.push_back(row);
      costs.push_back(current);
      current = 0;
    }
    current += cost;
    if (current >= target) {
      bounds_.push_back(row + 1);
      costs.push_back(current);
      current = 0;
    }
  }
  if (bounds_.back() != n_rows) {
    bounds_.push_back(n_rows);
    costs.push_back(current);
  }
  order_.resize(costs.size());
  std::iota(order_.begin(), order_.end(), std::size_t{0});
  std::stable_sort(order_.begin(), order_.end(),
                   [&](std::size_t a, std::size_t b) { return costs[a] > costs[b]; });
  // Long rows: longest first, each to the currently lightest part (LPT scheduling).
  std::stable_sort(long_rows_.begin(), long_rows_.end(), [&](std::size_t a, std::size_t b) {
    return matrix.RowLength(a) > matrix.RowLength(b);
  });
  long_row_entries_.reserve(long_rows_.size());
  for (std::size_t row : long_rows_) long_row_entries_.push_back(matrix.RowLength(row));
}

std::vector<std::vector<std::size_t>> RowBlocks::SplitLongRows(int parts) const {
  std::vector<std::vector<std::size_t>> split(static_cast<std::size_t>(std::max(1, parts)));
  std::vector<std::size_t> load(split.size(), 0);
  for (std::size_t h = 0; h < long_rows_.size(); ++h) {
    const std::size_t lightest =
        static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    split[lightest].push_back(long_rows_[h]);
    load[lightest] += long_row_entries_[h];
  }
  for (auto& part : split) std::sort(part.begin(), part.end());
  return split;
}

void Confidence::Fill(std::span<const float> values, float* weights, float* targets) const {
  for (std::size_t j = 0; j < values.size(); ++j) {
    const float value = values[j];
    const float r = binary ? 1.0f : std::fabs(value);
    const float extra = scaling == Scaling::kLinear ? alpha * r : alpha * std::log1p(r / epsilon);
    weights[j] = extra;
    targets[j] = (binary || value > 0) ? 1.0f + extra : 0.0f;
  }
}

void SolverScratch::Reserve(std::size_t k, std::size_t max_row_length) {
  r.resize(k);
  p.resize(k);
  ap.resize(k);
  b.resize(k);
  a.resize(k * k);
  gather.resize(kGatherRows * k);
  weights.resize(std::max<std::size_t>(1, max_row_length));
  targets.resize(std::max<std::size_t>(1, max_row_length));
  dots.resize(std::max<std::size_t>(1, max_row_length));
}

namespace {

// implicit's absolute threshold: below it a row has converged (or is empty and x = 0).
constexpr float kConverged = 1e-20f;

// The conjugate-gradient iteration of one row, split at its passes over the row's
// entries so that SolveImplicitCg (whole rows) and SolveImplicitCgTiled (rows swept
// tile by tile) share every floating-point operation and give identical results.
struct CgRow {
  float* x;
  float* r;
  float* p;
  float* ap;
  float reg;
  float rs_old = 0;
  int step = 0;
  bool done = false;
};

// r = -(G + reg I) x; the pass then adds sum_j (t_j - w_j y_j.x) y_j.
void CgStartResidual(const float* gram, std::size_t k, CgRow& row) {
  kernels::SymMatVec(gram, k, row.x, row.ap);
  for (std::size_t i = 0; i < k; ++i) row.r[i] = -row.ap[i] - row.reg * row.x[i];
}

void CgFinishResidual(std::size_t k, int steps, CgRow& row) {
  row.rs_old = kernels::Dot(row.r, row.r, k);
  row.done = steps <= 0 || row.rs_old < kConverged;
  if (!row.done) std::copy(row.r, row.r + k, row.p);
}

// ap = (G + reg I) p; the pass then adds sum_j w_j (y_j.p) y_j.
void CgStartProduct(const float* gram, std::size_t k, CgRow& row) {
  kernels::SymMatVec(gram, k, row.p, row.ap);
  kernels::Axpy(row.reg, row.p, row.ap, k);
}

void CgFinishStep(std::size_t k, int steps, CgRow& row) {
  const float p_ap = kernels::Dot(row.p, row.ap, k);
  if (!(p_ap > 0.0f)) {  // numerically exhausted direction
    row.done = true;
    return;
  }
  const float step_size = row.rs_old / p_ap;
  kernels::Axpy(step_size, row.p, row.x, k);
  if (++row.step == steps) {
    row.done = true;
    return;
  }
  kernels::Axpy(-step_size, row.ap, row.r, k);
  const float rs_new = kernels::Dot(row.r, row.r, k);
  if (rs_new < kConverged) {
    row.done = true;
    return;
  }
  const float beta = rs_new / row.rs_old;
  for (std::size_t i = 0; i < k; ++i) row.p[i] = row.r[i] + beta * row.p[i];
  row.rs_old = rs_new;
}

}  // namespace

void SolveImplicitCg(const ImplicitRowSystem& system, int steps, float* x, SolverScratch& scratch) {
  const std::size_t k = system.k;
  const std::size_t n = system.indices.size();
  const std::uint32_t* indices = system.indices.data();
  CgRow row{x, scratch.r.data(), scratch.p.data(), scratch.ap.data(), system.reg};
  CgStartResidual(system.gram, k, row);
  kernels::GatherDotAxpy(system.factors, k, indices, n, system.targets, system.weights, -1.0f, x,
                         row.r);
  CgFinishResidual(k, steps, row);
  while (!row.done) {
    CgStartProduct(system.gram, k, row);
    kernels::GatherDotAxpy(system.factors, k, indices, n, nullptr, system.weights, 1.0f, row.p,
                           row.ap);
    CgFinishStep(k, steps, row);
  }
}

void SolveImplicitCgTiled(const CsrMatrix& rows, std::span<const std::size_t> row_ids,
                          std::span<const float> row_regs, const float* gram, const float* factors,
                          std::size_t k, std::size_t n_fixed, std::size_t tile_rows,
                          const Confidence& confidence, int steps, float* solved,
                          TiledCgScratch& scratch) {
  const std::size_t n = row_ids.size();
  if (n == 0) return;
  tile_rows = std::max<std::size_t>(1, tile_rows);
  scratch.vectors.resize(n * 3 * k);
  scratch.cursor.resize(n);
  scratch.weights.resize(tile_rows);
  scratch.targets.resize(tile_rows);
  std::vector<CgRow> states;
  states.reserve(n);
  for (std::size_t h = 0; h < n; ++h) {
    float* vectors = scratch.vectors.data() + h * 3 * k;
    states.push_back(
        CgRow{solved + row_ids[h] * k, vectors, vectors + k, vectors + 2 * k, row_regs[h]});
  }
  // One pass over the entries of every unfinished row, tile by tile of the fixed side:
  // the tile's factor rows stay in cache while every row that touches them is served,
  // so the fixed side is streamed from memory once per pass instead of once per row.
  auto sweep = [&](bool residual) {
    for (std::size_t h = 0; h < n; ++h) scratch.cursor[h] = rows.indptr[row_ids[h]];
    for (std::size_t tile_begin = 0; tile_begin < n_fixed; tile_begin += tile_rows) {
      const std::uint32_t tile_end =
          static_cast<std::uint32_t>(std::min(n_fixed, tile_begin + tile_rows));
      for (std::size_t h = 0; h < n; ++h) {
        CgRow& row = states[h];
        if (row.done) continue;
        const std::uint64_t first = scratch.cursor[h];
        const std::uint64_t row_end = rows.indptr[row_ids[h] + 1];
        const std::uint32_t* begin = rows.indices.data() + first;
        const std::uint32_t* row_last = rows.indices.data() + row_end;
        // A linear scan: the segment's entries are about to be read anyway, and a
        // binary search over the rest of a 100k-entry row costs more than the segment.
        const std::uint32_t* end = begin;
        while (end != row_last && *end < tile_end) ++end;
        const std::size_t length = static_cast<std::size_t>(end - begin);
        if (length == 0) continue;
        confidence.Fill(std::span<const float>(rows.values.data() + first, length),
                        scratch.weights.data(), scratch.targets.data());
        if (residual) {
          kernels::GatherDotAxpy(factors, k, begin, length, scratch.targets.data(),
                                 scratch.weights.data(), -1.0f, row.x, row.r);
        } else {
          kernels::GatherDotAxpy(factors, k, begin, length, nullptr, scratch.weights.data(), 1.0f,
                                 row.p, row.ap);
        }
        scratch.cursor[h] = first + length;
      }
    }
  };
  for (auto& row : states) CgStartResidual(gram, k, row);
  sweep(true);
  bool any = false;
  for (auto& row : states) {
    CgFinishResidual(k, steps, row);
    any = any || !row.done;
  }
  while (any) {
    for (auto& row : states) {
      if (!row.done) CgStartProduct(gram, k, row);
    }
    sweep(false);
    any = false;
    for (auto& row : states) {
      if (row.done) continue;
      CgFinishStep(k, steps, row);
      any = any || !row.done;
    }
  }
}

namespace {

// a[k x k] += sum_j w_j y_j y_j^T and b += sum_j t_j y_j over the row's entries, with
// y_j gathered (scaled by sqrt(w_j)) into blocks for one syrk each. `a` must be
// symmetric on entry (both triangles); it stays so.
void AccumulateImplicit(const ImplicitRowSystem& system, float* a, float* b,
                        SolverScratch& scratch) {
  const std::size_t k = system.k;
  const std::size_t n = system.indices.size();
  float* gather = scratch.gather.data();
  for (std::size_t first = 0; first < n; first += kGatherRows) {
    const std::size_t rows = std::min(kGatherRows, n - first);
    for (std::size_t j = 0; j < rows; ++j) {
      const float* y = system.factors + std::size_t{system.indices[first + j]} * k;
      const float scale = std::sqrt(std::max(0.0f, system.weights[first + j]));
      float* dest = gather + j * k;
      for (std::size_t i = 0; i < k; ++i) dest[i] = scale * y[i];
      kernels::Axpy(system.targets[first + j], y, b, k);
    }
    kernels::Gramian(rows, k, 1.0f, gather, 1.0f, a);
  }
}

}  // namespace

bool CholeskySolveInPlace(float* a, std::size_t k, float* x, SolverScratch& scratch) {
  if (k == 0) return true;
  // Eigen reads and overwrites one triangle and the diagonal; the other triangle keeps
  // the matrix, so only the diagonal is saved for a retry.
  std::vector<float>& diagonal = scratch.p;  // free while a direct solve runs
  std::vector<float>& rhs = scratch.ap;
  for (std::size_t i = 0; i < k; ++i) {
    diagonal[i] = a[i * k + i];
    rhs[i] = x[i];
  }
  double trace = 0;
  for (std::size_t i = 0; i < k; ++i) trace += diagonal[i];
  const float base_jitter =
      static_cast<float>(std::max(trace / static_cast<double>(k), 1e-12) * 1e-6);
  Eigen::Map<Eigen::MatrixXf> matrix(a, static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(k));
  Eigen::Map<Eigen::VectorXf> solution(x, static_cast<Eigen::Index>(k));
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) {
      // Restore the lower triangle (column-major view) from the untouched upper one
      // and add a growing jitter: the row is rank-deficient (e.g. reg = 0).
      const float jitter = base_jitter * std::pow(100.0f, static_cast<float>(attempt - 1));
      for (std::size_t col = 0; col < k; ++col) {
        matrix(static_cast<Eigen::Index>(col), static_cast<Eigen::Index>(col)) =
            diagonal[col] + jitter;
        for (std::size_t row = col + 1; row < k; ++row) {
          matrix(static_cast<Eigen::Index>(row), static_cast<Eigen::Index>(col)) =
              matrix(static_cast<Eigen::Index>(col), static_cast<Eigen::Index>(row));
        }
      }
      std::copy(rhs.begin(), rhs.begin() + k, x);
    }
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXf>> llt(matrix);
    if (llt.info() == Eigen::Success) {
      llt.solveInPlace(solution);
      if (solution.allFinite()) return true;
    }
  }
  std::fill(x, x + k, 0.0f);
  return false;
}

void SolveNnls(const float* a, const float* b, std::size_t k, float* x, SolverScratch& scratch,
               int max_sweeps, float tolerance) {
  float* gradient = scratch.r.data();  // A x - b
  for (std::size_t j = 0; j < k; ++j) x[j] = std::max(0.0f, x[j]);
  kernels::SymMatVec(a, k, x, gradient);
  for (std::size_t j = 0; j < k; ++j) gradient[j] -= b[j];
  for (int sweep = 0; sweep < max_sweeps; ++sweep) {
    float largest_step = 0.0f;
    float largest_value = 0.0f;
    for (std::size_t j = 0; j < k; ++j) {
      const float diagonal = a[j * k + j];
      if (!(diagonal > 0.0f)) continue;
      const float updated = std::max(0.0f, x[j] - gradient[j] / diagonal);
      const float delta = updated - x[j];
      if (delta != 0.0f) {
        kernels::Axpy(delta, a + j * k, gradient, k);  // column j = row j (symmetric)
        x[j] = updated;
      }
      largest_step = std::max(largest_step, std::fabs(delta));
      largest_value = std::max(largest_value, updated);
    }
    if (largest_step <= tolerance * std::max(1.0f, largest_value)) break;
  }
}

void SolveImplicitCholesky(const ImplicitRowSystem& system, float* x, SolverScratch& scratch) {
  SolveImplicitExact(system, false, x, scratch);
}

void SolveImplicitExact(const ImplicitRowSystem& system, bool nonnegative, float* x,
                        SolverScratch& scratch) {
  const std::size_t k = system.k;
  float* a = scratch.a.data();
  float* b = scratch.b.data();
  std::copy(system.gram, system.gram + k * k, a);
  for (std::size_t i = 0; i < k; ++i) a[i * k + i] += system.reg;
  std::fill(b, b + k, 0.0f);
  AccumulateImplicit(system, a, b, scratch);
  if (nonnegative) {
    SolveNnls(a, b, k, x, scratch);
  } else {
    std::copy(b, b + k, x);
    CholeskySolveInPlace(a, k, x, scratch);
  }
}

double ImplicitRowLoss(const float* gram, float reg, const float* factors, std::size_t k,
                       std::span<const std::uint32_t> indices, std::span<const float> values,
                       const Confidence& confidence, const float* x, SolverScratch& scratch) {
  kernels::SymMatVec(gram, k, x, scratch.ap.data());
  double loss = kernels::Dot(x, scratch.ap.data(), k) + double{reg} * kernels::SquaredNorm(x, k);
  const std::size_t chunk =
      std::min({scratch.weights.size(), scratch.targets.size(), scratch.dots.size()});
  for (std::size_t first = 0; first < indices.size(); first += chunk) {
    const std::size_t n = std::min(chunk, indices.size() - first);
    confidence.Fill(values.subspan(first, n), scratch.weights.data(), scratch.targets.data());
    kernels::GatherDot(factors, k, indices.data() + first, n, x, scratch.dots.data());
    for (std::size_t j = 0; j < n; ++j) {
      const double s = scratch.dots[j];
      const double weight = 1.0 + scratch.weights[j];
      const double preference = scratch.targets[j] > 0 ? 1.0 : 0.0;
      loss += weight * (preference - s) * (preference - s) - s * s;
    }
  }
  return loss;
}

void SolveExplicit(const float* factors, std::size_t k, std::span<const std::uint32_t> indices,
                   std::span<const float> ratings, float reg, bool nonnegative, float* x,
                   SolverScratch& scratch) {
  if (indices.empty()) {
    std::fill(x, x + k, 0.0f);
    return;
  }
  float* a = scratch.a.data();
  float* b = scratch.b.data();
  float* gather = scratch.gather.data();
  std::fill(b, b + k, 0.0f);
  const std::size_t n = indices.size();
  for (std::size_t first = 0; first < n; first += kGatherRows) {
    const std::size_t rows = std::min(kGatherRows, n - first);
    for (std::size_t j = 0; j < rows; ++j) {
      const float* y = factors + std::size_t{indices[first + j]} * k;
      std::copy(y, y + k, gather + j * k);
      kernels::Axpy(ratings[first + j], y, b, k);
    }
    kernels::Gramian(rows, k, 1.0f, gather, first == 0 ? 0.0f : 1.0f, a);
  }
  for (std::size_t i = 0; i < k; ++i) a[i * k + i] += reg;
  if (nonnegative) {
    SolveNnls(a, b, k, x, scratch);
  } else {
    std::copy(b, b + k, x);
    CholeskySolveInPlace(a, k, x, scratch);
  }
}

}  // namespace recforge::models::linalg
