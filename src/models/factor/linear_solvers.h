// Linear-algebra building blocks of the ALS group (ials, als, svd): Gram matrices,
// cost-balanced row blocks for skewed per-row work, and the per-row solvers of the
// alternating least-squares normal equations (conjugate gradient, Cholesky, NNLS).
//
// One ALS half-iteration is written as two steps so that a later data-parallel (MPI)
// mode can reduce at a clear point:
//   1. ComputeGramian(fixed side)   -> k x k sum over rows (all-reduce across ranks here)
//   2. per-row solves over the rows being updated, each reading only the Gram matrix,
//      its own CSR row and the fixed side's factors (ranks own disjoint rows).
//
// Threading: functions taking `threads` run ParallelFor / ParallelRegion loops inside;
// the per-row solvers are single-threaded and use caller-owned SolverScratch (one per
// thread). Results never depend on the thread count: every reduction runs over fixed
// chunks in a fixed order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "recforge/core/csr.h"
#include "recforge/core/parallel.h"

namespace recforge::models::linalg {

// ---- Gram matrices ---------------------------------------------------------------

// gram[k x k] = factors^T factors for a row-major n x k matrix (both triangles filled).
// The sum runs over fixed chunks of rows (one OpenBLAS syrk each, chunks in parallel on
// `threads`) that are added in chunk order, so the result is identical for any thread
// count. This is the reduction point of an ALS half-iteration (see the file comment).
// Cost O(n k^2) flops, O((n / 16384 + 1) k^2) extra memory.
void ComputeGramian(const float* factors, std::size_t n, std::size_t k, int threads, float* gram);

// ---- Row blocks ------------------------------------------------------------------

// A partition of the rows of a CSR matrix into contiguous blocks of similar cost, where
// a row costs row_cost + nnz_cost * (its number of entries). Blocks are listed most
// expensive first, so that dynamic scheduling does not finish on one huge row (Zipf
// item popularity puts ~10% of all interactions on the top item). A row is never split.
// Rows longer than `long_row_length` entries count nothing towards the blocks' cost and
// are listed apart (long_rows()) for a solver that serves them together
// (SolveImplicitCgTiled); per-block loops skip them with IsLong().
class RowBlocks {
 public:
  RowBlocks(const CsrMatrix& matrix, double row_cost, double nnz_cost, std::size_t target_blocks,
            std::size_t long_row_length = static_cast<std::size_t>(-1));

  std::size_t size() const { return order_.size(); }
  // Rows [first, second) of the block at position `position` in cost order.
  std::pair<std::size_t, std::size_t> Block(std::size_t position) const {
    const std::size_t b = order_[position];
    return {bounds_[b], bounds_[b + 1]};
  }
  // The longest row inside the blocks (entries): sizes per-row scratch buffers.
  std::size_t max_row_length() const { return max_row_length_; }
  // Rows longer than long_row_length, longest first. They still fall inside the blocks'
  // row ranges: per-block loops skip them (IsLong).
  const std::vector<std::size_t>& long_rows() const { return long_rows_; }
  bool IsLong(std::size_t row_length) const { return row_length > long_row_length_; }
  // The long rows split into `parts` lists of similar total length (longest-first
  // greedy), each sorted by row index. Which part a row lands in never changes its result.
  std::vector<std::vector<std::size_t>> SplitLongRows(int parts) const;

 private:
  std::vector<std::size_t> bounds_;  // block b = rows [bounds_[b], bounds_[b + 1])
  std::vector<std::size_t> order_;   // block indices, most expensive first
  std::size_t max_row_length_ = 0;
  std::size_t long_row_length_;
  std::vector<std::size_t> long_rows_;
  std::vector<std::size_t> long_row_entries_;
};

// Calls fn(thread, first_row, end_row) for every block, on `threads` threads. Blocks are
// handed out in cost order through an atomic counter (dynamic scheduling); `thread` is
// in [0, threads) and indexes per-thread scratch. Exceptions propagate as in
// ParallelFor. The work of a row must not depend on which thread runs it.
template <typename Fn>
void ForEachRowBlock(const RowBlocks& blocks, int threads, Fn&& fn) {
  const int workers = std::max(
      1, std::min<int>(threads, static_cast<int>(std::max<std::size_t>(1, blocks.size()))));
  std::atomic<std::size_t> next{0};
  ParallelRegion(workers, [&](int thread) {
    for (std::size_t position = next.fetch_add(1); position < blocks.size();
         position = next.fetch_add(1)) {
      auto [first, end] = blocks.Block(position);
      fn(thread, first, end);
    }
  });
}

// ---- Confidence weighting (implicit feedback) --------------------------------------

// Hu, Koren & Volinsky's confidence of an observed value r: c = 1 + alpha * r (linear)
// or c = 1 + alpha * log(1 + r / epsilon) (log), with r taken as |r| and as 1 when
// `binary`. The preference is p = 1 for r > 0 and 0 otherwise (Spark's extension to
// negative values; r = 0 entries add confidence 1 to "not interacted").
struct Confidence {
  enum class Scaling { kLinear, kLog };
  Scaling scaling = Scaling::kLinear;
  float alpha = 1.0f;
  float epsilon = 1.0f;
  bool binary = false;

  // For each value: weights[j] = c_j - 1 and targets[j] = c_j * p_j.
  void Fill(std::span<const float> values, float* weights, float* targets) const;
};

// ---- Per-row solvers ---------------------------------------------------------------

// Per-thread working memory of the solvers; Reserve once per thread before the loop.
struct SolverScratch {
  std::vector<float> r, p, ap;          // CG vectors (k)
  std::vector<float> a;                 // k x k system matrix
  std::vector<float> b;                 // k right-hand side
  std::vector<float> gather;            // kGatherRows x k rows copied for syrk
  std::vector<float> weights, targets;  // per-entry values of one row (max row length)
  std::vector<float> dots;              // per-entry dot products (loss)

