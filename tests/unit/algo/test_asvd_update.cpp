// SVD-LLM's parameter update (spec asvd-svdllm.md §9.1): the closed-form refit of the left factor
// (algo::refit_left_factor) and LowRankMethod::update, on the CPU reference backend.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/asvd.h"
#include "algo/lowrank.h"
#include "test_asvd_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;

/// Σ_t ‖(W − A B) x_t‖² over the rows of x, in fp64 from the tokens themselves.
double output_sq_error(const HostMatrix<float>& w, const HostMatrix<double>& a, const HostMatrix<double>& b,
                       const HostMatrix<float>& x) {
  HostMatrix<double> delta = test::matmul(a.view(), b.view());
  for (int64_t i = 0; i < delta.size(); ++i) delta.data()[i] = w.data()[i] - delta.data()[i];
  HostMatrix<double> xd(x.rows(), x.cols());
  for (int64_t i = 0; i < xd.size(); ++i) xd.data()[i] = x.data()[i];
  const HostMatrix<double> y = test::matmul(xd.view(), delta.view(), linalg::Op::kNoTrans, linalg::Op::kTrans);
  double s = 0;
  for (int64_t i = 0; i < y.size(); ++i) s += y.data()[i] * y.data()[i];
  return s;
}

/// Inputs of another distribution than correlated_inputs(…, seed): the compressed prefix's.
HostMatrix<float> shifted_inputs(int64_t tokens, int64_t n, uint64_t seed) {
  HostMatrix<float> x = correlated_inputs(tokens, n, seed);
  const HostMatrix<float> noise = test::random_normal(tokens, n, seed + 7);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < n; ++j) x(t, j) = 0.8f * x(t, j) + 0.5f * noise(t, j) * float(1 + j % 3);
  return x;
}

LowRankFactors svdllm_factors(const HostMatrix<float>& w, const InputStats& stats, int64_t rank) {
  const InputTransform l = cholesky_whitening(cpu_backend(), stats, w.cols(), {}, "test");
  return TruncatableSvd::compute(cpu_backend(), w.view(), l, rank, SvdPrecision::kF64).factors(rank, SigmaFuse::kUV);
}

TEST(SvdLlmUpdate, RefitOnTheFactorsOwnInputsGivesTheirLeftFactorBack) {
  // The truncated SVD of W·L already minimizes the whitened error for its B (spec §2.3), so the
  // least-squares refit on the same Gram matrix must return A itself.
  const int64_t m = 36, n = 44, r = 9;
  const HostMatrix<float> w = test::random_normal(m, n, 301);
  const InputStats stats = stats_of(correlated_inputs(400, n, 302), 4);
  const LowRankFactors f = svdllm_factors(w, stats, r);
  double damping = -1;
  const HostMatrix<double> a = refit_left_factor(cpu_backend(), w.view(), f.b, stats.sum_xxt, 1e-4, "test", damping);
  EXPECT_EQ(damping, 0.0);
  ASSERT_EQ(a.rows(), m);
  ASSERT_EQ(a.cols(), r);
  EXPECT_LT(test::rel_diff(a, f.a), 1e-8);
}

TEST(SvdLlmUpdate, RefitIsTheLeastSquaresLeftFactorOnNewInputs) {
  const int64_t m = 30, n = 40, r = 8;
  const HostMatrix<float> w = test::random_normal(m, n, 311);
  const LowRankFactors f = svdllm_factors(w, stats_of(correlated_inputs(360, n, 312), 4), r);
  const HostMatrix<float> x2 = shifted_inputs(360, n, 313);
  double damping = -1;
  const HostMatrix<double> a2 =
      refit_left_factor(cpu_backend(), w.view(), f.b, stats_of(x2, 4).sum_xxt, 1e-4, "test", damping);
  const double before = output_sq_error(w, f.a, f.b, x2);
  const double after = output_sq_error(w, a2, f.b, x2);
  EXPECT_LT(after, before * 0.999) << "the refit must help on inputs the factors were not computed from";
  // A minimum: moving A in random directions (both signs) only increases the error.
  for (uint64_t seed : {314u, 315u, 316u}) {
    const HostMatrix<float> dir = test::random_normal(m, r, seed);
    for (double eps : {1e-3, -1e-3}) {
      HostMatrix<double> moved = a2;
      for (int64_t i = 0; i < moved.size(); ++i) moved.data()[i] += eps * dir.data()[i];
      EXPECT_GT(output_sq_error(w, moved, f.b, x2), after) << "seed " << seed << " eps " << eps;
    }
  }
}

