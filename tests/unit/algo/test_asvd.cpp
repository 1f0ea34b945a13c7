// ASVD / SVD-LLM / plain SVD factorizations and the low-rank Method (spec asvd-svdllm.md §2, §3,
// §11 test plan), on the CPU reference backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "algo/asvd.h"
#include "algo/lowrank.h"
#include "core/dtype.h"
#include "test_asvd_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;

HostMatrix<double> to_f64(MatrixView<const float> v) {
  HostMatrix<double> out(v.rows, v.cols);
  for (int64_t i = 0; i < v.rows; ++i)
    for (int64_t j = 0; j < v.cols; ++j) out(i, j) = v(i, j);
  return out;
}

/// ||(W − Ŵ) X||_F² = Σ_t ||(W − Ŵ) x_t||², computed from the tokens themselves (not from G).
double activation_sq_error(const HostMatrix<float>& w, const HostMatrix<double>& w_hat, const HostMatrix<float>& x) {
  HostMatrix<double> delta = to_f64(w.view());
  for (int64_t i = 0; i < delta.size(); ++i) delta.data()[i] -= w_hat.data()[i];
  const HostMatrix<double> xd = to_f64(x.view());
  const HostMatrix<double> y = test::matmul(xd.view(), delta.view(), linalg::Op::kNoTrans, linalg::Op::kTrans);
  double s = 0;
  for (int64_t i = 0; i < y.size(); ++i) s += y.data()[i] * y.data()[i];
  return s;
}

HostMatrix<double> product(const LowRankFactors& f) { return test::matmul(f.a.view(), f.b.view()); }

MethodContext context_for(int layer, const std::string& matrix) {
  return MethodContext{cpu_backend(), Rng(0), UnitId{layer, matrix, 0}, nullptr, {}, {}};
}

TEST(RankArithmetic, MatchesSpecExamples) {
  // Spec §11: 4096×4096 at 0.9 → floor(15099494/8192); 11008×4096 at 0.9 → floor(40579891/15104).
  EXPECT_EQ(rank_for_param_ratio(4096, 4096, 0.9), 1843);
  EXPECT_EQ(rank_for_param_ratio(11008, 4096, 0.9), 2686);
  EXPECT_EQ(rank_for_param_ratio(4096, 11008, 0.9), 2686);
  // ρ = 1 is not the identity (pitfall 8): half rank for a square matrix.
  EXPECT_EQ(rank_for_param_ratio(4096, 4096, 1.0), 2048);
  // Capped at full rank; GQA k_proj 256×512 is full rank at 1.5 (pitfall 14).
  EXPECT_DOUBLE_EQ(full_rank_param_ratio(256, 512), 1.5);
  EXPECT_EQ(rank_for_param_ratio(256, 512, 1.5), 256);
  EXPECT_EQ(rank_for_param_ratio(256, 512, 1.9), 256);
  EXPECT_EQ(rank_for_param_ratio(256, 512, 1.4), 238);
  EXPECT_THROW((void)rank_for_param_ratio(0, 4, 0.5), Error);
  EXPECT_THROW((void)rank_for_param_ratio(4, 4, -0.1), Error);
}

