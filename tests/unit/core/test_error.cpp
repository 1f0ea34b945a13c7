#include <gtest/gtest.h>

#include "core/error.h"
#include "core/log.h"

namespace caldera {
namespace {

TEST(Error, CheckThrowsWithLocationAndMessage) {
  try {
    CALDERA_CHECK(1 + 1 == 3, "sum was ", 2);
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("test_error.cpp"), std::string::npos) << what;
    EXPECT_NE(what.find("1 + 1 == 3"), std::string::npos) << what;
    EXPECT_NE(what.find("sum was 2"), std::string::npos) << what;
  }
}

TEST(Error, CheckAsThrowsTypedExceptionWithPlainMessage) {
  EXPECT_THROW(CALDERA_CHECK_AS(IoError, false, "file x"), IoError);
  try {
    CALDERA_CHECK_AS(ConfigError, false, "--rank must be a multiple of 16, got ", 20);
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--rank must be a multiple of 16, got 20");
  }
}

TEST(Error, PassingCheckDoesNotThrow) { EXPECT_NO_THROW(CALDERA_CHECK(true, "never")); }

TEST(Log, SinksSeeMessagesAtOrAboveLevel) {
  std::vector<std::string> seen;
  const int id = add_log_sink([&](LogLevel, std::string_view m) { seen.emplace_back(m); });
  set_log_level(LogLevel::kWarn);
  log_info("hidden");
  log_warn("shown ", 1);
  set_log_level(LogLevel::kInfo);
  remove_log_sink(id);
  log_warn("after removal");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "shown 1");
}

TEST(Log, ParseLevel) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_THROW(parse_log_level("verbose"), ConfigError);
}

}  // namespace
}  // namespace caldera
