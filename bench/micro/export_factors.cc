// Exports the learned state of a factor model (FactorModel family: ials, als, bpr, mf,
// svd, nmf) as plain files for the Python serving peer (bench/peer/fastapi_server.py):
//
//   recforge_export_factors MODEL.rfm PREPARED_DIR OUT_DIR
//
// OUT_DIR receives
//   user_ids.txt item_ids.txt   original ids, line k = index k (copied from the dataset)
//   P.npy Q.npy                 float32 (n_users x k) / (n_items x k), C order
//   user_bias.npy item_bias.npy float32 vectors, only when the model has biases
//   seen_indptr.npy             int64 (n_users + 1): the training items of user u are
//   seen_indices.npy            int32 seen_indices[seen_indptr[u]:seen_indptr[u + 1]]
//                               (the matrix the model keeps for exclude-seen)
//   known_users.txt             ids of the users with at least one training item
//   meta.json                   family, spec, sizes, global bias, dataset hash
//
// The .npy files use format version 1.0 (magic, u16 header length, a Python dict
// literal padded to a multiple of 64 bytes, then the raw little-endian data).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../src/models/factor/factor_model.h"
#include "recforge/core/error.h"
#include "recforge/data/dataset.h"
#include "recforge/models/model_io.h"

namespace {

using namespace recforge;

template <typename T>
constexpr const char* NpyDescr() {
  if constexpr (std::is_same_v<T, float>) return "<f4";
  if constexpr (std::is_same_v<T, std::int64_t>) return "<i8";
  if constexpr (std::is_same_v<T, std::int32_t>) return "<i4";
}

// Writes `values` as an .npy array of the given shape (one or two dimensions).
template <typename T>
void WriteNpy(const fs::path& path, std::span<const T> values, std::size_t rows, std::size_t cols = 0) {
  const std::size_t expected = cols == 0 ? rows : rows * cols;
  if (values.size() != expected) {
    throw InvalidArgument(path.string() + ": " + std::to_string(values.size()) + " values for the shape");
  }
  std::string shape = cols == 0 ? "(" + std::to_string(rows) + ",)"
                                : "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
  std::string header =
      std::string("{'descr': '") + NpyDescr<T>() + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  const std::size_t total = (preamble + header.size() + 1 + 63) / 64 * 64;
  header.append(total - preamble - header.size() - 1, ' ');
  header.push_back('\n');
  const auto header_length = static_cast<std::uint16_t>(header.size());

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError("cannot write " + path.string());
  out.write("\x93NUMPY\x01\x00", 8);
  const char length_bytes[2] = {static_cast<char>(header_length & 0xff), static_cast<char>(header_length >> 8)};
  out.write(length_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
  if (!out.flush()) throw IoError("write failed: " + path.string());
}

void WriteLines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError("cannot write " + path.string());
  for (const auto& line : lines) out << line << '\n';
  if (!out.flush()) throw IoError("write failed: " + path.string());
}

int Run(const fs::path& model_path, const fs::path& dataset_dir, const fs::path& out_dir) {
  auto model = models::LoadModel(model_path);
  const auto* factors = dynamic_cast<const models::FactorModel*>(model.get());
  if (factors == nullptr) {
    std::fprintf(stderr, "%s: family '%s' is not a factor model\n", model_path.c_str(), model->family().c_str());
    return 1;
  }
  const data::IdMap users = data::LoadIdFile(dataset_dir / "user_ids.txt");
  const data::IdMap items = data::LoadIdFile(dataset_dir / "item_ids.txt");
  if (users.size() != model->n_users() || items.size() != model->n_items()) {
    std::fprintf(stderr, "%s has %zu users x %zu items, but the model %zu x %zu\n", dataset_dir.c_str(),
                 users.size(), items.size(), model->n_users(), model->n_items());
    return 1;
  }
  const nlohmann::json dataset_meta = data::ReadMeta(dataset_dir);
  const std::string dataset_hash = dataset_meta.value("content_hash", std::string());
  if (!model->dataset_hash().empty() && dataset_hash != model->dataset_hash()) {
    std::fprintf(stderr, "warning: dataset hash %s differs from the model's %s\n", dataset_hash.c_str(),
                 model->dataset_hash().c_str());
  }

  fs::create_directories(out_dir);
  const std::size_t n_users = model->n_users();
  const std::size_t n_items = model->n_items();
  const std::size_t k = factors->factors();
  WriteLines(out_dir / "user_ids.txt", users.ids());
  WriteLines(out_dir / "item_ids.txt", items.ids());
  WriteNpy<float>(out_dir / "P.npy", factors->user_factors(), n_users, k);
  WriteNpy<float>(out_dir / "Q.npy", factors->item_factors(), n_items, k);
  std::error_code ec;
  fs::remove(out_dir / "user_bias.npy", ec);
  fs::remove(out_dir / "item_bias.npy", ec);
  if (!factors->user_bias().empty()) WriteNpy<float>(out_dir / "user_bias.npy", factors->user_bias(), n_users);
  if (!factors->item_bias().empty()) WriteNpy<float>(out_dir / "item_bias.npy", factors->item_bias(), n_items);

  // The training items the model keeps for exclude-seen, as CSR.
  const CsrMatrix& seen = model->seen();
  std::vector<std::int64_t> indptr(n_users + 1, 0);
  std::vector<std::int32_t> indices;
  std::vector<std::string> known;
  if (!seen.indptr.empty()) {
    if (seen.n_rows != n_users) {
      std::fprintf(stderr, "the model's training matrix has %zu rows, not %zu\n", seen.n_rows, n_users);
      return 1;
    }
    indices.assign(seen.indices.begin(), seen.indices.end());
    for (std::size_t u = 0; u <= n_users; ++u) indptr[u] = static_cast<std::int64_t>(seen.indptr[u]);
    for (std::size_t u = 0; u < n_users; ++u) {
      if (seen.RowLength(u) > 0) known.push_back(users.id(static_cast<std::uint32_t>(u)));
    }
  } else {
    known = users.ids();
  }
  WriteNpy<std::int64_t>(out_dir / "seen_indptr.npy", indptr, n_users + 1);
  WriteNpy<std::int32_t>(out_dir / "seen_indices.npy", indices, indices.size());
  WriteLines(out_dir / "known_users.txt", known);

  nlohmann::json meta = {{"family", model->family()},
                         {"spec", model->Spec()},
                         {"model_file", fs::absolute(model_path).string()},
                         {"dataset_hash", model->dataset_hash()},
                         {"n_users", n_users},
                         {"n_items", n_items},
                         {"factors", k},
                         {"global_bias", factors->global_bias()},
                         {"has_user_bias", !factors->user_bias().empty()},
                         {"has_item_bias", !factors->item_bias().empty()},
                         {"seen_nnz", indices.size()},
                         {"known_users", known.size()}};
  WriteLines(out_dir / "meta.json", {meta.dump(2)});
  std::printf("%s\n", meta.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.rfm PREPARED_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    return Run(argv[1], argv[2], argv[3]);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
}
