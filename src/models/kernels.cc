#include "kernels.h"

#include <cblas.h>

#include <cmath>
#include <vector>

namespace recforge::models::kernels {

#if defined(RECFORGE_NO_TARGET_CLONES)
#define RECFORGE_CLONES  // sanitizer builds: baseline code only (see CMakeLists.txt)
#else
#define RECFORGE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

RECFORGE_CLONES float Dot(const float* a, const float* b, std::size_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

RECFORGE_CLONES void Axpy(float alpha, const float* x, float* y, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

RECFORGE_CLONES void Scale(float alpha, float* x, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) x[i] *= alpha;
}

RECFORGE_CLONES float SquaredNorm(const float* x, std::size_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

void GemmNT(std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, const float* b, float beta,
            float* c) {
  if (m == 0 || n == 0) return;
  // A few rows: one pass of RowDots over B per row. sgemm would first pack (copy) all of
  // B, which for a single serving request costs more than the products themselves; with
  // RowDots instead of OpenBLAS's sgemv one known-user answer on 50k items went from 252
  // to 168 us (bench/micro/service_bench.cc). beta == 0 never reads C (BLAS semantics).
  constexpr std::size_t kGemvRows = 4;
  if (m <= kGemvRows) {
    thread_local std::vector<float> dots;
    for (std::size_t row = 0; row < m; ++row) {
      float* out = c + row * n;
      if (alpha == 1.0f && beta == 0.0f) {
        RowDots(b, n, k, a + row * k, out);
        continue;
      }
      dots.resize(n);
      RowDots(b, n, k, a + row * k, dots.data());
      for (std::size_t j = 0; j < n; ++j) out[j] = alpha * dots[j] + (beta == 0.0f ? 0.0f : beta * out[j]);
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(k), b, static_cast<int>(k), beta, c,
              static_cast<int>(n));
}

void Gramian(std::size_t n, std::size_t k, float alpha, const float* a, float beta, float* c) {
  if (k == 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(k), static_cast<int>(n), alpha, a,
              static_cast<int>(k), beta, c, static_cast<int>(k));
  for (std::size_t row = 0; row < k; ++row) {
    for (std::size_t col = 0; col < row; ++col) c[row * k + col] = c[col * k + row];
  }
}

void SetBlasThreads(int threads) { openblas_set_num_threads(threads); }

std::string ActiveIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "baseline";
}

// --- SGD steps (mf, bpr) ---

RECFORGE_CLONES BprStepResult BprStep(float* __restrict user, float* __restrict pos,
                                      float* __restrict neg, std::size_t n, float bias_diff,
                                      float lr, float reg) {
  float x = bias_diff;
#pragma omp simd reduction(+ : x)
  for (std::size_t i = 0; i < n; ++i) x += user[i] * (pos[i] - neg[i]);
  const float z = 1.0f / (1.0f + std::exp(x));
  const float keep = 1.0f - lr * reg;
  const float step = lr * z;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const float u = user[i];
    const float p = pos[i];
    const float q = neg[i];
    user[i] = keep * u + step * (p - q);
    pos[i] = keep * p + step * u;
    neg[i] = keep * q - step * u;
  }
  return {x, z};
}

RECFORGE_CLONES void SgdPairStep(float* __restrict user, float* __restrict item, std::size_t n,
                                 float error, float lr, float user_reg, float item_reg) {
  const float keep_user = 1.0f - lr * user_reg;
  const float keep_item = 1.0f - lr * item_reg;
  const float step = lr * error;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const float u = user[i];
    const float v = item[i];
    user[i] = keep_user * u + step * v;
    item[i] = keep_item * v + step * u;
  }
}

}  // namespace recforge::models::kernels

