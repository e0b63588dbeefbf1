// Model files: a versioned, checksummed header then the family's learned state
// (docs/formats.md "Model file").
//
//   magic "RFMODEL\0" (8 bytes) | u32 format version | u32 header bytes | header JSON
//   (family, spec, dataset_hash, n_users, n_items, recforge version, payload_bytes,
//   payload_sha256) | payload
//
// The spec (config) and the learned state are separate sections (STYLE.md §5).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "recforge/core/error.h"
#include "recforge/core/file_io.h"
#include "recforge/models/recommender.h"

namespace recforge::models {

inline constexpr std::uint32_t kModelFormatVersion = 1;

// Appends little-endian values to an in-memory payload.
class ModelWriter {
 public:
  template <typename T>
  void Write(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    Append(&value, sizeof(T));
  }
  template <typename T>
  void WriteVector(std::span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    Write<std::uint64_t>(values.size());
    Append(values.data(), values.size_bytes());
  }
  template <typename T>
  void WriteVector(const std::vector<T>& values) { WriteVector(std::span<const T>(values)); }
  void WriteString(const std::string& text) { WriteVector(std::span<const char>(text.data(), text.size())); }
  void WriteCsr(const CsrMatrix& matrix);

  const std::string& bytes() const { return bytes_; }

 private:
  void Append(const void* data, std::size_t size) { bytes_.append(static_cast<const char*>(data), size); }
  std::string bytes_;
};

// Reads what ModelWriter wrote; every read is bounds-checked and a short payload is
// a FormatError naming the file.
class ModelReader {
 public:
  ModelReader(std::string_view bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {}

  template <typename T>
  T Read() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    Take(&value, sizeof(T));
    return value;
  }
  template <typename T>
  std::vector<T> ReadVector() {
    auto count = Read<std::uint64_t>();
    if (count > (bytes_.size() - offset_) / sizeof(T)) Truncated();
    std::vector<T> values(count);
    Take(values.data(), count * sizeof(T));
    return values;
  }
  std::string ReadString() {
    auto chars = ReadVector<char>();
    return std::string(chars.begin(), chars.end());
  }
  CsrMatrix ReadCsr();
  bool AtEnd() const { return offset_ == bytes_.size(); }
  const std::string& source() const { return source_; }

 private:
  void Take(void* out, std::size_t size) {
    if (size > bytes_.size() - offset_) Truncated();
    std::memcpy(out, bytes_.data() + offset_, size);
    offset_ += size;
  }
  [[noreturn]] void Truncated() const;
  std::string_view bytes_;
  std::size_t offset_ = 0;
  std::string source_;
};

// Writes the model (atomically). Throws IoError.
void SaveModel(const Recommender& model, const fs::path& path);

// Reads the header only (cheap): family, spec, dataset hash, sizes, version.
struct ModelHeader {
  std::uint32_t format_version = 0;
  std::string family, spec, dataset_hash, recforge_version;
  std::uint64_t n_users = 0, n_items = 0, payload_bytes = 0;
  std::string payload_sha256;
};
ModelHeader ReadModelHeader(const fs::path& path);

// Loads a model of any registered family; verifies magic, version and checksum.
// Throws FormatError naming the file on any mismatch.
std::unique_ptr<Recommender> LoadModel(const fs::path& path);

}  // namespace recforge::models