TEST(LowRank, FullRankReproducesWForEveryTransformAndSigmaSplit) {
  const int64_t m = 24, n = 32;
  const HostMatrix<float> w = test::random_normal(m, n, 11);
  const HostMatrix<float> x = correlated_inputs(256, n, 12);
  const InputStats stats = stats_of(x, 4);
  const HostMatrix<double> w64 = to_f64(w.view());
  const InputTransform transforms[] = {
      InputTransform{},
      diagonal_scaling(stats, n, {}, "test"),
      cholesky_whitening(cpu_backend(), stats, n, {}, "test"),
  };
  for (const auto& s : transforms) {
    const TruncatableSvd svd = TruncatableSvd::compute(cpu_backend(), w.view(), s, m, SvdPrecision::kF64);
    ASSERT_EQ(svd.kept_rank(), m);
    for (SigmaFuse fuse : {SigmaFuse::kUV, SigmaFuse::kU, SigmaFuse::kV}) {
      const LowRankFactors f = svd.factors(m, fuse);
      EXPECT_LT(test::rel_diff(product(f), w64), 1e-12) << to_string(s.kind) << " " << to_string(fuse);
    }
    if (s.kind == TransformKind::kIdentity) {
      // UV puts Σ^{1/2} on both sides: ||A[:, j]|| = ||B[j, :]|| = sqrt(σ_j) (orthonormal U, V).
      const LowRankFactors f = svd.factors(m, SigmaFuse::kUV);
      for (int64_t j = 0; j < m; ++j) {
        double na = 0, nb = 0;
        for (int64_t i = 0; i < m; ++i) na += f.a(i, j) * f.a(i, j);
        for (int64_t c = 0; c < n; ++c) nb += f.b(j, c) * f.b(j, c);
        EXPECT_NEAR(na, svd.singular_values()[size_t(j)], 1e-10);
        EXPECT_NEAR(nb, svd.singular_values()[size_t(j)], 1e-10);
      }
    }
    // The split of Σ never changes the product at a truncated rank either.
    const HostMatrix<double> uv = product(svd.factors(7, SigmaFuse::kUV));
    EXPECT_LT(test::rel_diff(product(svd.factors(7, SigmaFuse::kU)), uv), 1e-13);
    EXPECT_LT(test::rel_diff(product(svd.factors(7, SigmaFuse::kV)), uv), 1e-13);
  }
}

TEST(LowRank, WhiteningTheoremHoldsExactlyInF64) {
  // Spec §2.3 / §11: with L Lᵀ = Σxxᵀ (undamped), ||(W − AB)X||² = Σ_{i>r} σ_i(WL)².
  const int64_t m = 40, n = 48, tokens = 320;
  const HostMatrix<float> w = test::random_normal(m, n, 21);
  const HostMatrix<float> x = correlated_inputs(tokens, n, 22);
  const InputStats stats = stats_of(x, 5);
  const InputTransform l = cholesky_whitening(cpu_backend(), stats, n, {}, "test");
  EXPECT_EQ(l.damping, 0.0);
  const TruncatableSvd svd = TruncatableSvd::compute(cpu_backend(), w.view(), l, m, SvdPrecision::kF64);
  for (int64_t r : {1, 5, 17, 33, 39}) {
    const double err = activation_sq_error(w, product(svd.factors(r, SigmaFuse::kUV)), x);
    const double predicted = svd.truncation_loss(r);
    EXPECT_NEAR(err / predicted, 1.0, 1e-6) << "rank " << r;
  }
  // It is the minimiser (generalised Eckart–Young): ASVD and plain SVD at the same rank do worse.
  const int64_t r = 12;
  const double best = activation_sq_error(w, product(svd.factors(r, SigmaFuse::kUV)), x);
  const InputTransform others[] = {InputTransform{}, diagonal_scaling(stats, n, {}, "test")};
  for (const auto& s : others) {
    const TruncatableSvd o = TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF64);
    EXPECT_GT(activation_sq_error(w, product(o.factors(r, SigmaFuse::kUV)), x), best * (1 + 1e-9))
        << to_string(s.kind);
  }
}

TEST(LowRank, ActivationAwareOrderingOnScaledChannels) {
  // With channel scales spread over two decades, the activation error ranks SVD-LLM < ASVD < SVD.
  const int64_t m = 64, n = 80, tokens = 640;
  const HostMatrix<float> w = test::random_normal(m, n, 31);
  const HostMatrix<float> x = correlated_inputs(tokens, n, 32);
  const InputStats stats = stats_of(x, 5);
  const int64_t r = rank_for_param_ratio(m, n, 0.5);
  auto error_of = [&](const InputTransform& s) {
    const TruncatableSvd svd = TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF64);
    return activation_sq_error(w, product(svd.factors(r, SigmaFuse::kUV)), x);
  };
  const double e_svd = error_of(InputTransform{});
  const double e_asvd = error_of(diagonal_scaling(stats, n, {}, "test"));
  const double e_svdllm = error_of(cholesky_whitening(cpu_backend(), stats, n, {}, "test"));
  EXPECT_LT(e_svdllm, e_asvd);
  EXPECT_LT(e_asvd, e_svd);
}