// ---- Factor-model kernels (ALS group) ----------------------------------------------
// GCC vector extensions (not intrinsics) so that every target_clones variant compiles
// them for its own ISA: 8-float vectors become one AVX register, or two SSE registers
// in the baseline clone. The helpers are always_inline so they take the clone's target.
namespace recforge::models::kernels {
namespace {

typedef float V8 __attribute__((vector_size(32)));
#define RECFORGE_INLINE inline __attribute__((always_inline))
// -Wpsabi warns that passing 32-byte vectors by value has another ABI without AVX;
// these helpers are always inlined, so no call (and no ABI) ever exists.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

RECFORGE_INLINE V8 Load8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
RECFORGE_INLINE void Store8(float* p, V8 v) { __builtin_memcpy(p, &v, sizeof v); }
// Pairwise, in the order Sum8x4 reproduces for four vectors at once.
RECFORGE_INLINE float Sum8(V8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// How many entries ahead rows are prefetched: far enough to cover a DRAM miss at a
// few tens of cycles per entry, near enough to stay in L1.
constexpr std::size_t kPrefetchAhead = 8;

RECFORGE_INLINE void PrefetchRow(const float* row, std::size_t k) { PrefetchBytes(row, k * sizeof(float)); }

typedef int I8 __attribute__((vector_size(32)));
typedef float V4 __attribute__((vector_size(16)));

// The per-entry dot product of the unrolled paths: two partial sums (even / odd 8-float
// chunks) added, then the 8 lanes summed in the fixed order of Sum8.
template <int NV>
RECFORGE_INLINE V8 DotPartials(const float* y, const V8* xv) {
  V8 even = {};
  V8 odd = {};
  for (int v = 0; v + 1 < NV; v += 2) {
    even += Load8(y + 8 * v) * xv[v];
    odd += Load8(y + 8 * v + 8) * xv[v + 1];
  }
  if (NV % 2 == 1) even += Load8(y + 8 * (NV - 1)) * xv[NV - 1];
  return even + odd;
}

// Sum8 of four vectors at once: lane e of the result is Sum8(s_e), bit for bit (the
// same pairwise order), with a few shuffles instead of four scalar reductions.
RECFORGE_INLINE V4 Sum8x4(V8 s0, V8 s1, V8 s2, V8 s3) {
  const I8 even = {0, 8, 2, 10, 4, 12, 6, 14};
  const I8 odd = {1, 9, 3, 11, 5, 13, 7, 15};
  // u = [s0[0] + s0[1], s1[0] + s1[1], s0[2] + s0[3], s1[2] + s1[3], ...], w likewise.
  const V8 u = __builtin_shuffle(s0, s1, even) + __builtin_shuffle(s0, s1, odd);
  const V8 w = __builtin_shuffle(s2, s3, even) + __builtin_shuffle(s2, s3, odd);
  const V8 z = __builtin_shuffle(u, w, I8{0, 1, 8, 9, 4, 5, 12, 13}) +
               __builtin_shuffle(u, w, I8{2, 3, 10, 11, 6, 7, 14, 15});
  const V4 low = {z[0], z[1], z[2], z[3]};   // (l0 + l1) + (l2 + l3) of each input
  const V4 high = {z[4], z[5], z[6], z[7]};  // (l4 + l5) + (l6 + l7)
  return low + high;
}

// Unrolled path for k = 8 * NV. Entries go in groups of four (four independent dot
// products in flight, one shuffle reduction); every entry still performs exactly the
// operations of the one-entry tail, in entry order, so the result does not depend on
// where a row is cut into calls (SolveImplicitCgTiled relies on this).
template <int NV>
RECFORGE_INLINE void GatherDotAxpyFixed(const float* rows, const std::uint32_t* indices,
                                        std::size_t n, const float* offsets, const float* scales,
                                        float alpha, const float* x, float* out) {
  constexpr std::size_t k = 8 * NV;
  V8 xv[NV], acc[NV];
  for (int v = 0; v < NV; ++v) {
    xv[v] = Load8(x + 8 * v);
    acc[v] = Load8(out + 8 * v);
  }
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    for (std::size_t e = j + kPrefetchAhead; e < std::min(n, j + kPrefetchAhead + 4); ++e) {
      PrefetchRow(rows + std::size_t{indices[e]} * k, k);
    }
    const float* y0 = rows + std::size_t{indices[j]} * k;
    const float* y1 = rows + std::size_t{indices[j + 1]} * k;
    const float* y2 = rows + std::size_t{indices[j + 2]} * k;
    const float* y3 = rows + std::size_t{indices[j + 3]} * k;
    const V4 dots = Sum8x4(DotPartials<NV>(y0, xv), DotPartials<NV>(y1, xv),
                           DotPartials<NV>(y2, xv), DotPartials<NV>(y3, xv));
    float coef[4];
    for (int e = 0; e < 4; ++e) {
      coef[e] = alpha * scales[j + e] * dots[e];
      if (offsets != nullptr) coef[e] += offsets[j + e];
    }
    for (int v = 0; v < NV; ++v) {
      acc[v] += coef[0] * Load8(y0 + 8 * v);
      acc[v] += coef[1] * Load8(y1 + 8 * v);
      acc[v] += coef[2] * Load8(y2 + 8 * v);
      acc[v] += coef[3] * Load8(y3 + 8 * v);
    }
  }
  for (; j < n; ++j) {
    const float* y = rows + std::size_t{indices[j]} * k;
    float coef = alpha * scales[j] * Sum8(DotPartials<NV>(y, xv));
    if (offsets != nullptr) coef += offsets[j];
    for (int v = 0; v < NV; ++v) acc[v] += coef * Load8(y + 8 * v);
  }
  for (int v = 0; v < NV; ++v) Store8(out + 8 * v, acc[v]);
}

RECFORGE_INLINE void GatherDotAxpyGeneric(const float* rows, std::size_t k,
                                          const std::uint32_t* indices, std::size_t n,
                                          const float* offsets, const float* scales, float alpha,
                                          const float* x, float* out) {
  for (std::size_t j = 0; j < n; ++j) {
    if (j + kPrefetchAhead < n) PrefetchRow(rows + std::size_t{indices[j + kPrefetchAhead]} * k, k);
    const float* y = rows + std::size_t{indices[j]} * k;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (std::size_t i = 0; i < k; ++i) dot += y[i] * x[i];
    float coef = alpha * scales[j] * dot;
    if (offsets != nullptr) coef += offsets[j];
#pragma omp simd
    for (std::size_t i = 0; i < k; ++i) out[i] += coef * y[i];
  }
}

template <int NV>
RECFORGE_INLINE void GatherDotFixed(const float* rows, const std::uint32_t* indices, std::size_t n,
                                    const float* x, float* dots) {
  constexpr std::size_t k = 8 * NV;
  V8 xv[NV];
  for (int v = 0; v < NV; ++v) xv[v] = Load8(x + 8 * v);
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    for (std::size_t e = j + kPrefetchAhead; e < std::min(n, j + kPrefetchAhead + 4); ++e) {
      PrefetchRow(rows + std::size_t{indices[e]} * k, k);
    }
    const V4 group = Sum8x4(DotPartials<NV>(rows + std::size_t{indices[j]} * k, xv),
                            DotPartials<NV>(rows + std::size_t{indices[j + 1]} * k, xv),
                            DotPartials<NV>(rows + std::size_t{indices[j + 2]} * k, xv),
                            DotPartials<NV>(rows + std::size_t{indices[j + 3]} * k, xv));
    __builtin_memcpy(dots + j, &group, sizeof group);
  }
  for (; j < n; ++j) dots[j] = Sum8(DotPartials<NV>(rows + std::size_t{indices[j]} * k, xv));
}

template <int NV>
RECFORGE_INLINE void RowDotsFixed(const float* rows, std::size_t n, const float* x, float* dots) {
  constexpr std::size_t k = 8 * NV;
  V8 xv[NV];
  for (int v = 0; v < NV; ++v) xv[v] = Load8(x + 8 * v);
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* y = rows + j * k;
    const V4 group = Sum8x4(DotPartials<NV>(y, xv), DotPartials<NV>(y + k, xv),
                            DotPartials<NV>(y + 2 * k, xv), DotPartials<NV>(y + 3 * k, xv));
    __builtin_memcpy(dots + j, &group, sizeof group);
  }
  for (; j < n; ++j) dots[j] = Sum8(DotPartials<NV>(rows + j * k, xv));
}

