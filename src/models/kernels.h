// Dense float32 kernels shared by the model families.
//
// The build is portable (no -march=native); these functions are compiled several
// times with GCC target_clones (AVX-512, AVX2+FMA, baseline x86-64) and the loader
// picks the widest one the running CPU supports. Matrix products go to OpenBLAS,
// which dispatches on the CPU at run time too; it runs single-threaded inside our
// own ParallelFor (SetBlasThreads(1) at start-up), so thread counts stay explicit.
#pragma once

#include <cstddef>
#include <string>

namespace recforge::models::kernels {

// Prefetches every cache line of [p, p + bytes); p need not be line-aligned (the last
// byte's line is included). For rows read at random: factor rows, skip-gram output
// rows, HNSW vectors.
inline void PrefetchBytes(const void* p, std::size_t bytes) {
  if (bytes == 0) return;
  const char* begin = static_cast<const char*>(p);
  const char* last = begin + bytes - 1;
  for (const char* line = begin; line <= last; line += 64) __builtin_prefetch(line);
  __builtin_prefetch(last);
}

// Sum of a[i] * b[i].
float Dot(const float* a, const float* b, std::size_t n);
// y += alpha * x.
void Axpy(float alpha, const float* x, float* y, std::size_t n);
// x *= alpha.
void Scale(float alpha, float* x, std::size_t n);
// Sum of squares.
float SquaredNorm(const float* x, std::size_t n);

// C[m x n] = alpha * A[m x k] * B[n x k]^T + beta * C (row-major; lda = k, ldb = k, ldc = n).
void GemmNT(std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, const float* b, float beta,
            float* c);
// C[k x k] = alpha * A[n x k]^T A + beta * C (row-major, both triangles filled).
void Gramian(std::size_t n, std::size_t k, float alpha, const float* a, float beta, float* c);

// Sets OpenBLAS's own thread pool size (we parallelise outside BLAS: call with 1).
void SetBlasThreads(int threads);
// "avx512", "avx2" or "baseline": the clone the loader picked (for logs and benchmarks).
std::string ActiveIsa();

// --- SGD steps (mf, bpr) ---

// Score and gradient factor of one BPR step, for the caller's loss and biases.
struct BprStepResult {
  float x;  // bias_diff + u . (p - q), before the update
  float z;  // 1 / (1 + exp(x)) = sigmoid(-x), the gradient scale
};
// One BPR stochastic-gradient step on a (user, positive, negative) triple of n
// factors, fused so each row is loaded once for the score and once for the update:
//   u += lr (z (p - q) - reg u);  p += lr (z u - reg p);  q += lr (-z u - reg q)
// with the old u on the right-hand sides. The rows must not overlap.
BprStepResult BprStep(float* user, float* pos, float* neg, std::size_t n, float bias_diff, float lr,
                      float reg);

// One squared-error SGD step on a (user, item) pair given the caller's error
// e = rating - prediction:  u += lr (e v - user_reg u);  v += lr (e u - item_reg v)
// (old u on the right). The rows must not overlap.
void SgdPairStep(float* user, float* item, std::size_t n, float error, float lr, float user_reg,
                 float item_reg);

}  // namespace recforge::models::kernels

#include <cstdint>

namespace recforge::models::kernels {

// ---- Skip-gram with negative sampling (item2vec) ----

// word2vec.c's lookup tables: entry i holds the function at
// x = (2 i / size - 1) * max_exp, i = 0..size.
struct SigmoidTable {
  const float* sigmoid;   // 1 / (1 + e^-x)
  const float* softplus;  // log(1 + e^x), for the reported loss
  int size;
  float max_exp;
};
// One (context, centre) step of word2vec's SGNS with the context's input row `in` and
// the output rows targets[0..n_targets) of `output` (k floats per row; targets[0] is
// the centre, label 1, the rest negatives, label 0). In target order:
//   f = in . out_t;  g = lr * (label - sigmoid(f));  e += g out_t;  out_t += g in
// (sigmoid from the table, 0 / 1 outside [-max_exp, max_exp]); then in += e.
// Returns the step's loss, -log sigmoid(f_0) - sum_t log sigmoid(-f_t). `in` and the
// output rows must not overlap; a repeated target sees its own earlier update.
// k = 32, 64, 128 keep `in` and e in registers (unrolled); other k use a generic loop.
float SkipGramStep(float* in, float* output, std::size_t k, const std::uint32_t* targets,
                   int n_targets, float lr, const SigmoidTable& table);

}  // namespace recforge::models::kernels

namespace recforge::models::kernels {

// ---- Factor-model kernels (ALS group). Sparse-row updates of the conjugate-gradient
// and Cholesky solvers: `rows` is a row-major matrix with `k` columns (the fixed side's
// factors) and `indices` pick `n` of its rows, in order. Rows are prefetched a few
// entries ahead, since they are scattered in memory (the item half of a 200k-user set
// reads a 50 MB factor matrix at random). k = 8, 16, 32, 64, 128 have unrolled
// register-blocked paths; other k use a generic loop. Not thread-safe on `out`.

// out[0..k) += sum_j (offsets[j] + alpha * scales[j] * dot(rows[indices[j]], x)) *
// rows[indices[j]]; offsets may be null (treated as 0). Entries are accumulated in order
// with the same operations whatever n is, so cutting a row into several calls gives the
// same bits as one call (the tiled CG relies on it). Cost O(n k).
void GatherDotAxpy(const float* rows, std::size_t k, const std::uint32_t* indices, std::size_t n,
                   const float* offsets, const float* scales, float alpha, const float* x,
                   float* out);
// dots[j] = dot(rows[indices[j]], x) for j < n. Cost O(n k).
void GatherDot(const float* rows, std::size_t k, const std::uint32_t* indices, std::size_t n,
               const float* x, float* dots);
// dots[j] = dot(rows[j], x) for the n contiguous rows of a row-major n x k matrix: one
// user's scores against every item (GemmNT's few-row path). Cost O(n k).
void RowDots(const float* rows, std::size_t n, std::size_t k, const float* x, float* dots);
// y = A x for a symmetric k x k row-major A (computed as sum_c x[c] * A[c, :], which
// needs no horizontal sums). y must not alias x. Cost O(k^2).
void SymMatVec(const float* a, std::size_t k, const float* x, float* y);

}  // namespace recforge::models::kernels
