#include "recforge/core/file_io.h"

#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "recforge/core/error.h"
#include "recforge/core/memory.h"

namespace recforge {

static_assert(std::endian::native == std::endian::little,
              "the dataset format is little-endian; a big-endian port needs byte swapping");

namespace {
constexpr std::size_t kRawChunk = 1u << 20;

std::string ErrnoText() { return std::strerror(errno); }
}  // namespace

struct ByteSource::ZState {
  z_stream stream{};
  std::vector<unsigned char> input = std::vector<unsigned char>(kRawChunk);
  bool initialised = false;
};

ByteSource::ByteSource(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw IoError(fmt::format("{}: is a directory, expected a file", path.string()));
  }
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    throw IoError(fmt::format("{}: cannot open: {}", path.string(), ErrnoText()));
  }
  file_size_ = fs::file_size(path, ec);
  if (ec) file_size_ = 0;
  unsigned char magic[2] = {0, 0};
  std::size_t got = std::fread(magic, 1, 2, file_);
  std::rewind(file_);
  compressed_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (compressed_) {
    z_ = std::make_unique<ZState>();
    // 15 + 32: zlib or gzip header, detected automatically.
    if (inflateInit2(&z_->stream, 15 + 32) != Z_OK) {
      throw IoError(fmt::format("{}: cannot initialise gzip decoder", path.string()));
    }
    z_->initialised = true;
  }
}

ByteSource::~ByteSource() {
  if (z_ && z_->initialised) inflateEnd(&z_->stream);
  if (file_ != nullptr) std::fclose(file_);
}

std::size_t ByteSource::ReadRaw(char* buffer, std::size_t capacity) {
  std::size_t got = std::fread(buffer, 1, capacity, file_);
  if (got < capacity && std::ferror(file_)) {
    throw IoError(fmt::format("{}: read error: {}", path_.string(), ErrnoText()));
  }
  raw_bytes_read_ += got;
  if (hasher_ && got > 0) hasher_->Update(buffer, got);
  return got;
}

void ByteSource::EnableHashing() { hasher_ = std::make_unique<Sha256>(); }

std::string ByteSource::RawSha256Hex() {
  if (!hasher_) return {};
  // Hash whatever was not consumed (e.g. bytes after a truncated gzip member).
  std::vector<char> rest(kRawChunk);
  while (true) {
    std::size_t got = std::fread(rest.data(), 1, rest.size(), file_);
    if (got == 0) break;
    hasher_->Update(rest.data(), got);
  }
  std::string hex = hasher_->HexDigest();
  hasher_.reset();
  return hex;
}

std::size_t ByteSource::Read(char* buffer, std::size_t capacity) {
  if (!compressed_) return ReadRaw(buffer, capacity);
  return Inflate(buffer, capacity);
}

std::size_t ByteSource::Inflate(char* buffer, std::size_t capacity) {
  if (stream_done_) return 0;
  z_stream& zs = z_->stream;
  zs.next_out = reinterpret_cast<Bytef*>(buffer);
  zs.avail_out = static_cast<uInt>(std::min<std::size_t>(capacity, 1u << 30));
  while (zs.avail_out > 0) {
    if (zs.avail_in == 0) {
      std::size_t got = ReadRaw(reinterpret_cast<char*>(z_->input.data()), z_->input.size());
      if (got == 0) {
        // Input ended inside a gzip member: keep what was decoded, flag the truncation.
        truncated_ = true;
        stream_done_ = true;
        break;
      }
      zs.next_in = z_->input.data();
      zs.avail_in = static_cast<uInt>(got);
    }
    int rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files are valid gzip).
      if (zs.avail_in == 0) {
        std::size_t got = ReadRaw(reinterpret_cast<char*>(z_->input.data()), z_->input.size());
        zs.next_in = z_->input.data();
        zs.avail_in = static_cast<uInt>(got);
      }
      if (zs.avail_in == 0) {
        stream_done_ = true;
        break;
      }
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) continue;  // needs more input
    if (rc != Z_OK) {
      // Corrupt data: treat like truncation (keep the prefix, report).
      truncated_ = true;
      stream_done_ = true;
      break;
    }
  }
  return capacity - zs.avail_out;
}