template <int NV>
RECFORGE_INLINE void SymMatVecFixed(const float* a, const float* x, float* y) {
  constexpr std::size_t k = 8 * NV;
  V8 acc[NV] = {};
  for (std::size_t c = 0; c < k; ++c) {
    const float* row = a + c * k;
    const float xc = x[c];
    for (int v = 0; v < NV; ++v) acc[v] += xc * Load8(row + 8 * v);
  }
  for (int v = 0; v < NV; ++v) Store8(y + 8 * v, acc[v]);
}

}  // namespace

RECFORGE_CLONES void GatherDotAxpy(const float* rows, std::size_t k, const std::uint32_t* indices,
                                   std::size_t n, const float* offsets, const float* scales,
                                   float alpha, const float* x, float* out) {
  switch (k) {
    case 8:
      return GatherDotAxpyFixed<1>(rows, indices, n, offsets, scales, alpha, x, out);
    case 16:
      return GatherDotAxpyFixed<2>(rows, indices, n, offsets, scales, alpha, x, out);
    case 32:
      return GatherDotAxpyFixed<4>(rows, indices, n, offsets, scales, alpha, x, out);
    case 64:
      return GatherDotAxpyFixed<8>(rows, indices, n, offsets, scales, alpha, x, out);
    case 128:
      return GatherDotAxpyFixed<16>(rows, indices, n, offsets, scales, alpha, x, out);
    default:
      return GatherDotAxpyGeneric(rows, k, indices, n, offsets, scales, alpha, x, out);
  }
}

