// Token files: the bundled calibration/evaluation files, and malformed ones.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/sha256.h"
#include "io/token_file.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

using test::expect_error;

TEST(TokenFile, BundledCalibrationAndEval) {
  const auto calib = TokenFile::open(test::data_dir() / "calib.u32", 512, 4096);
  EXPECT_EQ(calib.num_sequences(), 256);  // tests/data/README.md: 256 × 512
  EXPECT_EQ(calib.seq_len(), 512);
  // Facts from an independent reader (numpy / hashlib) of the same file.
  EXPECT_EQ(calib.sha256(), "33d87cdf4166dc5343972f92eeda14701459b91ea92b9fb2f4ff8aa38d11d903");
  EXPECT_EQ(calib.sequence(0)[0], 493u);
  EXPECT_EQ(calib.sequence(0)[1], 729u);
  EXPECT_EQ(calib.sequence(1)[0], 60u);
  const auto eval = TokenFile::open(test::data_dir() / "eval.u32", 512, 4096, 10);
  EXPECT_EQ(eval.num_sequences(), 10);
  EXPECT_EQ(eval.file_sequences(), 64);
  EXPECT_EQ(eval.sha256(), sha256_file(test::data_dir() / "eval.u32"));
  EXPECT_EQ(eval.sequence(0)[0], 4u);
  EXPECT_EQ(eval.sequence(0)[1], 2519u);

  const auto s = calib.slice(1, 3);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 512);
  EXPECT_EQ(s(0, 0), 60u);
  EXPECT_EQ(calib.slice(5, 5).rows, 0);
  EXPECT_THROW(calib.slice(3, 2), Error);
  EXPECT_THROW(calib.slice(0, 257), Error);
  EXPECT_THROW(calib.sequence(256), Error);
}

TEST(TokenFile, SizeNotAMultipleOfTheSequence) {
  const auto path = test::data_dir() / "calib.u32";
  expect_error<IoError>([&] { TokenFile::open(path, 500, 4096); }, {path.string(), "524288", "seq_len 500"});
  test::TempDir dir("tok");
  test::write_text(dir / "odd.u32", std::string(10, '\0'));
  expect_error<IoError>([&] { TokenFile::open(dir / "odd.u32", 1, 4096); }, {"odd.u32", "size 10"});
  test::write_text(dir / "empty.u32", "");
  expect_error<IoError>([&] { TokenFile::open(dir / "empty.u32", 4, 4096); }, {"empty.u32", "size 0"});
  expect_error<IoError>([&] { TokenFile::open(dir / "missing.u32", 4, 4096); }, {"missing.u32"});
}

TEST(TokenFile, IdOutsideVocabulary) {
  test::TempDir dir("vocab");
  HostMatrix<uint32_t> t(3, 4);
  for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<uint32_t>(i);
  t(2, 1) = 4096;
  write_token_file(dir / "t.u32", t.view());
  expect_error<IoError>([&] { TokenFile::open(dir / "t.u32", 4, 4096); },
                        {"t.u32", "token id 4096", "position 9", "sequence 2"});
  // Only the kept sequences are checked.
  EXPECT_EQ(TokenFile::open(dir / "t.u32", 4, 4096, 2).num_sequences(), 2);
}

TEST(TokenFile, WriteReadRoundTripIsLittleEndian) {
  test::TempDir dir("rt");
  HostMatrix<uint32_t> t(2, 3);
  t(0, 0) = 0x01020304u;
  t(1, 2) = 0xfffffffeu;
  const std::string sha = write_token_file(dir / "t.u32", t.view());
  const std::string raw = test::read_text(dir / "t.u32");
  ASSERT_EQ(raw.size(), 24u);
  EXPECT_EQ(static_cast<uint8_t>(raw[0]), 0x04);
  EXPECT_EQ(static_cast<uint8_t>(raw[3]), 0x01);
  const auto f = TokenFile::open(dir / "t.u32", 3, int64_t{1} << 32);
  EXPECT_EQ(f.sha256(), sha);
  EXPECT_EQ(f.sequences()(0, 0), 0x01020304u);
  EXPECT_EQ(f.sequences()(1, 2), 0xfffffffeu);
}

}  // namespace
}  // namespace caldera::io
