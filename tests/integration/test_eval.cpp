// End-to-end perplexity of the project's real trained models against the goldens computed by
// Hugging Face transformers (tests/data/golden.json; definition in /work/shared/models/README.md):
// ppl to 1e-4 relative and the first sequence's per-token NLLs to 1e-3 absolute.
// Built once per backend: test_eval_cpu (integration; minillama-small also slow) and
// test_eval_cuda (gpu).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

#include "comm/self_communicator.h"
#include "core/timer.h"
#include "io/json_value.h"
#include "linalg/backend.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/perplexity.h"
#include "test_util.h"

namespace caldera::pipeline {
namespace {

constexpr linalg::BackendKind kKind =
    CALDERA_TEST_BACKEND_CUDA ? linalg::BackendKind::kCuda : linalg::BackendKind::kCpu;
constexpr double kPplRelTol = 1e-4;
constexpr double kTokenNllAbsTol = 1e-3;
constexpr int64_t kSeqLen = 512;

/// The bundled eval split: 64 sequences × 512 little-endian uint32 token ids.
std::vector<uint32_t> read_eval_tokens() {
  const auto path = test::data_dir() / "eval.u32";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<uint32_t> tokens(64 * kSeqLen);
  in.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 4));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(tokens.size() * 4)) << path;
  return tokens;
}

void check_golden(const std::filesystem::path& model_dir, const std::string& golden_key, int64_t vocab_chunk) {
  CALDERA_REQUIRE_BACKEND(kKind);
  const auto golden = io::JsonValue::read_file(test::data_dir() / "golden.json").at(golden_key);
  const double golden_ppl = golden.at("eval_ppl_seq512_64seqs").as_double();
  const auto& golden_nll = golden.at("first_seq_token_nll").as_array();
  ASSERT_EQ(golden_nll.size(), static_cast<size_t>(kSeqLen - 1));

  auto backend = linalg::make_backend(kKind);
  comm::SelfCommunicator world;
  const HfWeightSource source(model_dir);
  const auto tokens = read_eval_tokens();
  PerplexityOptions options;
  options.forward = {kSeqLen, 8, vocab_chunk};
  options.first_sequence_nll = FirstSequenceNll::kKeep;
  Stopwatch watch;
  const PerplexityResult r = evaluate_perplexity(*backend, world, source, tokens, options);
  const double seconds = watch.elapsed_s();

  EXPECT_EQ(r.seqs, 64);
  EXPECT_EQ(r.tokens, 64 * (kSeqLen - 1));
  EXPECT_NEAR(r.ppl / golden_ppl, 1.0, kPplRelTol) << "ppl " << r.ppl << " vs golden " << golden_ppl;
  EXPECT_NEAR(std::log(r.ppl), r.nll, 1e-12);
  ASSERT_EQ(r.first_sequence_token_nll.size(), golden_nll.size());
  double max_err = 0;
  for (size_t i = 0; i < golden_nll.size(); ++i) {
    const double err = std::abs(r.first_sequence_token_nll[i] - golden_nll[i].as_double());
    max_err = std::max(max_err, err);
    EXPECT_LT(err, kTokenNllAbsTol) << "token " << i + 1 << ": " << r.first_sequence_token_nll[i] << " vs "
                                    << golden_nll[i].as_double();
  }
  std::printf("[ %s ] %s: ppl %.6f (golden %.6f, rel %.2e), max |token nll error| %.2e, %.1f s\n",
              std::string(linalg::to_string(kKind)).c_str(), golden_key.c_str(), r.ppl, golden_ppl,
              std::abs(r.ppl / golden_ppl - 1.0), max_err, seconds);
}

TEST(EvalGolden, MinillamaTiny) {
  // vocab_chunk 1000 does not divide the 4096-token vocabulary: the streamed log-sum-exp is exercised
  // across chunk boundaries and a ragged last chunk.
  check_golden(test::tiny_model_dir(), "tiny", 1000);
}

TEST(EvalGolden, MinillamaSmall) {
  const auto dir = test::small_model_dir();
  if (dir.empty())
    GTEST_SKIP() << "minillama-small not found: unpack /work/shared/models/minillama-small.tar.xz into "
                    ".carry/ or set CALDERA_SMALL_MODEL";
  check_golden(dir, "small", 4096);
}

}  // namespace
}  // namespace caldera::pipeline
