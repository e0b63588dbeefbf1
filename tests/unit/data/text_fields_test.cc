#include "recforge/data/text_fields.h"

#include <gtest/gtest.h>

#include "recforge/core/error.h"
#include "recforge/data/id_interner.h"

namespace recforge::data {
namespace {

TEST(SplitSimple, CountsFieldsBeyondTheLimit) {
  std::string_view fields[3];
  EXPECT_EQ(SplitSimple("a\tb\t\tc", '\t', fields, 3), 4u);
  EXPECT_EQ(fields[2], "");
  EXPECT_EQ(SplitSimple("", ',', fields, 3), 1u);
  EXPECT_EQ(SplitOn("1::2::3", "::", fields, 3), 3u);
  EXPECT_EQ(fields[2], "3");
}

TEST(SplitQuoted, Rfc4180) {
  std::vector<std::string> f;
  ASSERT_TRUE(SplitQuoted(R"(1,"Hello, ""World""",x,)", ',', f));
  EXPECT_EQ(f, (std::vector<std::string>{"1", "Hello, \"World\"", "x", ""}));
  EXPECT_FALSE(SplitQuoted(R"(1,"open)", ',', f));
  EXPECT_FALSE(SplitQuoted(R"(1,"a"b,2)", ',', f));
}

TEST(ParseNumbers, StrictWholeField) {
  EXPECT_EQ(ParseDouble(" 3.5 "), 3.5);
  EXPECT_EQ(ParseDouble("+4"), 4.0);
  EXPECT_FALSE(ParseDouble("4x"));
  EXPECT_FALSE(ParseDouble(""));
  EXPECT_FALSE(ParseDouble("nan"));
  EXPECT_EQ(ParseInt("-12"), -12);
  EXPECT_FALSE(ParseInt("1.5"));
  std::uint64_t v = 0;
  EXPECT_TRUE(IsCanonicalUnsigned("1682", &v));
  EXPECT_EQ(v, 1682u);
  EXPECT_FALSE(IsCanonicalUnsigned("007", &v));
  EXPECT_TRUE(IsCanonicalUnsigned("0", &v));
  EXPECT_FALSE(IsCanonicalUnsigned("-1", &v));
  EXPECT_FALSE(IsCanonicalUnsigned("1234567890123456789", &v));  // 19 digits: text path
}

TEST(ParseTime, FormatsAndAutoDetection) {
  EXPECT_EQ(ParseTime("881250949", TimeFormat::kUnixSeconds), 881250949);
  EXPECT_EQ(ParseTime("1588687728923", TimeFormat::kUnixMillis), 1588687728);
  EXPECT_EQ(ParseTime("1588687728923", TimeFormat::kAuto), 1588687728);
  EXPECT_EQ(ParseTime("881250949", TimeFormat::kAuto), 881250949);
  EXPECT_EQ(ParseTime("1970-01-02", TimeFormat::kDate), 86400);
  EXPECT_EQ(ParseTime("2005-09-06", TimeFormat::kAuto), DaysFromCivil(2005, 9, 6) * 86400);
  EXPECT_EQ(ParseTime("2000-02-29T12:00:00Z", TimeFormat::kIso8601), DaysFromCivil(2000, 2, 29) * 86400 + 43200);
  EXPECT_EQ(ParseTime("2000-01-01 01:00:00+01:00", TimeFormat::kIso8601), DaysFromCivil(2000, 1, 1) * 86400);
  EXPECT_EQ(ParseTime("2000-01-01T00:00:00.250Z", TimeFormat::kIso8601), DaysFromCivil(2000, 1, 1) * 86400);
  EXPECT_FALSE(ParseTime("2001-02-29", TimeFormat::kDate));  // not a leap year
  EXPECT_FALSE(ParseTime("2005-13-01", TimeFormat::kDate));
  EXPECT_FALSE(ParseTime("2005-01-01T10:00", TimeFormat::kDate));
  EXPECT_FALSE(ParseTime("yesterday", TimeFormat::kAuto));
  EXPECT_EQ(FormatIsoTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatIsoTime(893286638), "1998-04-22T23:10:38Z");
  EXPECT_THROW(ParseTimeFormat("epoch"), InvalidArgument);
}

TEST(IdInterner, MergeSortsNumbersThenTextAndRemaps) {
  IdInterner a, b;
  EXPECT_EQ(a.Intern("10"), 0u);
  EXPECT_EQ(a.Intern("x"), 1u);
  EXPECT_EQ(a.Intern("10"), 0u);
  EXPECT_EQ(b.Intern("2"), 0u);
  EXPECT_EQ(b.Intern("010"), 1u);  // not canonical: text
  EXPECT_EQ(b.Intern("x"), 2u);
  MergedIds merged = MergeInterners({&a, &b});
  EXPECT_EQ(merged.ids.ids(), (std::vector<std::string>{"2", "10", "010", "x"}));
  EXPECT_EQ(merged.remaps[0], (std::vector<std::uint32_t>{1, 3}));
  EXPECT_EQ(merged.remaps[1], (std::vector<std::uint32_t>{0, 2, 3}));
}

TEST(IdInterner, ManyIdsSurviveRehashing) {
  IdInterner interner;
  for (int k = 0; k < 100000; ++k) {
    ASSERT_EQ(interner.Intern("id" + std::to_string(k)), static_cast<std::uint32_t>(2 * k));
    ASSERT_EQ(interner.Intern(std::to_string(k)), static_cast<std::uint32_t>(2 * k + 1));
  }
  EXPECT_EQ(interner.Intern("id77"), 154u);
  EXPECT_EQ(interner.size(), 200000u);
}

}  // namespace
}  // namespace recforge::data
