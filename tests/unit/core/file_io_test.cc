#include "recforge/core/file_io.h"

#include <gtest/gtest.h>

#include "recforge/core/error.h"
#include "testlib/testlib.h"

namespace recforge {
namespace {

using recforge::testing::TempDir;

std::vector<std::pair<std::string, std::uint64_t>> ReadAllLines(const fs::path& path, std::size_t block) {
  LineBlockReader reader(path, block);
  LineBlock b;
  std::vector<std::pair<std::string, std::uint64_t>> lines;
  while (reader.Next(b)) {
    ForEachLine(b.text, b.first_line, [&](std::string_view line, std::uint64_t number) {
      lines.emplace_back(std::string(line), number);
    });
  }
  return lines;
}

TEST(LineBlockReader, BlocksHoldWholeLinesWithCorrectNumbers) {
  TempDir dir;
  std::string content;
  for (int k = 1; k <= 50000; ++k) content += "line" + std::to_string(k) + (k % 3 == 0 ? "\r\n" : "\n");
  content += "last-without-newline";
  auto path = dir.Write("f.txt", content);
  auto lines = ReadAllLines(path, 1 << 16);  // many blocks
  ASSERT_EQ(lines.size(), 50001u);
  for (int k = 1; k <= 50000; ++k) {
    ASSERT_EQ(lines[k - 1].first, "line" + std::to_string(k));  // CR stripped
    ASSERT_EQ(lines[k - 1].second, static_cast<std::uint64_t>(k));
  }
  EXPECT_EQ(lines.back().first, "last-without-newline");
  EXPECT_EQ(lines.back().second, 50001u);
}

TEST(LineBlockReader, PreviousBlockStaysValidWhileTheNextIsRead) {
  TempDir dir;
  std::string content;
  for (int k = 1; k <= 20000; ++k) content += "row" + std::to_string(k) + "\n";
  auto path = dir.Write("f.txt", content);
  LineBlockReader reader(path, 1 << 16);
  LineBlock previous, current;
  ASSERT_TRUE(reader.Next(previous));
  std::string previous_copy(previous.text);
  std::string joined;
  while (reader.Next(current)) {
    EXPECT_EQ(previous.text, previous_copy);  // untouched by the read of `current`
    joined += previous_copy;
    previous = current;
    previous_copy.assign(current.text);
  }
  joined += previous_copy;
  EXPECT_EQ(joined, content);
}

TEST(CountNewlines, MatchesACharacterLoopAcrossLengthsAndFlushes) {
  // Lengths around the 16-byte vector and the 255-round flush of the byte counters.
  for (std::size_t length : {0u, 1u, 15u, 16u, 17u, 4079u, 4080u, 4096u, 100000u}) {
    std::string text(length, 'x');
    std::uint64_t expected = 0;
    for (std::size_t k = 0; k < length; ++k) {
      if (k % 3 == 0 || k % 7 == 0 || length == 100000u) {
        text[k] = '\n';
        ++expected;
      }
    }
    EXPECT_EQ(CountNewlines(text), expected) << length;
  }
}

TEST(LineBlockReader, LineLongerThanTheBlockGrowsTheBuffer) {
  TempDir dir;
  std::string long_line(300000, 'x');
  auto path = dir.Write("f.txt", "a\n" + long_line + "\nb\n");
  auto lines = ReadAllLines(path, 1 << 16);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].first.size(), 300000u);
  EXPECT_EQ(lines[2].second, 3u);
}

TEST(ByteSource, GzipIsDetectedByMagicAndHashIsOfRawBytes) {
  TempDir dir;
  auto gz = dir / "data.bin";  // no .gz suffix on purpose
  recforge::testing::WriteGzip(gz, "hello\nworld\n");
  EXPECT_EQ(ReadFileToString(gz), "hello\nworld\n");
  ByteSource source(gz);
  source.EnableHashing();
  char buffer[64];
  while (source.Read(buffer, sizeof buffer) > 0) {
  }
  EXPECT_TRUE(source.compressed());
  EXPECT_EQ(source.RawSha256Hex(), Sha256File(gz));
}

TEST(ByteSource, MissingFileIsAnIoErrorNamingThePath) {
  try {
    ByteSource source("/nonexistent/recforge/file.csv");
    FAIL();
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/recforge/file.csv"), std::string::npos);
  }
}

TEST(Sha256, KnownVector) {
  Sha256 hasher;
  hasher.Update("abc");
  EXPECT_EQ(hasher.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Columns, RoundTripAndSizeMismatch) {
  TempDir dir;
  std::vector<std::int64_t> values = {1, -2, 1LL << 40};
  WriteColumn<std::int64_t>(dir / "t.i64", values);
  EXPECT_EQ(ReadColumn<std::int64_t>(dir / "t.i64", 3), values);
  EXPECT_THROW(ReadColumn<std::int64_t>(dir / "t.i64", 4), FormatError);
}

TEST(Text, Latin1AndUtf8) {
  EXPECT_EQ(Latin1ToUtf8("Caf\xe9"), "Caf\xc3\xa9");
  EXPECT_TRUE(IsValidUtf8("Caf\xc3\xa9"));
  EXPECT_FALSE(IsValidUtf8("Caf\xe9"));
  EXPECT_EQ(ToUtf8("Caf\xc3\xa9"), "Caf\xc3\xa9");  // valid UTF-8 is left alone
  EXPECT_EQ(ToUtf8("Caf\xe9"), "Caf\xc3\xa9");
}

TEST(SplitAtLines, PiecesAreWholeLinesCoveringEverything) {
  std::string text;
  for (int k = 0; k < 1000; ++k) text += std::to_string(k) + "\n";
  for (int parts : {1, 2, 3, 7}) {
    auto pieces = SplitAtLines(text, parts);
    std::string joined;
    for (auto piece : pieces) {
      EXPECT_EQ(piece.back(), '\n');
      joined += piece;
    }
    EXPECT_EQ(joined, text);
    EXPECT_LE(pieces.size(), static_cast<std::size_t>(parts));
  }
}

}  // namespace
}  // namespace recforge