TEST(LowRank, DiagonalAsvdIsTruncatedSvdOfWsMappedBack) {
  // Spec §11: AB = (W S)_r S⁻¹, checked against a direct computation on the CPU backend.
  const int64_t m = 30, n = 20, r = 6;
  const HostMatrix<float> w = test::random_normal(m, n, 41);
  const HostMatrix<float> x = correlated_inputs(128, n, 42);
  const InputStats stats = stats_of(x, 2);
  DiagonalScalingOptions o;
  o.alpha = 0.5;
  const InputTransform s = diagonal_scaling(stats, n, o, "test");
  // s_j = (Σ_seq mean_t |x|)^α = (Σ|x| · n_seq / count)^α.
  for (int64_t j = 0; j < n; ++j)
    EXPECT_NEAR(s.diagonal[size_t(j)], std::sqrt(stats.sum_abs_x[size_t(j)] * 2.0 / 128.0), 1e-12);
  HostMatrix<double> ws = to_f64(w.view());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) ws(i, j) *= s.diagonal[size_t(j)];
  HostMatrix<double> u(m, n), sig(1, n), vt(n, n);
  cpu_backend().svd(ws.cview(), u.view(), sig.view(), vt.view());
  HostMatrix<double> expected(m, n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < r; ++k) acc += u(i, k) * sig(0, k) * vt(k, j);
      expected(i, j) = acc / s.diagonal[size_t(j)];
    }
  const TruncatableSvd svd = TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF64);
  EXPECT_LT(test::rel_diff(product(svd.factors(r, SigmaFuse::kUV)), expected), 1e-12);

  // abs-max takes the running max, raised to α.
  o.scaling = ActivationScaling::kAbsMax;
  o.alpha = 1.0;
  const InputTransform smax = diagonal_scaling(stats, n, o, "test");
  for (int64_t j = 0; j < n; ++j) EXPECT_DOUBLE_EQ(smax.diagonal[size_t(j)], stats.max_abs_x[size_t(j)]);
}

TEST(LowRank, DeadChannelIsFlooredAndFactorsStayBounded) {
  // Pitfall 4: a channel that never fires must not blow B up (reference: S_jj = 1e-6 → ×10⁶).
  const int64_t m = 16, n = 24;
  HostMatrix<float> x = correlated_inputs(96, n, 51);
  for (int64_t t = 0; t < x.rows(); ++t) x(t, 5) = 0.0f;
  const InputStats stats = stats_of(x, 3);
  const InputTransform s = diagonal_scaling(stats, n, {}, "test");
  EXPECT_EQ(s.floored_channels, 1);
  double mean = 0;
  for (double d : s.diagonal) mean += d;
  mean /= double(n);
  EXPECT_GT(s.diagonal[5], 0.0);
  EXPECT_LE(s.diagonal[5], 1.1e-3 * mean);
  const HostMatrix<float> w = test::random_normal(m, n, 52);
  const TruncatableSvd svd = TruncatableSvd::compute(cpu_backend(), w.view(), s, 8, SvdPrecision::kF64);
  const LowRankFactors f = svd.factors(8, SigmaFuse::kUV);
  double max_b = 0;
  for (int64_t i = 0; i < f.b.size(); ++i) max_b = std::max(max_b, std::fabs(f.b.data()[i]));
  EXPECT_LT(max_b, 6e4);
  // Missing statistics are a configuration error naming the unit.
  InputStats empty = stats;
  empty.sum_abs_x.clear();
  try {
    (void)diagonal_scaling(empty, n, {}, "L003.mlp.up_proj");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("L003.mlp.up_proj"), std::string::npos);
  }
}

