// GPTQ engine (spqr.md §3) and the plain GPTQ baseline method.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "algo/gptq.h"
#include "algo/gptq_core.h"
#include "core/dtype.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

InputStats stats_from(HostMatrix<double> h, int64_t n_sequences = 4) {
  InputStats s;
  s.sum_xxt = std::move(h);
  s.count = 1000;
  s.n_sequences = n_sequences;
  return s;
}

/// Σxxᵀ with correlated inputs and unequal channel scales: D·S·D, S a random SPD matrix.
InputStats correlated_stats(int64_t n, uint64_t seed) {
  HostMatrix<double> h = test::random_spd(n, 1e3, seed);
  const HostMatrix<double> g = test::random_normal_f64(1, n, seed + 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) h(i, j) *= std::exp(0.5 * g(0, i)) * std::exp(0.5 * g(0, j));
  return stats_from(std::move(h));
}

/// tr(ΔHΔᵀ) in fp64 with the raw Σxxᵀ (the GPTQ proxy loss).
double proxy_loss(const HostMatrix<float>& w, const HostMatrix<float>& w_hat, const HostMatrix<double>& h) {
  HostMatrix<double> delta(w.rows(), w.cols());
  for (int64_t k = 0; k < w.size(); ++k) delta.data()[k] = static_cast<double>(w_hat.data()[k]) - w.data()[k];
  const HostMatrix<double> dh = test::matmul(delta.cview(), h.cview());
  double t = 0;
  for (int64_t k = 0; k < delta.size(); ++k) t += dh.data()[k] * delta.data()[k];
  return t;
}

MethodContext context() { return MethodContext{test::cpu_backend(), Rng(7), UnitId{0, "mlp.down_proj", 6}}; }

TEST(GptqHessian, ActOrderSortsDiagonalDescendingAndMarksDeadColumns) {
  HostMatrix<double> h(5, 5);
  const double diag[] = {1, 3, 3, 0, 2};
  for (int j = 0; j < 5; ++j) h(j, j) = diag[j];
  GptqHessianOptions opt;
  opt.percdamp = 0.5;
  const GptqHessian p = prepare_gptq_hessian(test::cpu_backend(), stats_from(h, 2), opt);
  EXPECT_EQ((std::vector<int32_t>{1, 2, 4, 0, 3}), p.perm);  // ties keep the lower index first
  EXPECT_EQ((std::vector<uint8_t>{0, 0, 0, 0, 1}), p.dead);
  // H = (2/2)·Σ; λ = 0.5·mean|diag| = 0.9; U = diag(1/sqrt(H_jj + λ)), dead column -> 1.
  const double expect[] = {1 / std::sqrt(3.9), 1 / std::sqrt(3.9), 1 / std::sqrt(2.9), 1 / std::sqrt(1.9), 1.0};
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(p.d[static_cast<size_t>(j)], expect[j], 1e-6) << j;
  EXPECT_DOUBLE_EQ(p.percdamp_used, 0.5);

  opt.order = ColumnOrder::kIdentity;
  EXPECT_EQ((std::vector<int32_t>{0, 1, 2, 3, 4}), prepare_gptq_hessian(test::cpu_backend(), stats_from(h, 2), opt).perm);
}