RECFORGE_CLONES void GatherDot(const float* rows, std::size_t k, const std::uint32_t* indices,
                               std::size_t n, const float* x, float* dots) {
  switch (k) {
    case 8:
      return GatherDotFixed<1>(rows, indices, n, x, dots);
    case 16:
      return GatherDotFixed<2>(rows, indices, n, x, dots);
    case 32:
      return GatherDotFixed<4>(rows, indices, n, x, dots);
    case 64:
      return GatherDotFixed<8>(rows, indices, n, x, dots);
    case 128:
      return GatherDotFixed<16>(rows, indices, n, x, dots);
    default:
      for (std::size_t j = 0; j < n; ++j) {
        if (j + kPrefetchAhead < n)
          PrefetchRow(rows + std::size_t{indices[j + kPrefetchAhead]} * k, k);
        const float* y = rows + std::size_t{indices[j]} * k;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (std::size_t i = 0; i < k; ++i) dot += y[i] * x[i];
        dots[j] = dot;
      }
  }
}

RECFORGE_CLONES void RowDots(const float* rows, std::size_t n, std::size_t k, const float* x, float* dots) {
  switch (k) {
    case 8:
      return RowDotsFixed<1>(rows, n, x, dots);
    case 16:
      return RowDotsFixed<2>(rows, n, x, dots);
    case 32:
      return RowDotsFixed<4>(rows, n, x, dots);
    case 64:
      return RowDotsFixed<8>(rows, n, x, dots);
    case 128:
      return RowDotsFixed<16>(rows, n, x, dots);
    default:
      for (std::size_t j = 0; j < n; ++j) {
        const float* y = rows + j * k;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (std::size_t i = 0; i < k; ++i) dot += y[i] * x[i];
        dots[j] = dot;
      }
  }
}

RECFORGE_CLONES void SymMatVec(const float* a, std::size_t k, const float* x, float* y) {
  switch (k) {
    case 8:
      return SymMatVecFixed<1>(a, x, y);
    case 16:
      return SymMatVecFixed<2>(a, x, y);
    case 32:
      return SymMatVecFixed<4>(a, x, y);
    case 64:
      return SymMatVecFixed<8>(a, x, y);
    default:
      for (std::size_t i = 0; i < k; ++i) y[i] = 0.0f;
      for (std::size_t c = 0; c < k; ++c) {
        const float* row = a + c * k;
        const float xc = x[c];
#pragma omp simd
        for (std::size_t i = 0; i < k; ++i) y[i] += xc * row[i];
      }
  }
}

