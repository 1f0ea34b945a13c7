// tools/tokenize.py end to end: its output is a valid token file for TokenFile, every sequence
// starts with BOS, and the first sequence decodes back to the start of the input text.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <regex>

#include "io/token_file.h"
#include "io_test_util.h"
#include "test_util.h"

namespace caldera::io {
namespace {

std::filesystem::path tool_path() { return test::data_dir().parent_path().parent_path() / "tools" / "tokenize.py"; }

/// Runs `cmd`, returning (exit status, stdout).
std::pair<int, std::string> run_capture(const std::string& cmd) {
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, out};
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) out += buf.data();
  return {::pclose(p), out};
}

std::string sample_text(int variant) {
  std::string s;
  for (int i = 0; i < 40; ++i)
    s += "def f" + std::to_string(variant * 100 + i) + "(x, y):\n    \"\"\"Add things.\"\"\"\n    return x * " +
         std::to_string(i) + " + y\n\n";
  return s;
}

TEST(TokenizeTool, WritesSequencesTokenFileReads) {
  if (std::system("python3 -c 'import tokenizers' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with the tokenizers package is not available "
                    "(pip install -r tools/requirements-tokenize.txt to run this check)";
  ASSERT_TRUE(std::filesystem::exists(tool_path())) << tool_path();
  test::TempDir dir("tokenize");
  test::write_text(dir / "a.txt", sample_text(1));
  test::write_text(dir / "b.txt", sample_text(2));
  const std::string base = "python3 " + tool_path().string() + " --tokenizer " +
                           (test::data_dir() / "tokenizer.json").string() + " --seq-len 64 --bos 0 " +
                           (dir / "a.txt").string() + " " + (dir / "b.txt").string();
  const auto [status, out] = run_capture(base + " -o " + (dir / "out.u32").string());
  ASSERT_EQ(status, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("wrote (\\d+) sequences x 64 tokens.*\\((\\d+) tokens read, (\\d+) dropped")))
      << out;
  const int64_t n = std::stoll(m[1]), read = std::stoll(m[2]), dropped = std::stoll(m[3]);
  EXPECT_GT(n, 5);
  EXPECT_EQ(n * 63 + dropped, read);  // 63 stream tokens per sequence after BOS
  EXPECT_LT(dropped, 63);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("sha256 ([0-9a-f]{64})"))) << out;
  const std::string sha = m[1];

  const auto tf = TokenFile::open(dir / "out.u32", 64, 4096);
  EXPECT_EQ(tf.num_sequences(), n);
  EXPECT_EQ(tf.sha256(), sha);
  for (int64_t s = 0; s < n; ++s) EXPECT_EQ(tf.sequence(s)[0], 0u) << "sequence " << s;

  // The first sequence's tokens decode (with the tokenizer, independently of the tool) to the start
  // of the first document.
  std::string ids;
  for (int64_t j = 1; j < 64; ++j) ids += (j > 1 ? "," : "") + std::to_string(tf.sequence(0)[static_cast<std::size_t>(j)]);
  test::write_text(dir / "check.py",
                   "import sys\nfrom tokenizers import Tokenizer\n"
                   "t = Tokenizer.from_file(sys.argv[1])\n"
                   "text = open(sys.argv[2]).read()\n"
                   "dec = t.decode([" + ids + "])\n"
                   "assert len(dec) > 20 and text.startswith(dec), repr(dec)\n");
  const auto [check_status, check_out] = run_capture("python3 " + (dir / "check.py").string() + " " +
                                                     (test::data_dir() / "tokenizer.json").string() + " " +
                                                     (dir / "a.txt").string() + " 2>&1");
  EXPECT_EQ(check_status, 0) << check_out;

  const auto [st2, out2] = run_capture(base + " --max-seqs 2 -o " + (dir / "two.u32").string());
  ASSERT_EQ(st2, 0) << out2;
  EXPECT_EQ(TokenFile::open(dir / "two.u32", 64, 4096).num_sequences(), 2);
  const auto [st3, out3] = run_capture(base + " --bos 99999 -o " + (dir / "bad.u32").string() + " 2>&1");
  EXPECT_NE(st3, 0);
  EXPECT_NE(out3.find("--bos 99999"), std::string::npos) << out3;
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.u32"));
}

}  // namespace
}  // namespace caldera::io
