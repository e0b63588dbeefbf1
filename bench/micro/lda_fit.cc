// Fits one model on a users x items matrix given as text and writes its item factors,
// for the LDA benchmark (bench/peer/lda_bench.py, issue 6):
//
//   recforge_bench_lda_fit TRAIN.txt SPEC THREADS OUT.f32
//
// TRAIN.txt: first line "n_users n_items", then one "user item" pair of 0-based indices
// per line (values 1). OUT.f32 receives Q (n_items x k, float32, row-major, no header;
// for `lda` this is phi transposed). Prints {"fit_seconds": s, "factors": k} on stdout;
// fit_seconds times Recommender::Fit only (what `recforge train` reports as fit time).
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "../../src/models/factor/factor_model.h"
#include "recforge/core/error.h"
#include "recforge/models/registry.h"

int main(int argc, char** argv) {
  using namespace recforge;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s TRAIN.txt SPEC THREADS OUT.f32\n", argv[0]);
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    if (!in) throw IoError(std::string("cannot read ") + argv[1]);
    std::size_t n_users = 0, n_items = 0;
    in >> n_users >> n_items;
    std::vector<std::uint32_t> users, items;
    std::uint32_t u, i;
    while (in >> u >> i) {
      if (u >= n_users || i >= n_items) throw FormatError(std::string(argv[1]) + ": index out of range");
      users.push_back(u);
      items.push_back(i);
    }
    std::vector<float> values(users.size(), 1.0f);
    Context ctx;
    ctx.threads = std::stoi(argv[3]);
    ctx.seed = 42;
    models::TrainingData data;
    data.n_users = n_users;
    data.n_items = n_items;
    data.user_items = std::make_shared<const CsrMatrix>(
        CsrMatrix::FromCoordinates(n_users, n_items, users, items, values, ctx.threads));
    data.item_users = data.user_items->Transpose();
    auto model = models::CreateModel(argv[2]);
    const auto start = std::chrono::steady_clock::now();
    model->Fit(data, ctx);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto* factors = dynamic_cast<const models::FactorModel*>(model.get());
    if (factors == nullptr) throw InvalidArgument(std::string(argv[2]) + ": not a factor model");
    std::ofstream out(argv[4], std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(factors->item_factors().data()),
              static_cast<std::streamsize>(factors->item_factors().size_bytes()));
    if (!out.flush()) throw IoError(std::string("write failed: ") + argv[4]);
    std::printf("{\"fit_seconds\": %.6f, \"factors\": %zu}\n", seconds, factors->factors());
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
