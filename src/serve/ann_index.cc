#include "recforge/serve/ann_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cstring>

#include "recforge/core/error.h"
#include "recforge/core/parallel.h"

namespace recforge::serve {

namespace {

// 1 - dot(a, b): hnswlib's inner-product distance. Compiled for AVX-512 / AVX2 / the
// baseline and chosen at load time (the build has no -march=native, and hnswlib's own
// kernels pick their SIMD width at compile time).
#if defined(RECFORGE_NO_TARGET_CLONES)
#define RECFORGE_ANN_CLONES  // sanitizer builds: baseline code only (see CMakeLists.txt)
#else
#define RECFORGE_ANN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
RECFORGE_ANN_CLONES float InnerProductDistance(
    const void* a, const void* b, const void* dim_ptr) {
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
  const std::size_t n = *static_cast<const std::size_t*>(dim_ptr);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return 1.0f - sum;
}

class InnerProductSpace : public hnswlib::SpaceInterface<float> {
 public:
  explicit InnerProductSpace(std::size_t dim) : dim_(dim) {}
  std::size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return &InnerProductDistance; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  std::size_t dim_;
};

}  // namespace

struct AnnIndex::Impl {
  explicit Impl(std::size_t dim) : space(dim) {}
  InnerProductSpace space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
};

AnnIndex::AnnIndex(std::span<const float> vectors, std::size_t n, std::size_t dim,
                   std::span<const float> item_bias, const AnnIndexOptions& options, int threads)
    : n_(n), dim_(dim), with_bias_(!item_bias.empty()) {
  if (vectors.size() != n * dim) throw InvalidArgument("AnnIndex: vectors must hold n x dim floats");
  if (with_bias_ && item_bias.size() != n) throw InvalidArgument("AnnIndex: item_bias must hold n floats");
  if (options.m < 2 || options.ef_construction < 1 || options.ef_search < 1) {
    throw InvalidArgument("AnnIndex: m must be >= 2, ef_construction and ef_search >= 1");
  }
  // Stored rows: [Q[i], bias[i] if any]; queries get a trailing 1.
  const std::size_t stored_dim = dim + (with_bias_ ? 1 : 0);
  stored_dim_ = stored_dim;
  impl_ = std::make_unique<Impl>(stored_dim);
  impl_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      &impl_->space, std::max<std::size_t>(n, 1), static_cast<std::size_t>(options.m),
      static_cast<std::size_t>(options.ef_construction), options.seed);
  impl_->graph->setEf(static_cast<std::size_t>(options.ef_search));
  if (n == 0) return;
  // The first point alone (hnswlib's entry point), then the rest in parallel.
  auto add = [&](std::size_t i) {
    thread_local std::vector<float> row;
    row.resize(stored_dim);
    std::memcpy(row.data(), vectors.data() + i * dim, dim * sizeof(float));
    if (with_bias_) row[dim] = item_bias[i];
    impl_->graph->addPoint(row.data(), static_cast<hnswlib::labeltype>(i));
  };
  add(0);
  ParallelFor<std::size_t>(1, n, threads, add, Schedule::kDynamic, 1024);
}

AnnIndex::~AnnIndex() = default;

void AnnIndex::Search(const float* query, std::size_t k, std::vector<ItemIndex>& out) const {
  out.clear();
  if (n_ == 0 || k == 0) return;
  thread_local std::vector<float> q;
  const float* data = query;
  if (stored_dim_ != dim_) {
    q.resize(stored_dim_);
    std::memcpy(q.data(), query, dim_ * sizeof(float));
    if (with_bias_) q[dim_] = 1.0f;
    data = q.data();
  }
  auto result = impl_->graph->searchKnn(data, std::min(k, n_));
  out.reserve(result.size());
  while (!result.empty()) {
    out.push_back(static_cast<ItemIndex>(result.top().second));
    result.pop();
  }
}

}  // namespace recforge::serve
