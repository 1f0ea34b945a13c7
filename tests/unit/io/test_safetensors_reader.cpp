// safetensors reader: valid files read exactly; every malformed-input case gives an IoError that
// names the file and the tensor or field (issue "Model I/O": untrusted input).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "io/safetensors.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using test::build_safetensors;
using test::CraftTensor;
using test::expect_error;
using test::f32_bytes;
using test::u16_bytes;
using test::write_raw_safetensors;

class SafetensorsReader : public ::testing::Test {
 protected:
  test::TempDir dir_{"st"};
  std::filesystem::path file_ = dir_ / "w.safetensors";

  void expect_open_error(std::initializer_list<std::string> needles) {
    std::vector<std::string> all(needles);
    all.push_back(file_.string());
    try {
      SafetensorsFile::open(file_);
      ADD_FAILURE() << "open succeeded on a malformed file";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      if (std::getenv("CALDERA_TEST_PRINT_ERRORS") != nullptr) std::printf("    error: %s\n", msg.c_str());
      for (const auto& n : all) EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
    }
  }
  /// A header with one entry "t" given as raw JSON, and `data_bytes` zero bytes of data.
  void write_one(const std::string& entry_json, std::size_t data_bytes = 16) {
    write_raw_safetensors(file_, "{\"t\":" + entry_json + "}", test::Bytes(data_bytes, 0));
  }
};

TEST_F(SafetensorsReader, ReadsEveryFloatDtypeExactly) {
  // bf16 0x3f80 = 1, 0xc000 = -2, 0x3e20 = 0.15625; fp16 0x3c00 = 1, 0xc500 = -5, 0x0001 = 2^-24.
  build_safetensors(file_, {{"a.f32", "F32", {2, 3}, f32_bytes({1.5f, -2.25f, 0.f, 3.f, 1e-30f, -7.f})},
                            {"b.bf16", "BF16", {3}, u16_bytes({0x3f80, 0xc000, 0x3e20})},
                            {"c.f16", "F16", {1, 3}, u16_bytes({0x3c00, 0xc500, 0x0001})},
                            {"d.i32", "I32", {2}, f32_bytes({0.f, 0.f})}},
                    R"({"format":"pt","note":"x"})");
  const auto f = SafetensorsFile::open(file_);
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "x");

  const auto a = f.read_f32("a.f32");
  ASSERT_EQ(a.rows(), 2);
  ASSERT_EQ(a.cols(), 3);
  EXPECT_EQ(a(0, 1), -2.25f);
  EXPECT_EQ(a(1, 1), 1e-30f);
  EXPECT_EQ(a(1, 2), -7.f);
  const auto b = f.read_f32("b.bf16");
  ASSERT_EQ(b.rows(), 1);
  ASSERT_EQ(b.cols(), 3);
  EXPECT_EQ(b(0, 0), 1.f);
  EXPECT_EQ(b(0, 1), -2.f);
  EXPECT_EQ(b(0, 2), 0.15625f);
  const auto c = f.read_f32("c.f16");
  EXPECT_EQ(c(0, 0), 1.f);
  EXPECT_EQ(c(0, 1), -5.f);
  EXPECT_EQ(c(0, 2), std::ldexp(1.f, -24));

  const TensorInfo& info = f.info("b.bf16");
  EXPECT_EQ(info.dtype, DType::kBF16);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(info.size_bytes, 6);
  EXPECT_EQ(info.file, file_);
  // Zero-copy bytes: the span points at the tensor's bytes inside the mapping.
  const auto raw = f.bytes("b.bf16");
  ASSERT_EQ(raw.size(), 6u);
  EXPECT_EQ(static_cast<uint8_t>(raw[0]), 0x80);
  EXPECT_EQ(static_cast<uint8_t>(raw[1]), 0x3f);
  EXPECT_EQ(static_cast<int64_t>(raw.data() - f.header_bytes().data()), info.offset_bytes - 8);

  // Integer tensors have bytes but no fp32 view.
  expect_error<IoError>([&] { f.read_f32("d.i32"); }, {"d.i32", "I32", file_.string()});
  expect_error<IoError>([&] { f.info("nope"); }, {"nope", file_.string()});
}

TEST_F(SafetensorsReader, ReadIntoStridedView) {
  build_safetensors(file_, {{"m", "F32", {2, 2}, f32_bytes({1, 2, 3, 4})}});
  const auto f = SafetensorsFile::open(file_);
  std::vector<float> buf(2 * 5, -1.f);
  f.read_f32_into("m", MatrixView<float>(buf.data(), 2, 2, 5));
  EXPECT_EQ(buf[0], 1.f);
  EXPECT_EQ(buf[1], 2.f);
  EXPECT_EQ(buf[2], -1.f);  // outside the view: untouched
  EXPECT_EQ(buf[5], 3.f);
  EXPECT_EQ(buf[6], 4.f);
  EXPECT_THROW(f.read_f32_into("m", MatrixView<float>(buf.data(), 2, 3, 5)), Error);
}