LineBlockReader::LineBlockReader(const fs::path& path, std::size_t block_bytes) : source_(path) {
  buffers_[0].resize(std::max<std::size_t>(block_bytes, 1u << 16) + kPadding);
}

bool LineBlockReader::Next(LineBlock& block) {
  // The new block goes to the other buffer, starting with the incomplete tail of the
  // previous read, so the block handed out last stays valid while this one is read.
  if (block_end_ > 0) {
    std::vector<char>& previous = buffers_[current_];
    std::vector<char>& next = buffers_[1 - current_];
    if (next.size() < previous.size()) next.resize(previous.size());
    carry_ = data_end_ - block_end_;
    std::memcpy(next.data(), previous.data() + block_end_, carry_);
    current_ = 1 - current_;
    data_end_ = carry_;
    block_end_ = 0;
  }
  std::vector<char>& buffer = buffers_[current_];
  while (true) {
    const std::size_t usable = buffer.size() - kPadding;
    if (!eof_ && data_end_ < usable) {
      std::size_t got = source_.Read(buffer.data() + data_end_, usable - data_end_);
      if (got == 0) eof_ = true;
      data_end_ += got;
    }
    if (data_end_ == 0) return false;
    std::string_view data(buffer.data(), data_end_);
    std::size_t last_newline = data.rfind('\n');
    if (eof_ && source_.truncated()) {
      // The bytes after the last newline are a line cut off by the truncation: a
      // record parsed from them could be silently wrong, so it is not handed out.
      std::size_t complete = last_newline == std::string_view::npos ? 0 : last_newline + 1;
      if (complete < data_end_) truncated_tail_ = true;
      data_end_ = complete;
      block_end_ = complete;
      if (complete == 0) return false;
    } else if (eof_) {
      block_end_ = data_end_;  // the final line may lack a newline
    } else if (last_newline == std::string_view::npos) {
      // One line longer than the buffer: grow and keep reading.
      if (data_end_ == usable) buffer.resize(usable * 2 + kPadding);
      continue;
    } else {
      block_end_ = last_newline + 1;
    }
    block.text = std::string_view(buffer.data(), block_end_);
    block.first_line = next_line_;
    next_line_ += CountNewlines(block.text);
    if (eof_ && !block.text.empty() && block.text.back() != '\n') ++next_line_;
    return true;
  }
}

std::uint64_t CountNewlines(std::string_view text) {
  // SSE2 (the x86-64 baseline): byte compares summed in byte lanes, flushed to 64-bit
  // lanes by psadbw before a lane can overflow. memchr per line costs ~25 ns per line
  // on short records; this is one pass at ~16 bytes per cycle.
  const char* p = text.data();
  const char* end = p + text.size();
  std::uint64_t count = 0;
#if defined(__SSE2__)
  const __m128i newline = _mm_set1_epi8('\n');
  const __m128i zero = _mm_setzero_si128();
  while (end - p >= 16) {
    __m128i bytes = zero;
    const std::size_t rounds = std::min<std::size_t>(255, static_cast<std::size_t>(end - p) / 16);
    for (std::size_t r = 0; r < rounds; ++r, p += 16) {
      __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      bytes = _mm_sub_epi8(bytes, _mm_cmpeq_epi8(chunk, newline));
    }
    __m128i sums = _mm_sad_epu8(bytes, zero);
    count += static_cast<std::uint64_t>(_mm_cvtsi128_si64(sums)) +
             static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
  }
#endif
  for (; p < end; ++p) count += *p == '\n' ? 1 : 0;
  return count;
}

std::vector<std::string_view> SplitAtLines(std::string_view text, int parts) {
  std::vector<std::string_view> pieces;
  if (parts < 1) parts = 1;
  std::size_t start = 0;
  for (int part = 1; part <= parts && start < text.size(); ++part) {
    std::size_t end = text.size();
    if (part < parts) {
      std::size_t target = start + (text.size() - start) / static_cast<std::size_t>(parts - part + 1);
      std::size_t newline = text.find('\n', std::max(target, start));
      end = newline == std::string_view::npos ? text.size() : newline + 1;
    }
    pieces.push_back(text.substr(start, end - start));
    start = end;
  }
  return pieces;
}