TEST(LowRank, RankDeficientGramUsesRecordedRelativeDamping) {
  // Pitfall 2: T < n makes Σxxᵀ singular; the relative damping used is recorded and exact.
  const int64_t n = 40;
  const HostMatrix<float> x = correlated_inputs(20, n, 61);
  const InputStats stats = stats_of(x, 1);
  const InputTransform l = cholesky_whitening(cpu_backend(), stats, n, {}, "test");
  EXPECT_GE(l.damping, 1e-4);
  EXPECT_LE(l.damping, 1.0);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += stats.sum_xxt(i, i) / double(n);
  HostMatrix<double> g = stats.sum_xxt;
  for (int64_t i = 0; i < n; ++i) g(i, i) += l.damping * mean_diag;
  const HostMatrix<double> llt = test::matmul(l.lower.view(), l.lower.view(), linalg::Op::kNoTrans, linalg::Op::kTrans);
  EXPECT_LT(test::rel_diff(llt, g), 1e-12);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) EXPECT_EQ(l.lower(i, j), 0.0);

  // Positive but numerically singular (a pivot of 1e-15 · mean diag): Cholesky succeeds, yet the
  // whitening would amplify by ~3·10⁷, so it is damped too.
  InputStats tiny;
  tiny.sum_xxt = HostMatrix<double>(8, 8);
  for (int64_t i = 0; i < 8; ++i) tiny.sum_xxt(i, i) = i == 5 ? 1e-15 : 1.0;
  tiny.count = 100;
  EXPECT_GT(cholesky_whitening(cpu_backend(), tiny, 8, {}, "test").damping, 0.0);
  tiny.sum_xxt(5, 5) = 1e-6;  // well enough conditioned: exact whitening
  EXPECT_EQ(cholesky_whitening(cpu_backend(), tiny, 8, {}, "test").damping, 0.0);
}

TEST(LowRank, Fp32SvdAgreesWithFp64) {
  const int64_t m = 48, n = 64, r = 20;
  const HostMatrix<float> w = test::random_normal(m, n, 71);
  const HostMatrix<float> x = correlated_inputs(400, n, 72);
  const InputStats stats = stats_of(x, 4);
  for (const InputTransform& s :
       {diagonal_scaling(stats, n, {}, "test"), cholesky_whitening(cpu_backend(), stats, n, {}, "test")}) {
    const auto p64 = product(TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF64).factors(r, SigmaFuse::kUV));
    const auto p32 = product(TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF32).factors(r, SigmaFuse::kUV));
    EXPECT_LT(test::rel_diff(p32, p64), 1e-4) << to_string(s.kind);
  }
}

TEST(LowRankMethod, StoresBf16FactorsAndReconstructsTheirProduct) {
  const int64_t m = 48, n = 64;
  const HostMatrix<float> w = test::random_normal(m, n, 81);
  const InputStats stats = stats_of(correlated_inputs(512, n, 82), 4);
  for (LowRankKind kind : {LowRankKind::kAsvd, LowRankKind::kSvdLlm, LowRankKind::kSvd}) {
    AsvdParams p;
    p.method = kind;
    p.rank_search = RankSearch::kUniform;
    p.param_ratio = 0.6;
    const LowRankMethod method(p);
    EXPECT_EQ(method.name(), to_string(kind));
    const CompressedUnit unit = method.compress(context_for(2, "self_attn.q_proj"), w.view(), stats);
    const int64_t r = rank_for_param_ratio(m, n, 0.6);
    const Tensor& a = unit.tensors.at("A");
    const Tensor& b = unit.tensors.at("B");
    EXPECT_EQ(a.dtype, DType::kBF16);
    EXPECT_EQ(b.dtype, DType::kBF16);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{m, r}));
    EXPECT_EQ(b.shape, (std::vector<int64_t>{r, n}));
    EXPECT_EQ(unit.metrics.params, r * (m + n));
    // Reconstruction is the fp32 product of the decoded bf16 factors.
    HostMatrix<float> af(m, r), bf(r, n);
    for (int64_t i = 0; i < af.size(); ++i) af.data()[i] = bf16_to_f32(a.as<uint16_t>()[i]);
    for (int64_t i = 0; i < bf.size(); ++i) bf.data()[i] = bf16_to_f32(b.as<uint16_t>()[i]);
    const HostMatrix<float> rec = method.reconstruct(cpu_backend(), unit.tensors);
    EXPECT_LT(test::rel_diff(rec, test::host_matmul(af.cview(), bf.cview())), 1e-6);
    // The stored factors are the bf16 rounding of the exact truncation: close to it.
    const InputTransform s = method.input_transform(cpu_backend(), stats, n, "test");
    const auto exact = product(TruncatableSvd::compute(cpu_backend(), w.view(), s, r, SvdPrecision::kF64).factors(r, SigmaFuse::kUV));
    EXPECT_LT(test::rel_diff(rec.view(), exact.view()), 2e-2) << to_string(kind);
    EXPECT_GT(unit.metrics.rel_error, 0.0);
    EXPECT_LT(unit.metrics.rel_error, 1.0);
  }
}