TEST_F(SafetensorsReader, RejectsRankAboveTwoForMatrices) {
  build_safetensors(file_, {{"cube", "F32", {2, 1, 2}, f32_bytes({1, 2, 3, 4})}, {"s", "F32", {}, f32_bytes({9})}});
  const auto f = SafetensorsFile::open(file_);
  expect_error<IoError>([&] { f.read_f32("cube"); }, {"cube", "rank 3", file_.string()});
  EXPECT_EQ(f.read_f32("s")(0, 0), 9.f);  // a scalar is 1x1
  EXPECT_EQ(f.bytes("cube").size(), 16u);
}

TEST_F(SafetensorsReader, EmptyHeaderIsValid) {
  write_raw_safetensors(file_, "{}", {});
  EXPECT_TRUE(SafetensorsFile::open(file_).tensors().empty());
}

TEST_F(SafetensorsReader, TruncatedBeforeHeaderLength) {
  test::write_text(file_, "abc");
  expect_open_error({"truncated", "3 bytes"});
}

TEST_F(SafetensorsReader, HeaderLengthPastEndOfFile) {
  write_raw_safetensors(file_, "{}", {}, 4096);
  expect_open_error({"header length 4096", "past the end"});
}

TEST_F(SafetensorsReader, HeaderLengthHuge) {
  write_raw_safetensors(file_, "{}", {}, int64_t{1} << 40);
  expect_open_error({"header length 1099511627776", "limit"});
}

TEST_F(SafetensorsReader, MalformedJson) {
  write_raw_safetensors(file_, "{\"t\": {\"dtype\": \"F32\",", {});
  expect_open_error({"malformed JSON"});
}

TEST_F(SafetensorsReader, JsonThatIsNotAnObject) {
  write_raw_safetensors(file_, "[1, 2, 3]", {});
  expect_open_error({"JSON object"});
}

TEST_F(SafetensorsReader, DeeplyNestedJsonIsRejected) {
  write_raw_safetensors(file_, std::string(5000, '[') + std::string(5000, ']'), {});
  expect_open_error({"nested deeper"});
}

TEST_F(SafetensorsReader, DuplicateTensorName) {
  write_raw_safetensors(file_,
                        R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        test::Bytes(8, 0));
  expect_open_error({"duplicate key", "\"t\""});
}

TEST_F(SafetensorsReader, UnknownDtype) {
  write_one(R"({"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]})");
  expect_open_error({"tensor 't'", "unsupported dtype \"F8_E4M3\""});
}

TEST_F(SafetensorsReader, NegativeShape) {
  write_one(R"({"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]})");
  expect_open_error({"tensor 't'", "-2", "non-negative"});
}

TEST_F(SafetensorsReader, NonIntegerShape) {
  write_one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,10]})");
  expect_open_error({"tensor 't'", "2.5"});
}

TEST_F(SafetensorsReader, ShapeProductOverflow) {
  write_one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]})");
  expect_open_error({"tensor 't'", "64 bits"});
  write_one(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,16]})");
  expect_open_error({"tensor 't'", "2^63 bytes"});
}

TEST_F(SafetensorsReader, OffsetsOutsideDataSection) {
  write_one(R"({"dtype":"F32","shape":[8],"data_offsets":[0,32]})", 16);
  expect_open_error({"tensor 't'", "[0,32]", "data section of 16 bytes"});
  write_one(R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]})", 16);
  expect_open_error({"tensor 't'", "data_offsets"});
}

TEST_F(SafetensorsReader, EndBeforeBegin) {
  write_one(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})");
  expect_open_error({"tensor 't'", "end before begin"});
}

TEST_F(SafetensorsReader, OverlappingTensors) {
  write_raw_safetensors(file_,
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        test::Bytes(12, 0));
  expect_open_error({"tensor 'b'", "overlaps tensor 'a'"});
}

TEST_F(SafetensorsReader, SizeMismatch) {
  write_one(R"({"dtype":"BF16","shape":[3,2],"data_offsets":[0,16]})");
  expect_open_error({"tensor 't'", "16 bytes", "needs 12 bytes"});
}

TEST_F(SafetensorsReader, MissingOrUnexpectedFields) {
  write_one(R"({"dtype":"F32","shape":[1]})");
  expect_open_error({"tensor 't'", "missing field \"data_offsets\""});
  write_one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1})");
  expect_open_error({"tensor 't'", "unexpected field \"extra\""});
  write_one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})");
  expect_open_error({"tensor 't'", "[begin, end]"});
  write_one(R"("F32")");
  expect_open_error({"tensor 't'", "expected an object"});
}

TEST_F(SafetensorsReader, BadMetadata) {
  write_raw_safetensors(file_, R"({"__metadata__":{"k":3}})", {});
  expect_open_error({"__metadata__", "\"k\"", "string"});
}

