#include "recforge/models/model_io.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include <fmt/format.h>

#include "recforge/core/version.h"
#include "recforge/models/registry.h"

namespace recforge::models {
namespace {
constexpr char kMagic[8] = {'R', 'F', 'M', 'O', 'D', 'E', 'L', '\0'};

std::string PayloadHash(std::string_view payload) {
  Sha256 hasher;
  hasher.Update(payload);
  return hasher.HexDigest();
}
}  // namespace

void ModelWriter::WriteCsr(const CsrMatrix& matrix) {
  Write<std::uint64_t>(matrix.n_rows);
  Write<std::uint64_t>(matrix.n_cols);
  WriteVector(matrix.indptr);
  WriteVector(matrix.indices);
  WriteVector(matrix.values);
}

CsrMatrix ModelReader::ReadCsr() {
  CsrMatrix matrix;
  matrix.n_rows = Read<std::uint64_t>();
  matrix.n_cols = Read<std::uint64_t>();
  matrix.indptr = ReadVector<std::uint64_t>();
  matrix.indices = ReadVector<std::uint32_t>();
  matrix.values = ReadVector<float>();
  if (matrix.indptr.size() != matrix.n_rows + 1 || matrix.indices.size() != matrix.values.size() ||
      matrix.indptr.back() != matrix.indices.size()) {
    throw FormatError(fmt::format("{}: corrupt sparse matrix section", source_));
  }
  return matrix;
}

void ModelReader::Truncated() const {
  throw FormatError(fmt::format("{}: model payload is truncated or corrupt", source_));
}

void SaveModel(const Recommender& model, const fs::path& path) {
  ModelWriter writer;
  writer.WriteCsr(model.seen());
  model.SaveState(writer);
  const std::string& payload = writer.bytes();
  nlohmann::json header = {{"family", model.family()},
                           {"spec", model.Spec()},
                           {"dataset_hash", model.dataset_hash()},
                           {"n_users", model.n_users()},
                           {"n_items", model.n_items()},
                           {"recforge_version", fmt::format("{} ({})", Version(), GitCommit())},
                           {"payload_bytes", payload.size()},
                           {"payload_sha256", PayloadHash(payload)}};
  std::string header_text = header.dump();
  std::string file(kMagic, sizeof kMagic);
  auto append_u32 = [&file](std::uint32_t value) { file.append(reinterpret_cast<const char*>(&value), 4); };
  append_u32(kModelFormatVersion);
  append_u32(static_cast<std::uint32_t>(header_text.size()));
  file += header_text;
  file += payload;
  WriteFileAtomic(path, file);
}

namespace {

struct RawModelFile {
  ModelHeader header;
  std::string bytes;
  std::size_t payload_offset = 0;
};

RawModelFile ReadRaw(const fs::path& path, bool with_payload) {
  RawModelFile raw;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(fmt::format("{}: no such model file", path.string()));
  if (with_payload) {
    raw.bytes = ReadFileToString(path);
  } else {
    // Header only: magic, version, length and the JSON (a few hundred bytes).
    std::ifstream in(path, std::ios::binary);
    raw.bytes.resize(16);
    in.read(raw.bytes.data(), 16);
    raw.bytes.resize(static_cast<std::size_t>(in.gcount()));
    if (raw.bytes.size() == 16) {
      std::uint32_t header_bytes;
      std::memcpy(&header_bytes, raw.bytes.data() + 12, 4);
      std::string header(std::min<std::uint32_t>(header_bytes, 1u << 20), '\0');
      in.read(header.data(), static_cast<std::streamsize>(header.size()));
      header.resize(static_cast<std::size_t>(in.gcount()));
      raw.bytes += header;
    }
  }
  const std::string& bytes = raw.bytes;
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw FormatError(fmt::format("{}: not a recforge model file (bad magic)", path.string()));
  }
  std::uint32_t version, header_bytes;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&header_bytes, bytes.data() + 12, 4);
  if (version != kModelFormatVersion) {
    throw FormatError(fmt::format("{}: model format version {} is not supported (this build reads {})",
                                  path.string(), version, kModelFormatVersion));
  }
  if (16 + static_cast<std::size_t>(header_bytes) > bytes.size()) {
    throw FormatError(fmt::format("{}: model header is truncated", path.string()));
  }
  auto header = nlohmann::json::parse(bytes.substr(16, header_bytes), nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    throw FormatError(fmt::format("{}: model header is not valid JSON", path.string()));
  }
  try {
    raw.header.format_version = version;
    raw.header.family = header.at("family").get<std::string>();
    raw.header.spec = header.at("spec").get<std::string>();
    raw.header.dataset_hash = header.at("dataset_hash").get<std::string>();
    raw.header.recforge_version = header.value("recforge_version", std::string());
    raw.header.n_users = header.at("n_users").get<std::uint64_t>();
    raw.header.n_items = header.at("n_items").get<std::uint64_t>();
    raw.header.payload_bytes = header.at("payload_bytes").get<std::uint64_t>();
    raw.header.payload_sha256 = header.at("payload_sha256").get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(fmt::format("{}: model header field missing or wrong type: {}", path.string(), error.what()));
  }
  raw.payload_offset = 16 + header_bytes;
  return raw;
}

}  // namespace

ModelHeader ReadModelHeader(const fs::path& path) { return ReadRaw(path, false).header; }

std::unique_ptr<Recommender> LoadModel(const fs::path& path) {
  RawModelFile raw = ReadRaw(path, true);
  std::string_view payload(raw.bytes);
  payload.remove_prefix(raw.payload_offset);
  if (payload.size() != raw.header.payload_bytes) {
    throw FormatError(fmt::format("{}: payload has {} bytes, header says {} (truncated file?)", path.string(),
                                  payload.size(), raw.header.payload_bytes));
  }
  if (PayloadHash(payload) != raw.header.payload_sha256) {
    throw FormatError(fmt::format("{}: checksum mismatch (the file is corrupt)", path.string()));
  }
  ParamValues params = ParseSpec(raw.header.spec);
  if (params.family() != raw.header.family) {
    throw FormatError(fmt::format("{}: header family '{}' does not match spec '{}'", path.string(),
                                  raw.header.family, raw.header.spec));
  }
  auto model = CreateModel(params);
  model->SetShape(raw.header.n_users, raw.header.n_items, raw.header.dataset_hash);
  ModelReader reader(payload, path.string());
  model->SetSeen(reader.ReadCsr());
  model->LoadState(reader);
  if (!reader.AtEnd()) throw FormatError(fmt::format("{}: trailing bytes after the model state", path.string()));
  return model;
}

}  // namespace recforge::models
