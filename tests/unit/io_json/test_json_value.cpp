#include <gtest/gtest.h>

#include "core/error.h"
#include "io/json_value.h"

namespace caldera::io {
namespace {

TEST(JsonValue, BuildDumpParseRoundTripKeepsOrder) {
  JsonValue j = JsonValue::object();
  j.set("zeta", 1);
  j.set("alpha", 2.5);
  j.set("name", "caldera");
  j.set("list", JsonValue::array()).push_back(true);
  j.set("zeta", 3);  // replaces in place
  EXPECT_EQ(j.dump(), R"({"zeta":3,"alpha":2.5,"name":"caldera","list":[true]})");
  const JsonValue back = JsonValue::parse(j.dump());
  EXPECT_EQ(back, j);
  EXPECT_EQ(back.at("zeta").as_int(), 3);
  EXPECT_DOUBLE_EQ(back.at("alpha").as_double(), 2.5);
  EXPECT_EQ(back.find("missing"), nullptr);
}

TEST(JsonValue, TypeErrorsAndMalformedInput) {
  const JsonValue j = JsonValue::parse(R"({"a": "text", "b": 1.5})");
  EXPECT_THROW(j.at("a").as_int(), Error);
  EXPECT_THROW(j.at("b").as_int(), Error);
  EXPECT_THROW(j.at("nope"), Error);
  EXPECT_THROW(JsonValue::parse("{\"a\": ", "cfg.json"), IoError);
  try {
    JsonValue::parse("[1,", "cfg.json");
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos);
  }
  EXPECT_THROW(JsonValue::read_file("/nonexistent.json"), IoError);
}

}  // namespace
}  // namespace caldera::io