TEST_F(SafetensorsReader, ZeroSizedTensorsAreAccepted) {
  build_safetensors(file_, {{"e", "F32", {0, 4}, {}}, {"x", "F32", {1}, f32_bytes({2})}});
  const auto f = SafetensorsFile::open(file_);
  EXPECT_EQ(f.read_f32("e").rows(), 0);
  EXPECT_EQ(f.read_f32("x")(0, 0), 2.f);
}

struct NonFiniteCase {
  const char* dtype;
  test::Bytes data;
  const char* label;
  friend void PrintTo(const NonFiniteCase& c, std::ostream* os) { *os << c.label; }
};

class SafetensorsNonFinite : public SafetensorsReader, public ::testing::WithParamInterface<NonFiniteCase> {};

TEST_P(SafetensorsNonFinite, IsAnIoErrorNamingFileAndTensor) {
  const auto& c = GetParam();
  build_safetensors(file_, {{"layers.0.w", c.dtype, {2, 2}, c.data}});
  const auto f = SafetensorsFile::open(file_);  // opening does not read the data
  expect_error<IoError>([&] { f.read_f32("layers.0.w"); },
                        {file_.string(), "layers.0.w", "non-finite", "row 1, column 0"});
  HostMatrix<float> out(2, 2);
  expect_error<IoError>([&] { f.read_f32_into("layers.0.w", out.view()); }, {file_.string(), "layers.0.w"});
}

INSTANTIATE_TEST_SUITE_P(
    AllFloatDtypes, SafetensorsNonFinite,
    ::testing::Values(NonFiniteCase{"F32", f32_bytes({1, 2, std::numeric_limits<float>::quiet_NaN(), 4}), "f32_nan"},
                      NonFiniteCase{"F32", f32_bytes({1, 2, -std::numeric_limits<float>::infinity(), 4}), "f32_inf"},
                      NonFiniteCase{"BF16", u16_bytes({0x3f80, 0x3f80, 0x7fc0, 0x3f80}), "bf16_nan"},
                      NonFiniteCase{"BF16", u16_bytes({0x3f80, 0x3f80, 0xff80, 0x3f80}), "bf16_inf"},
                      NonFiniteCase{"F16", u16_bytes({0x3c00, 0x3c00, 0x7e00, 0x3c00}), "f16_nan"},
                      NonFiniteCase{"F16", u16_bytes({0x3c00, 0x3c00, 0x7c00, 0x3c00}), "f16_inf"},
                      NonFiniteCase{"F64", [] {
                                      test::Bytes b(32, 0);
                                      const double v[4] = {1, 2, 1e300, 4};  // overflows fp32
                                      std::memcpy(b.data(), v, 32);
                                      return b;
                                    }(),
                                    "f64_overflow"}),
    [](const auto& param_info) { return std::string(param_info.param.label); });

/// Resident file-backed pages of this process, in KiB (/proc/self/status RssFile), or -1.
int64_t rss_file_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8));
  return -1;
}

TEST(SafetensorsMemory, ReadingTensorByTensorKeepsMappedPagesBounded) {
  if (rss_file_kib() < 0) GTEST_SKIP() << "/proc/self/status has no RssFile on this system";
  test::TempDir dir("mem");
  // Four 16 MiB BF16 tensors (64 MiB file): reading them one after the other must not leave their
  // pages mapped (read_f32 releases them), as reading a 70B model layer by layer relies on.
  constexpr int64_t kRows = 2048, kCols = 4096;
  std::vector<CraftTensor> tensors;
  for (int k = 0; k < 4; ++k) {
    test::Bytes data(static_cast<std::size_t>(kRows * kCols * 2));
    for (std::size_t i = 0; i < data.size(); i += 2) {
      data[i] = (k & 1) ? 0x00 : 0x80;      // bf16 0x4000 = 2.0, 0x3f80 = 1.0
      data[i + 1] = (k & 1) ? 0x40 : 0x3f;
    }
    tensors.push_back({"t" + std::to_string(k), "BF16", {kRows, kCols}, std::move(data)});
  }
  build_safetensors(dir / "big.safetensors", tensors);
  tensors.clear();
  const auto f = SafetensorsFile::open(dir / "big.safetensors");
  const int64_t base = rss_file_kib();
  int64_t peak = 0;
  for (int k = 0; k < 4; ++k) {
    const auto m = f.read_f32("t" + std::to_string(k));
    EXPECT_EQ(m(kRows - 1, kCols - 1), (k & 1) ? 2.f : 1.f);
    peak = std::max(peak, rss_file_kib() - base);
  }
  EXPECT_LT(peak, 4 * 1024) << "KiB of the mapping still resident after reading 64 MiB of tensors";
}

TEST(SafetensorsRealFile, TruncatedShardNamesTheFirstTensorPastTheEnd) {
  test::TempDir dir("trunc");
  const auto src = test::tiny_model_dir() / "model-00002-of-00002.safetensors";
  const auto dst = dir / "cut.safetensors";
  test::copy_prefix(src, dst, std::filesystem::file_size(src) / 2);
  try {
    SafetensorsFile::open(dst);
    ADD_FAILURE() << "a truncated shard was accepted";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dst.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("tensor '"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace caldera::io