TEST(GptqHessian, FactorIsTheUpperCholeskyOfTheDampedInverse) {
  const int64_t n = 24;
  const InputStats s = correlated_stats(n, 3);
  GptqHessianOptions opt;
  opt.percdamp = 0.1;
  const GptqHessian p = prepare_gptq_hessian(test::cpu_backend(), s, opt);
  // Rebuild the permuted, damped H of §3.1-§3.3 and check (L Lᵀ)·H = I with L = chol_inv.
  HostMatrix<double> hp(n, n);
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) mean += 2.0 / 4 * s.sum_xxt(j, j) / n;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) hp(i, j) = 2.0 / 4 * s.sum_xxt(p.perm[static_cast<size_t>(i)], p.perm[static_cast<size_t>(j)]);
  for (int64_t j = 0; j < n; ++j) hp(j, j) += 0.1 * mean;
  const HostMatrix<float> lf = test::cpu_backend().download(p.chol_inv);
  HostMatrix<double> l(n, n);
  for (int64_t k = 0; k < l.size(); ++k) l.data()[k] = lf.data()[k];
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(l(i, i), p.d[static_cast<size_t>(i)], 1e-7);
    for (int64_t j = i + 1; j < n; ++j) EXPECT_EQ(l(i, j), 0.0);
  }
  const HostMatrix<double> hinv = test::matmul(l.cview(), l.cview(), linalg::Op::kNoTrans, linalg::Op::kTrans);
  const HostMatrix<double> eye = test::matmul(hinv.cview(), hp.cview());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) EXPECT_NEAR(eye(i, j), i == j ? 1.0 : 0.0, 1e-4);
  // act_order: the permuted diagonal is non-increasing.
  for (int64_t j = 1; j < n; ++j) EXPECT_GE(hp(j - 1, j - 1), hp(j, j) - 1e-12);
}

TEST(GptqHessian, IndefiniteInputRaisesDampingTenfoldUntilItFactorises) {
  // [[1, 2], [2, 1]] has eigenvalues 3 and −1: λ = 0.01, 0.1 and 1 (singular) fail, 10 works.
  const HostMatrix<double> h(2, 2, {1, 2, 2, 1});
  GptqHessianOptions opt;
  opt.percdamp = 0.01;
  const GptqHessian p = prepare_gptq_hessian(test::cpu_backend(), stats_from(h), opt);
  EXPECT_NEAR(p.percdamp_used, 10.0, 1e-9);
  opt.max_damping_retries = 2;
  EXPECT_THROW(prepare_gptq_hessian(test::cpu_backend(), stats_from(h), opt), NumericError);
  opt.percdamp = 0;
  EXPECT_THROW(prepare_gptq_hessian(test::cpu_backend(), stats_from(h), opt), ConfigError);
}

TEST(GptqPermutation, PermuteThenUnpermuteIsIdentityAndDeadColumnsAreZeroed) {
  const HostMatrix<float> w = test::random_normal(3, 5, 1);
  const std::vector<int32_t> perm = {3, 0, 4, 1, 2};
  const HostMatrix<float> p = permute_columns(w.cview(), perm, std::vector<uint8_t>(5, 0));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(p(i, j), w(i, perm[static_cast<size_t>(j)]));
  const HostMatrix<float> back = unpermute_columns(p.cview(), perm);
  EXPECT_EQ(back.storage(), w.storage());
  const HostMatrix<float> dead = permute_columns(w.cview(), perm, std::vector<uint8_t>{0, 1, 0, 0, 0});
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(dead(i, 1), 0.0f);
  EXPECT_THROW(check_permutation(std::vector<int32_t>{0, 2, 2}, 3, "test"), IoError);
  EXPECT_THROW(check_permutation(std::vector<int32_t>{0, 1, 3}, 3, "test"), IoError);
  EXPECT_THROW(check_permutation(std::vector<int32_t>{0, 1}, 3, "test"), IoError);
}

TEST(GptqLoop, EffectiveBlockSizeNestsGroupsAndBlocks) {
  EXPECT_EQ(effective_block_size(128, 16, 1000), 128);
  EXPECT_EQ(effective_block_size(128, 256, 1000), 128);
  EXPECT_EQ(effective_block_size(128, 2000, 1000), 128);
  EXPECT_EQ(effective_block_size(128, 48, 1000), 144);
  EXPECT_EQ(effective_block_size(128, 200, 1000), 200);
}