TEST(LowRankMethod, AllocationDecidesRankAndDenseUnits) {
  const int64_t m = 32, n = 48;
  const HostMatrix<float> w = test::random_normal(m, n, 91);
  const InputStats stats = stats_of(correlated_inputs(256, n, 92), 2);
  AsvdParams p;
  p.method = LowRankKind::kSvdLlm;
  RankAllocation alloc;
  MatrixAllocation a;
  a.shape = MatrixShape{1, "mlp.up_proj", m, n};
  a.ratio = 0.4;
  a.rank = rank_for_param_ratio(m, n, 0.4);
  alloc.matrices.push_back(a);
  const LowRankMethod method(p, alloc);
  // The allocation is part of the parameters (task identity), so another allocation never reuses units.
  auto other = alloc;
  other.matrices[0].rank -= 1;
  EXPECT_NE(method.parameters(), LowRankMethod(p, other).parameters());
  EXPECT_EQ(method.parameters(), LowRankMethod(p, alloc).parameters());
  const CompressedUnit up = method.compress(context_for(1, "mlp.up_proj"), w.view(), stats);
  EXPECT_EQ(up.tensors.at("A").shape[1], a.rank);
  // Not in the allocation: stays dense, reconstructed exactly.
  const CompressedUnit q = method.compress(context_for(1, "self_attn.q_proj"), w.view(), stats);
  ASSERT_TRUE(q.tensors.count("weight"));
  EXPECT_EQ(test::rel_diff(method.reconstruct(cpu_backend(), q.tensors), w), 0.0);
  EXPECT_EQ(q.metrics.rel_error, 0.0);
  // A rank allocation made for another shape is refused.
  EXPECT_THROW((void)method.compress(context_for(1, "mlp.up_proj"), test::random_normal(n, m, 1).view(), stats), Error);
  // Sensitivity search without an allocation cannot pick ranks.
  const LowRankMethod no_alloc(p);
  EXPECT_THROW((void)no_alloc.compress(context_for(1, "mlp.up_proj"), w.view(), stats), ConfigError);
}

TEST(LowRankMethod, UniformKvModeCompressesOnlyKvProjectionsAtTheirRankFraction) {
  // GQA k/v: 64 outputs (d_kv) from 128 inputs; kv ratio 0.5 → r = 32 = d_kv/2 (pitfall 14).
  const HostMatrix<float> wk = test::random_normal(64, 128, 101);
  const HostMatrix<float> wq = test::random_normal(128, 128, 102);
  const InputStats stats = stats_of(correlated_inputs(512, 128, 103), 4);
  AsvdParams p;
  p.param_ratio = 1.0;
  p.kv_ratio = 0.5;
  p.rank_search = RankSearch::kUniform;
  const LowRankMethod method(p);
  EXPECT_EQ(method.compress(context_for(0, "self_attn.k_proj"), wk.view(), stats).tensors.at("B").shape,
            (std::vector<int64_t>{32, 128}));
  EXPECT_TRUE(method.compress(context_for(0, "self_attn.q_proj"), wq.view(), stats).tensors.count("weight"));
}

TEST(LowRankMethod, NumericFailureKeepsTheDenseMatrix) {
  const int64_t m = 16, n = 24;
  const HostMatrix<float> w = test::random_normal(m, n, 111);
  InputStats stats = stats_of(correlated_inputs(128, n, 112), 2);
  stats.sum_xxt(3, 4) = std::nan("");
  AsvdParams p;
  p.method = LowRankKind::kSvdLlm;
  p.rank_search = RankSearch::kUniform;
  const CompressedUnit u = LowRankMethod(p).compress(context_for(0, "mlp.down_proj"), w.view(), stats);
  ASSERT_TRUE(u.tensors.count("weight"));
  bool flagged = false;
  for (const auto& [k, v] : u.metrics.extra) flagged |= (k == "dense_fallback" && v == 1.0);
  EXPECT_TRUE(flagged);
}

