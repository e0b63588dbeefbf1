// File input/output shared by every module: a sequential byte source that reads
// plain or gzip-compressed files transparently, a reader of whole-line blocks on top
// of it (the unit of parallel parsing), little-endian binary columns, atomic writes
// and SHA-256 hashing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace recforge {

namespace fs = std::filesystem;

class Sha256;

// Reads a file front to back. Gzip input (detected by its magic bytes, not the name)
// is inflated on the fly; concatenated gzip members are supported. A gzip stream that
// ends early is not an exception: the bytes decoded so far are returned and
// truncated() becomes true, so callers can keep the valid prefix and report it.
// Not thread-safe.
class ByteSource {
 public:
  // Throws IoError naming the path when it cannot be opened.
  explicit ByteSource(const fs::path& path);
  ~ByteSource();
  ByteSource(const ByteSource&) = delete;
  ByteSource& operator=(const ByteSource&) = delete;

  // Fills up to `capacity` bytes; returns the count, 0 at end of input.
  std::size_t Read(char* buffer, std::size_t capacity);

  // Hash the raw (still compressed) bytes as they are read; call before the first Read.
  // RawSha256Hex() is valid once Read() has returned 0.
  void EnableHashing();
  std::string RawSha256Hex();

  bool compressed() const { return compressed_; }
  bool truncated() const { return truncated_; }
  const fs::path& path() const { return path_; }
  std::uint64_t compressed_bytes_read() const { return raw_bytes_read_; }
  std::uint64_t file_size() const { return file_size_; }

 private:
  std::size_t ReadRaw(char* buffer, std::size_t capacity);
  std::size_t Inflate(char* buffer, std::size_t capacity);

  fs::path path_;
  std::FILE* file_ = nullptr;
  bool compressed_ = false;
  bool truncated_ = false;
  bool stream_done_ = false;
  std::uint64_t raw_bytes_read_ = 0;
  std::uint64_t file_size_ = 0;
  struct ZState;
  std::unique_ptr<ZState> z_;
  std::unique_ptr<Sha256> hasher_;
};

// A run of complete lines read from a file. `text` ends with '\n' except possibly
// for the last block of a file whose final line lacks one. first_line is 1-based.
struct LineBlock {
  std::string_view text;
  std::uint64_t first_line = 1;
};

// Cuts a ByteSource into blocks of whole lines of roughly `block_bytes` each.
// A block's memory stays valid until the second call to Next() after it (two buffers
// alternate), so the next block can be read on another thread while this one is
// parsed. At least kPadding readable bytes follow every block (for SIMD parsers such
// as simdjson).
// When a gzip stream is truncated, the incomplete last line is not handed out:
// truncated_tail() becomes true instead.
class LineBlockReader {
 public:
  static constexpr std::size_t kPadding = 64;

  explicit LineBlockReader(const fs::path& path, std::size_t block_bytes = 32u << 20);

  // Returns false at end of input.
  bool Next(LineBlock& block);

  ByteSource& source() { return source_; }
  bool truncated_tail() const { return truncated_tail_; }

 private:
  ByteSource source_;
  std::vector<char> buffers_[2];  // blocks alternate between the two
  int current_ = 0;              // the buffer of the block handed out last
  std::size_t carry_ = 0;        // bytes of an incomplete line kept from the last read
  std::size_t block_end_ = 0;    // end of the block handed out last time
  std::size_t data_end_ = 0;
  std::uint64_t next_line_ = 1;
  bool eof_ = false;
  bool truncated_tail_ = false;
};

// Counts '\n' in text (vectorised by the compiler / libc memchr).
std::uint64_t CountNewlines(std::string_view text);

// Splits `text` (whole lines) into at most `parts` pieces of whole lines of similar size.
std::vector<std::string_view> SplitAtLines(std::string_view text, int parts);

// Calls fn(line, line_number) for each line of a block, with "\r\n" / "\n" removed.
template <typename Fn>
void ForEachLine(std::string_view text, std::uint64_t first_line, Fn&& fn) {
  std::uint64_t line_number = first_line;
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, line_number);
    ++line_number;
    if (newline == std::string_view::npos) break;
    text.remove_prefix(newline + 1);
  }
}

// Reads a whole (possibly gzip-compressed) file into memory. Throws IoError.
std::string ReadFileToString(const fs::path& path);

// Writes content to path via a temporary file and rename, so readers never see a
// half-written file. Throws IoError.
void WriteFileAtomic(const fs::path& path, std::string_view content);

// Little-endian binary columns (the dataset format). x86-64 and ARM64 are
// little-endian; a static_assert guards the assumption.
void WriteColumnBytes(const fs::path& path, const void* data, std::size_t bytes);
std::vector<char> ReadColumnBytes(const fs::path& path);

template <typename T>
void WriteColumn(const fs::path& path, std::span<const T> values) {
  WriteColumnBytes(path, values.data(), values.size_bytes());
}

// Reads a column of exactly `expected_count` values of T; throws FormatError naming
// the file if its size does not match.
template <typename T>
std::vector<T> ReadColumn(const fs::path& path, std::uint64_t expected_count);

// Converts ISO-8859-1 bytes to UTF-8 (every byte maps to one code point).
std::string Latin1ToUtf8(std::string_view text);
bool IsValidUtf8(std::string_view text);
// Returns text unchanged when it is valid UTF-8, else its Latin-1 reading as UTF-8.
std::string ToUtf8(std::string_view text);

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, std::size_t bytes);
  void Update(std::string_view text) { Update(text.data(), text.size()); }
  std::string HexDigest();  // finalises; call once

 private:
  void* ctx_;
};

// SHA-256 of a file's raw bytes (not decompressed), as lower-case hex.
std::string Sha256File(const fs::path& path);

}  // namespace recforge