// ---- Skip-gram kernel (item2vec) ----

namespace {

// Gradient scale and loss of one target given f = in . out (word2vec's clamping).
RECFORGE_INLINE float SkipGramGradient(float f, bool positive, float lr, const SigmoidTable& table,
                                       float& loss) {
  const float scale = static_cast<float>(table.size) / table.max_exp / 2.0f;
  const float label = positive ? 1.0f : 0.0f;
  float g;
  if (f > table.max_exp) {
    g = (label - 1.0f) * lr;
  } else if (f < -table.max_exp) {
    g = label * lr;
  } else {
    g = (label - table.sigmoid[static_cast<int>((f + table.max_exp) * scale)]) * lr;
  }
  // -log sigmoid(f) = softplus(-f) for the centre, -log sigmoid(-f) = softplus(f) for a negative.
  const float signed_f = positive ? -f : f;
  if (signed_f > table.max_exp) {
    loss += signed_f;
  } else if (signed_f >= -table.max_exp) {
    loss += table.softplus[static_cast<int>((signed_f + table.max_exp) * scale)];
  }
  return g;
}

template <int NV>
RECFORGE_INLINE float SkipGramStepFixed(float* in, float* output, const std::uint32_t* targets,
                                        int n_targets, float lr, const SigmoidTable& table) {
  constexpr std::size_t k = 8 * NV;
  V8 x[NV], e[NV];
  for (int v = 0; v < NV; ++v) {
    x[v] = Load8(in + 8 * v);
    e[v] = V8{};
  }
  float loss = 0.0f;
  for (int t = 0; t < n_targets; ++t) {
    float* out = output + std::size_t{targets[t]} * k;
    const float g = SkipGramGradient(Sum8(DotPartials<NV>(out, x)), t == 0, lr, table, loss);
    for (int v = 0; v < NV; ++v) {
      const V8 o = Load8(out + 8 * v);
      e[v] += g * o;
      Store8(out + 8 * v, o + g * x[v]);
    }
  }
  for (int v = 0; v < NV; ++v) Store8(in + 8 * v, x[v] + e[v]);
  return loss;
}

}  // namespace

RECFORGE_CLONES float SkipGramStep(float* in, float* output, std::size_t k, const std::uint32_t* targets,
                                   int n_targets, float lr, const SigmoidTable& table) {
  switch (k) {
    case 32:
      return SkipGramStepFixed<4>(in, output, targets, n_targets, lr, table);
    case 64:
      return SkipGramStepFixed<8>(in, output, targets, n_targets, lr, table);
    case 128:
      return SkipGramStepFixed<16>(in, output, targets, n_targets, lr, table);
    default:
      break;
  }
  // Generic k: the error row lives in a per-thread buffer (k is at most a few thousand).
  thread_local std::vector<float> error;
  error.assign(k, 0.0f);
  float* e = error.data();
  float loss = 0.0f;
  for (int t = 0; t < n_targets; ++t) {
    float* out = output + std::size_t{targets[t]} * k;
    float f = 0.0f;
#pragma omp simd reduction(+ : f)
    for (std::size_t i = 0; i < k; ++i) f += in[i] * out[i];
    const float g = SkipGramGradient(f, t == 0, lr, table, loss);
#pragma omp simd
    for (std::size_t i = 0; i < k; ++i) {
      e[i] += g * out[i];
      out[i] += g * in[i];
    }
  }
#pragma omp simd
  for (std::size_t i = 0; i < k; ++i) in[i] += e[i];
  return loss;
}

// (No "diagnostic pop": GCC reports -Wpsabi for inlined helpers at the end of the
// translation unit, after any pop; this section is the end of the file.)
#undef RECFORGE_INLINE

}  // namespace recforge::models::kernels