TEST(SvdLlmUpdate, ZeroInputsAreANumericErrorNamingTheContext) {
  const HostMatrix<float> w = test::random_normal(6, 8, 321);
  HostMatrix<double> b(2, 8);
  for (int64_t i = 0; i < b.size(); ++i) b.data()[i] = 0.5;
  const HostMatrix<double> zero(8, 8);
  HostMatrix<double> wrong(7, 7);
  for (int64_t i = 0; i < 7; ++i) wrong(i, i) = 1.0;
  double damping = 0;
  try {
    (void)refit_left_factor(cpu_backend(), w.view(), b, zero, 1e-4, "L003.mlp.up_proj", damping);
    FAIL() << "expected NumericError";
  } catch (const NumericError& e) {
    EXPECT_NE(std::string(e.what()).find("L003.mlp.up_proj"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)refit_left_factor(cpu_backend(), w.view(), b, wrong, 1e-4, "x", damping),
               ConfigError);
}

TEST(LowRankMethod, UpdateRefitsAKeepsBAndLowersTheOutputError) {
  const int64_t m = 32, n = 48;
  const HostMatrix<float> w = test::random_normal(m, n, 331);
  AsvdParams p;
  p.method = LowRankKind::kSvdLlm;
  p.rank_search = RankSearch::kUniform;
  p.param_ratio = 0.5;
  p.update = LowRankUpdate::kLocal;
  const LowRankMethod method(p);
  ASSERT_TRUE(method.has_update_pass());
  const UnitId id{1, "mlp.up_proj", 5};
  const CompressedUnit unit = method.compress(MethodContext{cpu_backend(), Rng(0), id, nullptr, {}, {}}, w.view(),
                                              stats_of(correlated_inputs(384, n, 332), 4));
  const InputStats shifted = stats_of(shifted_inputs(384, n, 333), 4);
  const CompressedUnit updated = method.update(cpu_backend(), id, w.view(), unit, shifted);
  const Tensor& b0 = unit.tensors.at("B");
  const Tensor& b1 = updated.tensors.at("B");
  ASSERT_EQ(b0.shape, b1.shape);
  EXPECT_EQ(std::vector<uint16_t>(b0.as<uint16_t>(), b0.as<uint16_t>() + b0.numel()),
            std::vector<uint16_t>(b1.as<uint16_t>(), b1.as<uint16_t>() + b1.numel()))
      << "B must be kept bit for bit";
  EXPECT_EQ(updated.tensors.at("A").shape, unit.tensors.at("A").shape);
  double before = -1, after = -1;
  for (const auto& [k, v] : updated.metrics.extra) {
    if (k == "update_output_error_before") before = v;
    if (k == "update_output_error_after") after = v;
  }
  ASSERT_GT(before, 0.0);
  EXPECT_LT(after, before);
  EXPECT_GT(test::rel_diff(method.reconstruct(cpu_backend(), updated.tensors), method.reconstruct(cpu_backend(), unit.tensors)),
            1e-4);
  EXPECT_EQ(updated.metrics.params, unit.metrics.params);

  // A unit kept dense has nothing to refit.
  CompressedUnit dense;
  dense.tensors["weight"] = make_tensor(DType::kF32, w);
  const CompressedUnit same = method.update(cpu_backend(), id, w.view(), dense, shifted);
  EXPECT_EQ(test::rel_diff(method.reconstruct(cpu_backend(), same.tensors), w), 0.0);
}

TEST(AsvdParams, UpdateIsSvdLlmOnlyAndNotPartOfTheSensitivityTable) {
  AsvdParams p;
  apply_asvd_option(p, "method", "svdllm");
  apply_asvd_option(p, "update", "local");
  EXPECT_EQ(p.update, LowRankUpdate::kLocal);
  p.validate();
  bool recorded = false;
  for (const auto& [k, v] : p.to_pairs()) recorded |= k == "update" && v == "local";
  EXPECT_TRUE(recorded) << "run.json and the task identities must record the update";
  AsvdParams without = p;
  without.update = LowRankUpdate::kNone;
  EXPECT_EQ(p.sensitivity_params().to_pairs(), without.to_pairs()) << "one sensitivity table with and without update";
  EXPECT_FALSE(LowRankMethod(without).has_update_pass());

  EXPECT_THROW(apply_asvd_option(p, "update", "global"), ConfigError);
  p.method = LowRankKind::kAsvd;
  try {
    p.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--update"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace caldera::algo
