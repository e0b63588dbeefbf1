#include "kernels.h"

#include <cblas.h>

#include <cmath>

namespace recforge::models::kernels {

#define RECFORGE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

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

RECFORGE_CLONES BprStepResult BprStep(float* __restrict user, float* __restrict pos, float* __restrict neg,
                                      std::size_t n, float bias_diff, float lr, float reg) {
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

RECFORGE_CLONES void SgdPairStep(float* __restrict user, float* __restrict item, std::size_t n, float error,
                                 float lr, float user_reg, float item_reg) {
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
RECFORGE_INLINE float Sum8(V8 v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

// How many entries ahead rows are prefetched: far enough to cover a DRAM miss at a
// few tens of cycles per entry, near enough to stay in L1.
constexpr std::size_t kPrefetchAhead = 4;

RECFORGE_INLINE void PrefetchRow(const float* row, std::size_t k) {
  const char* begin = reinterpret_cast<const char*>(row);
  const char* last = begin + k * sizeof(float) - 1;
  for (const char* p = begin; p <= last; p += 64) __builtin_prefetch(p);
  __builtin_prefetch(last);
}

// Unrolled path for k = 8 * NV: x and the accumulator stay in registers (two partial
// dot sums hide the FMA latency).
template <int NV>
RECFORGE_INLINE void GatherDotAxpyFixed(const float* rows, const std::uint32_t* indices, std::size_t n,
                                        const float* offsets, const float* scales, float alpha, const float* x,
                                        float* out) {
  constexpr std::size_t k = 8 * NV;
  V8 xv[NV], acc[NV];
  for (int v = 0; v < NV; ++v) {
    xv[v] = Load8(x + 8 * v);
    acc[v] = Load8(out + 8 * v);
  }
  for (std::size_t j = 0; j < n; ++j) {
    if (j + kPrefetchAhead < n) PrefetchRow(rows + std::size_t{indices[j + kPrefetchAhead]} * k, k);
    const float* y = rows + std::size_t{indices[j]} * k;
    V8 s0 = {}, s1 = {};
    for (int v = 0; v + 1 < NV; v += 2) {
      s0 += Load8(y + 8 * v) * xv[v];
      s1 += Load8(y + 8 * v + 8) * xv[v + 1];
    }
    if (NV % 2 == 1) s0 += Load8(y + 8 * (NV - 1)) * xv[NV - 1];
    float coef = alpha * scales[j] * Sum8(s0 + s1);
    if (offsets != nullptr) coef += offsets[j];
    for (int v = 0; v < NV; ++v) acc[v] += coef * Load8(y + 8 * v);
  }
  for (int v = 0; v < NV; ++v) Store8(out + 8 * v, acc[v]);
}

RECFORGE_INLINE void GatherDotAxpyGeneric(const float* rows, std::size_t k, const std::uint32_t* indices,
                                          std::size_t n, const float* offsets, const float* scales, float alpha,
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
RECFORGE_INLINE void GatherDotFixed(const float* rows, const std::uint32_t* indices, std::size_t n, const float* x,
                                    float* dots) {
  constexpr std::size_t k = 8 * NV;
  V8 xv[NV];
  for (int v = 0; v < NV; ++v) xv[v] = Load8(x + 8 * v);
  for (std::size_t j = 0; j < n; ++j) {
    if (j + kPrefetchAhead < n) PrefetchRow(rows + std::size_t{indices[j + kPrefetchAhead]} * k, k);
    const float* y = rows + std::size_t{indices[j]} * k;
    V8 s0 = {}, s1 = {};
    for (int v = 0; v + 1 < NV; v += 2) {
      s0 += Load8(y + 8 * v) * xv[v];
      s1 += Load8(y + 8 * v + 8) * xv[v + 1];
    }
    if (NV % 2 == 1) s0 += Load8(y + 8 * (NV - 1)) * xv[NV - 1];
    dots[j] = Sum8(s0 + s1);
  }
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

RECFORGE_CLONES void GatherDotAxpy(const float* rows, std::size_t k, const std::uint32_t* indices, std::size_t n,
                                   const float* offsets, const float* scales, float alpha, const float* x,
                                   float* out) {
  switch (k) {
    case 8: return GatherDotAxpyFixed<1>(rows, indices, n, offsets, scales, alpha, x, out);
    case 16: return GatherDotAxpyFixed<2>(rows, indices, n, offsets, scales, alpha, x, out);
    case 32: return GatherDotAxpyFixed<4>(rows, indices, n, offsets, scales, alpha, x, out);
    case 64: return GatherDotAxpyFixed<8>(rows, indices, n, offsets, scales, alpha, x, out);
    case 128: return GatherDotAxpyFixed<16>(rows, indices, n, offsets, scales, alpha, x, out);
    default: return GatherDotAxpyGeneric(rows, k, indices, n, offsets, scales, alpha, x, out);
  }
}

RECFORGE_CLONES void GatherDot(const float* rows, std::size_t k, const std::uint32_t* indices, std::size_t n,
                               const float* x, float* dots) {
  switch (k) {
    case 8: return GatherDotFixed<1>(rows, indices, n, x, dots);
    case 16: return GatherDotFixed<2>(rows, indices, n, x, dots);
    case 32: return GatherDotFixed<4>(rows, indices, n, x, dots);
    case 64: return GatherDotFixed<8>(rows, indices, n, x, dots);
    case 128: return GatherDotFixed<16>(rows, indices, n, x, dots);
    default:
      for (std::size_t j = 0; j < n; ++j) {
        if (j + kPrefetchAhead < n) PrefetchRow(rows + std::size_t{indices[j + kPrefetchAhead]} * k, k);
        const float* y = rows + std::size_t{indices[j]} * k;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (std::size_t i = 0; i < k; ++i) dot += y[i] * x[i];
        dots[j] = dot;
      }
  }
}

RECFORGE_CLONES void SymMatVec(const float* a, std::size_t k, const float* x, float* y) {
  switch (k) {
    case 8: return SymMatVecFixed<1>(a, x, y);
    case 16: return SymMatVecFixed<2>(a, x, y);
    case 32: return SymMatVecFixed<4>(a, x, y);
    case 64: return SymMatVecFixed<8>(a, x, y);
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

#pragma GCC diagnostic pop
#undef RECFORGE_INLINE

}  // namespace recforge::models::kernels