TEST(GptqMethodTest, IdentityHessianGivesRoundToNearestOnGptqGrid) {
  const int64_t m = 16, n = 96, group = 32;
  HostMatrix<double> eye(n, n);
  for (int64_t j = 0; j < n; ++j) eye(j, j) = 5.0;
  const HostMatrix<float> w = test::random_normal(m, n, 21);
  GptqParams params;
  params.bits = 3;
  params.group_size = group;
  const GptqResult r = gptq_quantize_matrix(test::cpu_backend(), w.cview(), stats_from(eye), params);
  EXPECT_EQ(r.encoding.perm, [&] {
    std::vector<int32_t> id(static_cast<size_t>(n));
    std::iota(id.begin(), id.end(), 0);
    return id;
  }());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g0 = 0; g0 < n; g0 += group) {
      float lo = 0, hi = 0;
      for (int64_t j = g0; j < g0 + group; ++j) {
        lo = std::min(lo, w(i, j));
        hi = std::max(hi, w(i, j));
      }
      // Zero point from the exact scale, codes with the scale rounded to its stored fp16.
      const float exact = (hi - lo) / 7.0f;
      const float zero = std::nearbyint(-lo / exact);
      const float scale = f16_to_f32(f32_to_f16(exact));
      for (int64_t j = g0; j < g0 + group; ++j) {
        const float q = std::clamp(std::nearbyint(w(i, j) / scale + zero), 0.0f, 7.0f);
        EXPECT_EQ(r.w_hat(i, j), scale * (q - zero)) << i << "," << j;
      }
    }
}

TEST(GptqMethodTest, LowerProxyLossThanRoundToNearestOnCorrelatedHessian) {
  const int64_t m = 48, n = 128;
  const InputStats s = correlated_stats(n, 9);
  HostMatrix<double> eye(n, n);
  for (int64_t j = 0; j < n; ++j) eye(j, j) = 1.0;
  const HostMatrix<float> w = test::random_normal(m, n, 10);
  for (int bits : {2, 3, 4}) {
    GptqParams params;
    params.bits = bits;
    params.group_size = 32;
    params.order = ColumnOrder::kIdentity;  // same groups for both
    const GptqResult gptq = gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, params);
    const GptqResult rtn = gptq_quantize_matrix(test::cpu_backend(), w.cview(), stats_from(eye), params);
    const double lg = proxy_loss(w, gptq.w_hat, s.sum_xxt), lr = proxy_loss(w, rtn.w_hat, s.sum_xxt);
    EXPECT_LT(lg, 0.8 * lr) << bits << " bits: GPTQ " << lg << " vs RTN " << lr;
    params.order = ColumnOrder::kActOrder;
    const double la = proxy_loss(w, gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, params).w_hat, s.sum_xxt);
    EXPECT_LT(la, lr) << bits << " bits, act_order";
  }
}

TEST(GptqMethodTest, BlockSizeChangesNothingButRoundOff) {
  const int64_t m = 32, n = 160;
  const InputStats s = correlated_stats(n, 4);
  const HostMatrix<float> w = test::random_normal(m, n, 5);
  for (int64_t group : {int64_t{16}, int64_t{64}, int64_t{0}}) {
    GptqParams params;
    params.bits = 4;
    params.group_size = group;
    params.block_size = 128;
    const GptqResult ref = gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, params);
    for (int64_t block : {int64_t{8}, int64_t{16}, int64_t{48}}) {
      params.block_size = block;
      const GptqResult r = gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, params);
      int64_t same = 0;
      for (size_t k = 0; k < r.encoding.codes.size(); ++k) same += r.encoding.codes[k] == ref.encoding.codes[k];
      EXPECT_GE(static_cast<double>(same), 0.995 * static_cast<double>(m * n)) << "group " << group << " block " << block;
      EXPECT_LT(test::rel_diff(r.w_hat, ref.w_hat), 2e-3) << "group " << group << " block " << block;
    }
  }
}

