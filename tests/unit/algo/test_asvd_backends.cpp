// ASVD / SVD-LLM / SVD on the CUDA backend against the CPU reference (label parity;gpu; skips
// without a GPU): the factorizations, the method's stored factors and metrics, the damping
// fallback, and the sensitivity pass (nn facet forward) agree with the CPU within fp tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "algo/asvd.h"
#include "comm/self_communicator.h"
#include "model/synthetic_weights.h"
#include "pipeline/sensitivity.h"
#include "test_asvd_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using linalg::BackendKind;

constexpr double kF64Tol = 1e-10;    // fp64 SVD on either backend: round-off only
constexpr double kF32Tol = 1e-4;     // fp32 SVD: cuSOLVER vs LAPACK
constexpr double kBf16Tol = 1e-2;    // stored bf16 factors may round differently by one ulp
constexpr double kPplTol = 1e-4;     // perplexities of the fp32 forward on either backend

class AsvdCudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(BackendKind::kCuda);
    cuda_ = linalg::make_backend(BackendKind::kCuda);
  }
  std::unique_ptr<linalg::Backend> cuda_;
};

HostMatrix<double> product(const LowRankFactors& f) { return test::matmul(f.a.view(), f.b.view()); }

TEST_F(AsvdCudaParity, FactorizationsMatchCpu) {
  const int64_t m = 96, n = 160, r = 40;
  const HostMatrix<float> w = test::random_normal(m, n, 201);
  const InputStats stats = stats_of(correlated_inputs(1024, n, 202), 8);
  auto& cpu = test::cpu_backend();
  const InputTransform l_cpu = cholesky_whitening(cpu, stats, n, {}, "cpu");
  const InputTransform l_cuda = cholesky_whitening(*cuda_, stats, n, {}, "cuda");
  EXPECT_EQ(l_cuda.damping, l_cpu.damping);
  EXPECT_LT(test::rel_diff(l_cuda.lower, l_cpu.lower), 1e-12);
  const InputTransform transforms[] = {InputTransform{}, diagonal_scaling(stats, n, {}, "t"), l_cpu};
  for (const auto& s : transforms) {
    for (SvdPrecision prec : {SvdPrecision::kF64, SvdPrecision::kF32}) {
      const auto a = TruncatableSvd::compute(cpu, w.view(), s, r, prec);
      const auto b = TruncatableSvd::compute(*cuda_, w.view(), s, r, prec);
      const double tol = prec == SvdPrecision::kF64 ? kF64Tol : kF32Tol;
      EXPECT_LT(test::rel_diff(product(b.factors(r, SigmaFuse::kUV)), product(a.factors(r, SigmaFuse::kUV))), tol)
          << to_string(s.kind) << " " << to_string(prec);
      for (size_t i = 0; i < a.singular_values().size(); ++i)
        ASSERT_NEAR(b.singular_values()[i], a.singular_values()[i], tol * a.singular_values()[0]) << i;
    }
  }
}

TEST_F(AsvdCudaParity, RankDeficientGramDampsLikeCpu) {
  const int64_t n = 64;
  const InputStats stats = stats_of(correlated_inputs(24, n, 211), 1);
  const InputTransform a = cholesky_whitening(test::cpu_backend(), stats, n, {}, "cpu");
  const InputTransform b = cholesky_whitening(*cuda_, stats, n, {}, "cuda");
  EXPECT_GT(a.damping, 0.0);
  EXPECT_EQ(b.damping, a.damping);
  EXPECT_LT(test::rel_diff(b.lower, a.lower), 1e-10);
}

TEST_F(AsvdCudaParity, MethodUnitsMatchCpu) {
  const int64_t m = 128, n = 96;
  const HostMatrix<float> w = test::random_normal(m, n, 221);
  const InputStats stats = stats_of(correlated_inputs(768, n, 222), 6);
  for (LowRankKind kind : {LowRankKind::kAsvd, LowRankKind::kSvdLlm, LowRankKind::kSvd}) {
    AsvdParams p;
    p.method = kind;
    p.rank_search = RankSearch::kUniform;
    p.param_ratio = 0.5;
    const LowRankMethod method(p);
    auto unit_on = [&](linalg::Backend& be) {
      const MethodContext ctx{be, Rng(0), UnitId{3, "mlp.down_proj", 6}, nullptr, {}, {}};
      return method.compress(ctx, w.view(), stats);
    };
    const CompressedUnit a = unit_on(test::cpu_backend());
    const CompressedUnit b = unit_on(*cuda_);
    EXPECT_EQ(b.tensors.at("A").shape, a.tensors.at("A").shape);
    EXPECT_EQ(b.metrics.params, a.metrics.params);
    EXPECT_NEAR(b.metrics.rel_error, a.metrics.rel_error, 1e-3 * a.metrics.rel_error) << to_string(kind);
    const HostMatrix<float> ra = method.reconstruct(test::cpu_backend(), a.tensors);
    const HostMatrix<float> rb = method.reconstruct(*cuda_, b.tensors);
    EXPECT_LT(test::rel_diff(rb, ra), kBf16Tol) << to_string(kind);
    // The CUDA reconstruction of the CPU's tensors is the same fp32 product.
    EXPECT_LT(test::rel_diff(method.reconstruct(*cuda_, a.tensors), ra), 1e-6) << to_string(kind);
  }
}

TEST_F(AsvdCudaParity, SensitivityTableMatchesCpu) {
  model::LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 128;
  c.rope_theta = 500.0;
  c.max_position_embeddings = 64;
  const model::SyntheticWeightSource source(c, 17);
  std::vector<uint32_t> tokens(4 * 32);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>((i * 31 + 7) % 128);
  comm::SelfCommunicator world;
  AsvdParams p;
  p.method = LowRankKind::kSvd;  // no statistics needed; the forward path is what is compared
  p.weight_candidates = {0.3, 0.7};
  pipeline::SensitivityOptions o;
  o.forward.seq_len = 32;
  o.forward.micro_batch_seqs = 2;
  o.forward.vocab_chunk = 64;
  const auto matrices = pipeline::model_matrices(c);
  const pipeline::InputStatsProvider none = [](int64_t, model::HessianInput) { return InputStats{}; };
  const auto a = pipeline::compute_sensitivity(test::cpu_backend(), world, source, tokens, 4, none, p,
                                               RankSearchMode::kWeights, matrices, o);
  const auto b = pipeline::compute_sensitivity(*cuda_, world, source, tokens, 4, none, p, RankSearchMode::kWeights,
                                               matrices, o);
  EXPECT_NEAR(b.base_ppl / a.base_ppl, 1.0, kPplTol);
  for (size_t i = 0; i < a.ppl.size(); ++i) EXPECT_NEAR(b.ppl[i] / a.ppl[i], 1.0, kPplTol) << i;
}

}  // namespace
}  // namespace caldera::algo