std::string ReadFileToString(const fs::path& path) {
  ByteSource source(path);
  std::string content;
  std::vector<char> chunk(1u << 20);
  while (true) {
    std::size_t got = source.Read(chunk.data(), chunk.size());
    if (got == 0) break;
    content.append(chunk.data(), got);
  }
  if (source.truncated()) {
    throw IoError(fmt::format("{}: gzip stream is truncated or corrupt", path.string()));
  }
  return content;
}

void WriteFileAtomic(const fs::path& path, std::string_view content) {
  fs::path tmp = path;
  tmp += fmt::format(".tmp{}", ::getpid());
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    throw IoError(fmt::format("{}: cannot create: {}", tmp.string(), ErrnoText()));
  }
  bool ok = std::fwrite(content.data(), 1, content.size(), file) == content.size();
  ok = (std::fclose(file) == 0) && ok;
  if (!ok) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw IoError(fmt::format("{}: write failed: {}", path.string(), ErrnoText()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot rename into place: {}", path.string(), ec.message()));
}

void WriteColumnBytes(const fs::path& path, const void* data, std::size_t bytes) {
  WriteFileAtomic(path, std::string_view(static_cast<const char*>(data), bytes));
}

std::vector<char> ReadColumnBytes(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw IoError(fmt::format("{}: cannot open: {}", path.string(), ErrnoText()));
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  std::vector<char> bytes(ec ? 0 : size);
  std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), file);
  std::fclose(file);
  if (got != bytes.size()) throw IoError(fmt::format("{}: short read", path.string()));
  return bytes;
}

template <typename T>
std::vector<T> ReadColumn(const fs::path& path, std::uint64_t expected_count) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw IoError(fmt::format("{}: cannot open: {}", path.string(), ErrnoText()));
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec || size != expected_count * sizeof(T)) {
    std::fclose(file);
    throw FormatError(fmt::format("{}: expected {} values of {} bytes ({} bytes), file has {} bytes",
                                  path.string(), expected_count, sizeof(T), expected_count * sizeof(T),
                                  ec ? 0 : size));
  }
  std::vector<T> values;
  ReserveHugePages(values, expected_count);
  values.resize(expected_count);
  std::size_t got = expected_count == 0 ? 0 : std::fread(values.data(), sizeof(T), values.size(), file);
  std::fclose(file);
  if (got != values.size()) throw IoError(fmt::format("{}: short read", path.string()));
  return values;
}

template std::vector<std::uint32_t> ReadColumn<std::uint32_t>(const fs::path&, std::uint64_t);
template std::vector<std::int64_t> ReadColumn<std::int64_t>(const fs::path&, std::uint64_t);
template std::vector<float> ReadColumn<float>(const fs::path&, std::uint64_t);
template std::vector<double> ReadColumn<double>(const fs::path&, std::uint64_t);
template std::vector<std::uint64_t> ReadColumn<std::uint64_t>(const fs::path&, std::uint64_t);

std::string Latin1ToUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (unsigned char c : text) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    int extra;
    if (c < 0x80) { ++p; continue; }
    if ((c & 0xE0) == 0xC0 && c >= 0xC2) extra = 1;
    else if ((c & 0xF0) == 0xE0) extra = 2;
    else if ((c & 0xF8) == 0xF0 && c <= 0xF4) extra = 3;
    else return false;
    if (end - p <= extra) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
    }
    p += extra + 1;
  }
  return true;
}

std::string ToUtf8(std::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  return Latin1ToUtf8(text);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::Update(const void* data, std::size_t bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, bytes);
}
std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), digest, &length);
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string Sha256File(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw IoError(fmt::format("{}: cannot open: {}", path.string(), ErrnoText()));
  Sha256 hasher;
  std::vector<char> chunk(1u << 20);
  while (true) {
    std::size_t got = std::fread(chunk.data(), 1, chunk.size(), file);
    if (got == 0) break;
    hasher.Update(chunk.data(), got);
  }
  std::fclose(file);
  return hasher.HexDigest();
}

}  // namespace recforge