TEST(GptqMethodTest, CompressReconstructRoundTripMetricsAndDeterminism) {
  const int64_t m = 24, n = 80;
  InputStats s = correlated_stats(n, 12);
  for (int64_t j = 0; j < n; ++j) {  // column 5 never sees input: dead
    s.sum_xxt(5, j) = 0;
    s.sum_xxt(j, 5) = 0;
  }
  const HostMatrix<float> w = test::random_normal(m, n, 13);
  GptqParams params;
  params.bits = 3;
  params.group_size = 32;  // 80 = 2 full groups + one of 16
  const auto method = make_gptq_method(params);
  EXPECT_EQ(method->name(), "gptq");
  const CompressedUnit unit = method->compress(context(), w.cview(), s);
  const HostMatrix<float> rec = method->reconstruct(test::cpu_backend(), unit.tensors);
  const GptqResult direct = gptq_quantize_matrix(test::cpu_backend(), w.cview(), s, params);
  EXPECT_EQ(rec.storage(), direct.w_hat.storage());  // decode == simulation, bit for bit
  for (int64_t i = 0; i < m; ++i) EXPECT_EQ(rec(i, 5), 0.0f);
  EXPECT_NEAR(unit.metrics.rel_error, hessian_relative_error(test::cpu_backend(), w.cview(), rec.cview(), s), 1e-12);
  EXPECT_GT(unit.metrics.rel_error, 0.0);
  EXPECT_LT(unit.metrics.rel_error, 0.5);
  EXPECT_DOUBLE_EQ(unit.metrics.bits, 3.0 * m * n + 19.0 * m * 3);
  const Tensor& codes = unit.tensors.at("codes");
  EXPECT_EQ(codes.dtype, DType::kI32);
  EXPECT_EQ((std::vector<int64_t>{m, (n * 3 + 31) / 32}), codes.shape);  // bit-packed rows
  EXPECT_EQ((std::vector<int64_t>{m, 1}), unit.tensors.at("zeros").shape);  // 3 zeros × 3 bits
  EXPECT_EQ((std::vector<int64_t>{m, n}), std::vector<int64_t>(unit.tensors.at("shape").as<int64_t>(),
                                                               unit.tensors.at("shape").as<int64_t>() + 2));
  EXPECT_EQ((std::vector<int64_t>{m, 3}), unit.tensors.at("scales").shape);
  EXPECT_EQ(unit.tensors.at("scales").dtype, DType::kF16);
  EXPECT_EQ(unit.tensors.at("perm").dtype, DType::kI32);
  const CompressedUnit again = method->compress(context(), w.cview(), s);
  ASSERT_EQ(again.tensors.size(), unit.tensors.size());
  for (const auto& [name, t] : unit.tensors) EXPECT_EQ(again.tensors.at(name).bytes, t.bytes) << name;
}

TEST(GptqMethodTest, RelativeErrorUsesTheProcessedHessian) {
  // H = diag(1, 3): mean diagonal 2 -> diag(0.5, 1.5) + 0.01. W = [1 1], Ŵ = [1 0]:
  // tr(ΔHΔᵀ) = 1.51, tr(WHWᵀ) = 0.51 + 1.51.
  HostMatrix<double> h(2, 2);
  h(0, 0) = 1;
  h(1, 1) = 3;
  const HostMatrix<float> w(1, 2, {1, 1}), w_hat(1, 2, {1, 0});
  EXPECT_NEAR(hessian_relative_error(test::cpu_backend(), w.cview(), w_hat.cview(), stats_from(h)),
              std::sqrt(1.51 / 2.02), 1e-7);
}

TEST(GptqMethodTest, InvalidParametersAreAllReportedAtOnce) {
  GptqParams p;
  p.bits = 1;
  p.group_size = -3;
  p.percdamp = 0;
  try {
    p.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--bits"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--group-size"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--percdamp"), std::string::npos) << msg;
  }
  EXPECT_THROW(make_gptq_method(p), ConfigError);
}

TEST(GptqMethodTest, MalformedUnitTensorsAreRejected) {
  const int64_t n = 32;
  const HostMatrix<float> w = test::random_normal(8, n, 2);
  GptqParams params;
  params.group_size = 16;
  const auto method = make_gptq_method(params);
  const TensorMap good = method->compress(context(), w.cview(), correlated_stats(n, 2)).tensors;
  auto broken = [&](auto mutate) {
    TensorMap t = good;
    mutate(t);
    return t;
  };
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t.erase("scales"); })), IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["zeros"].dtype = DType::kI8; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["perm"].as_mut<int32_t>()[0] = 1; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["codes"].shape[1] += 1; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["shape"].as_mut<int64_t>()[1] = 33; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["bits"] = make_tensor<double>(DType::kF64, {}, std::vector<double>{4.0}.data()); })),
               IoError);
}

}  // namespace
}  // namespace caldera::algo
