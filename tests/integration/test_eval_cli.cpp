// `caldera-dist eval` end to end (label integration): the last stdout line is one JSON object with
// ppl, nll, tokens and seqs; it agrees with pipeline::evaluate_perplexity on the same sequences;
// bad options exit with code 2 and a message naming the option.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <string>

#include "comm/self_communicator.h"
#include "io/json_value.h"
#include "io/token_file.h"
#include "linalg/backend.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/perplexity.h"
#include "test_util.h"

namespace caldera {
namespace {

struct CommandResult {
  int exit_code = -1;
  std::string out;  ///< stdout and stderr
};

CommandResult run(const std::string& args, const std::string& stderr_redirect = "2>&1") {
  const std::string cmd = std::string(CALDERA_DIST_BINARY) + " " + args + " " + stderr_redirect;
  CommandResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << cmd;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) r.out += buf.data();
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto pos = t.rfind('\n');
  return pos == std::string::npos ? t : t.substr(pos + 1);
}

TEST(EvalCli, JsonSummaryIsTheLastStdoutLine) {
  const auto model = test::tiny_model_dir().string();
  const auto tokens = (test::data_dir() / "eval.u32").string();
  const auto r = run("eval --model " + model + " --tokens " + tokens + " --seq-len 512 --max-seqs 6 --backend cpu --json",
                     "2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = io::JsonValue::parse(last_line(r.out), "eval stdout");
  EXPECT_EQ(j.at("seqs").as_int(), 6);
  EXPECT_EQ(j.at("tokens").as_int(), 6 * 511);
  EXPECT_NEAR(std::log(j.at("ppl").as_double()), j.at("nll").as_double(), 1e-12);

  // The library on the same sequences gives the same number.
  auto cpu = linalg::make_backend(linalg::BackendKind::kCpu);
  comm::SelfCommunicator self;
  const pipeline::HfWeightSource source(model);
  const auto file = io::TokenFile::open(tokens, 512, source.config().vocab_size, 6);
  const auto all = file.sequences();
  pipeline::PerplexityOptions options;
  const auto ref = pipeline::evaluate_perplexity(
      *cpu, self, source, std::span<const uint32_t>(all.data, static_cast<size_t>(all.size())), options);
  EXPECT_NEAR(j.at("ppl").as_double() / ref.ppl, 1.0, 1e-12);
}

TEST(EvalCli, BadOptionsExitWithUsageCode) {
  const auto model = test::tiny_model_dir().string();
  const auto tokens = (test::data_dir() / "eval.u32").string();
  auto r = run("eval --model " + model + " --tokens " + tokens + " --seq-len 0");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--seq-len"), std::string::npos) << r.out;
  r = run("eval --tokens " + tokens);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--model"), std::string::npos) << r.out;
  r = run("eval --model " + model + " --tokens " + tokens + " --seq-len 500");  // 131072 bytes: not whole sequences
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("eval.u32"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace caldera