TEST(AsvdParams, ValidateReportsEveryProblemWithItsOption) {
  AsvdParams p;
  p.param_ratio = 1.5;
  p.alpha = -1;
  p.weight_candidates = {0.5, 0.4};
  try {
    p.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--param-ratio"), std::string::npos);
    EXPECT_NE(msg.find("--alpha"), std::string::npos);
    EXPECT_NE(msg.find("--sensitivity-candidates"), std::string::npos);
  }
  EXPECT_EQ(parse_low_rank_kind("SVD-LLM"), LowRankKind::kSvdLlm);
  EXPECT_EQ(parse_activation_scaling("abs_max"), ActivationScaling::kAbsMax);
  EXPECT_THROW((void)parse_rank_search("greedy"), ConfigError);
  EXPECT_EQ(AsvdParams{}.candidates(RankSearchMode::kWeights).size(), 6u);
}

TEST(AsvdParams, OptionsParseIntoTypedFields) {
  AsvdParams p;
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"method", "svdllm"}, {"param-ratio", "0.85"}, {"kv-ratio", "0.5"}, {"alpha", "1"},
           {"scaling", "abs-max"}, {"rank-search", "uniform"}, {"sensitivity-seqs", "16"},
           {"sensitivity-candidates", "0.5,0.7,0.9"}, {"kv-candidates", "0.2,0.4"}, {"sigma-fuse", "U"},
           {"svd-precision", "f64"}, {"scaling-floor", "0.01"}, {"whitening-damping", "0.001"}})
    apply_asvd_option(p, k, v);
  EXPECT_EQ(p.method, LowRankKind::kSvdLlm);
  EXPECT_DOUBLE_EQ(p.param_ratio, 0.85);
  EXPECT_DOUBLE_EQ(p.kv_ratio, 0.5);
  EXPECT_DOUBLE_EQ(p.alpha, 1.0);
  EXPECT_EQ(p.scaling, ActivationScaling::kAbsMax);
  EXPECT_EQ(p.rank_search, RankSearch::kUniform);
  EXPECT_EQ(p.sensitivity_sequences, 16);
  EXPECT_EQ(p.weight_candidates, (std::vector<double>{0.5, 0.7, 0.9}));
  EXPECT_EQ(p.kv_candidates, (std::vector<double>{0.2, 0.4}));
  EXPECT_EQ(p.sigma_fuse, SigmaFuse::kU);
  EXPECT_EQ(p.svd_precision, SvdPrecision::kF64);
  EXPECT_NO_THROW(p.validate());
  EXPECT_EQ(asvd_option_names().size(), 14u);
  EXPECT_THROW(apply_asvd_option(p, "param-ratio", "0.9x"), ConfigError);
  EXPECT_THROW(apply_asvd_option(p, "sensitivity-candidates", "0.5,,0.7"), ConfigError);
  EXPECT_THROW(apply_asvd_option(p, "rank", "8"), ConfigError);
  EXPECT_EQ(make_low_rank_method(p)->name(), "svdllm");
}

TEST(AsvdParams, ShippedPresetsParseAndValidate) {
  // configs/asvd-*.ini and svdllm-*.ini: `key = value` lines, `#` comments (cli/options.h format).
  const auto dir = test::data_dir().parent_path().parent_path() / "configs";
  int presets = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!(name.rfind("asvd-", 0) == 0 || name.rfind("svdllm-", 0) == 0)) continue;
    AsvdParams p;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      const auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      auto trim = [](std::string x) {
        x.erase(0, x.find_first_not_of(" \t"));
        x.erase(x.find_last_not_of(" \t") + 1);
        return x;
      };
      EXPECT_NO_THROW(apply_asvd_option(p, trim(line.substr(0, eq)), trim(line.substr(eq + 1)))) << name << ": " << line;
    }
    EXPECT_NO_THROW(p.validate()) << name;
    ++presets;
  }
  EXPECT_GE(presets, 10);
}

}  // namespace
}  // namespace caldera::algo
