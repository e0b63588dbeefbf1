#include "recforge/data/export.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "recforge/core/error.h"

namespace recforge::data {

namespace {

// Appends to a fixed buffer and hands full buffers to fwrite: formatting with
// to_chars into it costs a few ns per field, far less than an ostream.
class BufferedWriter {
 public:
  explicit BufferedWriter(const fs::path& path) : path_(path), buffer_(kCapacity) {
    file_ = std::fopen(path.c_str(), "wb");
    if (file_ == nullptr) {
      throw IoError(
          fmt::format("{}: cannot open for writing: {}", path.string(), std::strerror(errno)));
    }
  }
  ~BufferedWriter() {
    if (file_ != nullptr) std::fclose(file_);
  }
  BufferedWriter(const BufferedWriter&) = delete;
  BufferedWriter& operator=(const BufferedWriter&) = delete;

  // Room for one row's numbers; strings are appended through Append().
  void Reserve(std::size_t bytes) {
    if (kCapacity - used_ < bytes) Flush();
  }
  void Append(std::string_view text) {
    if (text.size() > kCapacity - used_) {
      Flush();
      if (text.size() > kCapacity) {
        WriteRaw(text.data(), text.size());
        return;
      }
    }
    std::memcpy(buffer_.data() + used_, text.data(), text.size());
    used_ += text.size();
  }
  void Append(char c) {
    if (used_ == kCapacity) Flush();
    buffer_[used_++] = c;
  }
  // Callers Reserve() enough room first (kMaxNumber bytes per number).
  template <typename T>
  void AppendNumber(T value) {
    auto result = std::to_chars(buffer_.data() + used_, buffer_.data() + kCapacity, value);
    used_ = static_cast<std::size_t>(result.ptr - buffer_.data());
  }
  // Shortest text that reads back to the same float (4, 3.5, 0.1); fixed notation so
  // that consumers expecting plain decimals never see an exponent.
  void AppendFloat(float value) {
    auto result = std::to_chars(buffer_.data() + used_, buffer_.data() + kCapacity, value,
                                std::chars_format::fixed);
    used_ = static_cast<std::size_t>(result.ptr - buffer_.data());
  }

  void Close() {
    Flush();
    std::FILE* file = file_;
    file_ = nullptr;
    if (std::fclose(file) != 0) {
      throw IoError(
          fmt::format("{}: write failed on close: {}", path_.string(), std::strerror(errno)));
    }
  }

  // Longest fixed-notation float (3.4e38 has 39 digits) plus sign and point, rounded up.
  static constexpr std::size_t kMaxNumber = 64;

 private:
  static constexpr std::size_t kCapacity = 1 << 20;

  void Flush() {
    WriteRaw(buffer_.data(), used_);
    used_ = 0;
  }
  void WriteRaw(const char* data, std::size_t bytes) {
    if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) {
      throw IoError(fmt::format("{}: write failed: {}", path_.string(), std::strerror(errno)));
    }
  }

  fs::path path_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  std::size_t used_ = 0;
};

// The id as it appears in the output. CSV: RFC-4180 quoting when the id holds the
// delimiter, a quote or a line break. TSV has no quoting convention, so ids that
// would break a row are refused rather than silently corrupting the file.
std::string FormatId(const std::string& id, ExportFormat format, const char* what) {
  if (format == ExportFormat::kTsv) {
    if (id.find_first_of("\t\r\n") != std::string::npos) {
      throw InvalidArgument(fmt::format(
          "{} id '{}' contains a tab or line break and cannot be written as TSV; export as csv",
          what, id));
    }
    return id;
  }
  if (id.find_first_of(",\"\r\n") == std::string::npos) return id;
  std::string quoted = "\"";
  for (char c : id) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::vector<std::string> FormatIds(const IdMap& ids, ExportFormat format, const char* what) {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const auto& id : ids.ids()) out.push_back(FormatId(id, format, what));
  return out;
}

}  // namespace

ExportFormat ParseExportFormat(std::string_view name) {
  if (name == "csv") return ExportFormat::kCsv;
  if (name == "tsv") return ExportFormat::kTsv;
  throw InvalidArgument(fmt::format("unknown export format '{}' (allowed: csv, tsv)", name));
}

void ExportInteractions(const Interactions& interactions, const IdMap& users, const IdMap& items,
                        ExportFormat format, const fs::path& path) {
  // Ids are formatted once per id rather than once per row.
  const std::vector<std::string> user_text = FormatIds(users, format, "user");
  const std::vector<std::string> item_text = FormatIds(items, format, "item");
  const char delimiter = format == ExportFormat::kCsv ? ',' : '\t';

  BufferedWriter out(path);
  out.Append(format == ExportFormat::kCsv ? "user_id,item_id,rating,timestamp\n"
                                          : "user_id\titem_id\trating\ttimestamp\n");
  for (std::size_t row = 0; row < interactions.size(); ++row) {
    const UserIndex user = interactions.users[row];
    const ItemIndex item = interactions.items[row];
    if (user >= user_text.size() || item >= item_text.size()) {
      throw FormatError(
          fmt::format("{}: row {} refers to user index {} / item index {} beyond the id "
                      "maps ({} users, {} items)",
                      path.string(), row, user, item, user_text.size(), item_text.size()));
    }
    out.Append(user_text[user]);
    out.Append(delimiter);
    out.Append(item_text[item]);
    out.Reserve(3 * BufferedWriter::kMaxNumber);
    out.Append(delimiter);
    out.AppendFloat(interactions.ratings[row]);
    out.Append(delimiter);
    out.AppendNumber(interactions.times[row]);
    out.Append('\n');
  }
  out.Close();
}

}  // namespace recforge::data