  void Reserve(std::size_t k, std::size_t max_row_length);
};

// The implicit-feedback normal equations of one row (Hu, Koren, Volinsky 2008):
//   (G + reg I + sum_j w_j y_j y_j^T) x = sum_j t_j y_j
// with G the fixed side's Gram matrix (shared by all rows), y_j = factors[indices[j]]
// (k floats), w_j = c_j - 1 >= 0 and t_j = c_j p_j. reg may differ per row.
struct ImplicitRowSystem {
  const float* gram = nullptr;  // k x k, without the regulariser
  float reg = 0.0f;
  const float* factors = nullptr;  // fixed side, row-major, k columns
  std::size_t k = 0;
  std::span<const std::uint32_t> indices;
  const float* weights = nullptr;
  const float* targets = nullptr;
};

// `steps` conjugate-gradient iterations warm-started from x (in place), as in
// implicit's least_squares_cg: each step costs one G p product (k^2) and one pass over
// the row's entries (2 k per entry). Stops early when the residual vanishes. Each step
// lowers the row's quadratic objective, so ALS with any number of steps is monotone.
void SolveImplicitCg(const ImplicitRowSystem& system, int steps, float* x, SolverScratch& scratch);

// The exact solution: forms the k x k matrix (entries gathered in blocks and added with
// syrk) and solves it by Cholesky. Cost O(nnz k^2 + k^3).
void SolveImplicitCholesky(const ImplicitRowSystem& system, float* x, SolverScratch& scratch);

// Conjugate gradient for many long rows at once, with exactly the arithmetic of
// SolveImplicitCg on each (identical results): `row_ids` are rows of `rows` (CSR over
// the fixed side's n_fixed rows), solved in place in `solved` (row-major, k columns),
// row_ids[h] with regulariser row_regs[h] and G = `gram`. Each pass over the entries
// sweeps the fixed side in tiles of `tile_rows` rows and serves every row's entries in
// the tile before moving on, so a tile is read from memory once per pass for all rows.
// For rows whose factor rows do not fit in cache (a top item's ~100k users), this turns
// each CG pass from a memory-bound gather into a cache-resident one. Single-threaded;
// run one call per thread on disjoint row lists (RowBlocks::SplitLongRows).
// Memory: 3 k floats per row plus tile_rows floats, in `scratch`.
struct TiledCgScratch {
  std::vector<float> vectors;         // r, p, Ap of each row
  std::vector<std::uint64_t> cursor;  // next entry of each row in the current sweep
  std::vector<float> weights, targets;
};
void SolveImplicitCgTiled(const CsrMatrix& rows, std::span<const std::size_t> row_ids,
                          std::span<const float> row_regs, const float* gram, const float* factors,
                          std::size_t k, std::size_t n_fixed, std::size_t tile_rows,
                          const Confidence& confidence, int steps, float* solved,
                          TiledCgScratch& scratch);

// This row's share of the implicit objective at x, over every column (observed or not),
// regulariser included:
//   x^T G x + sum_observed [c (p - s_j)^2 - s_j^2] + reg |x|^2,  s_j = x.y_j,
// for the row's entries (indices, values) weighted by `confidence`. Works through the
// row in chunks of the scratch's per-entry buffers, so any row length is fine.
// Returned in double. Cost O(k^2 + nnz k).
double ImplicitRowLoss(const float* gram, float reg, const float* factors, std::size_t k,
                       std::span<const std::uint32_t> indices, std::span<const float> values,
                       const Confidence& confidence, const float* x, SolverScratch& scratch);

// Explicit (rating) least squares of one row, Spark's ALS-WR step:
//   minimise sum_j (r_j - x.y_j)^2 + reg |x|^2   (the caller passes reg = lambda * n_row)
// by Cholesky, or under x >= 0 by NNLS (warm-started from x, which is clamped to >= 0
// first). A row without entries gets x = 0. Cost O(nnz k^2 + k^3).
void SolveExplicit(const float* factors, std::size_t k, std::span<const std::uint32_t> indices,
                   std::span<const float> ratings, float reg, bool nonnegative, float* x,
                   SolverScratch& scratch);

// Spark's implicit ALS-WR row (implicitPrefs=true): the implicit system above with
// reg already scaled by the caller, solved by Cholesky or NNLS.
void SolveImplicitExact(const ImplicitRowSystem& system, bool nonnegative, float* x,
                        SolverScratch& scratch);

// Solves A x = b in place for a symmetric positive definite k x k row-major A: `a` is
// overwritten by its factor, `x` holds b on entry and the solution on return. When A
// is not numerically positive definite, retries with a growing diagonal jitter (a
// rank-deficient row, e.g. reg = 0) and returns false if that fails too (x = 0).
// Uses scratch.p and scratch.ap. Cost O(k^3 / 3).
bool CholeskySolveInPlace(float* a, std::size_t k, float* x, SolverScratch& scratch);

// Non-negative least squares in normal-equation form: minimise 1/2 x^T A x - b^T x
// subject to x >= 0, A symmetric positive definite, by projected coordinate descent
// warm-started from x (clamped to >= 0). Each coordinate step is an exact constrained
// line minimisation, so the objective never increases. Stops after `max_sweeps` sweeps
// or when no coordinate moves by more than tolerance * max(1, max|x|).
// Spark solves the same problem with projected conjugate gradient. Uses scratch.r.
// Cost O(k^2) per sweep.
void SolveNnls(const float* a, const float* b, std::size_t k, float* x, SolverScratch& scratch,
               int max_sweeps = 200, float tolerance = 1e-6f);

}  // namespace recforge::models::linalg
