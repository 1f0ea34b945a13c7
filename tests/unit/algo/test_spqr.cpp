// SpQR as a method: spqr.md §11's minimal plan (H = I reduces to RTN, b = 16 is the identity),
// outliers, the τ search, tensors, bit accounting, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <vector>

#include "algo/method_factory.h"
#include "algo/spqr.h"
#include "core/dtype.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

InputStats stats_from(HostMatrix<double> h) {
  InputStats s;
  s.sum_xxt = std::move(h);
  s.count = 1000;
  s.n_sequences = 4;
  return s;
}

InputStats identity_stats(int64_t n) {
  HostMatrix<double> h(n, n);
  for (int64_t j = 0; j < n; ++j) h(j, j) = 3.0;
  return stats_from(std::move(h));
}

InputStats correlated_stats(int64_t n, uint64_t seed) {
  HostMatrix<double> h = test::random_spd(n, 1e3, seed);
  const HostMatrix<double> g = test::random_normal_f64(1, n, seed + 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) h(i, j) *= std::exp(0.5 * g(0, i)) * std::exp(0.5 * g(0, j));
  return stats_from(std::move(h));
}

/// Weights with heavy-tailed entries, like real layers: normal, with a few large ones planted.
HostMatrix<float> heavy_tailed(int64_t m, int64_t n, uint64_t seed, int64_t planted) {
  HostMatrix<float> w = test::random_normal(m, n, seed);
  const HostMatrix<float> where = test::random_normal(planted, 2, seed + 100);
  for (int64_t k = 0; k < planted; ++k) {
    const int64_t i = static_cast<int64_t>(std::abs(where(k, 0)) * 1000.0f) % m;
    const int64_t j = static_cast<int64_t>(std::abs(where(k, 1)) * 1000.0f) % n;
    w(i, j) = 12.0f * (where(k, 0) > 0 ? 1.0f : -1.0f);
  }
  return w;
}

MethodContext context() { return MethodContext{test::cpu_backend(), Rng(3), UnitId{1, "self_attn.q_proj", 0}}; }

TEST(SpqrMethodTest, IdentityHessianNoOutliersOneGroupIsPerRowRoundToNearest) {
  // spqr.md §11: H = I, τ = ∞, β1 = n, no bilevel -> per-row RTN with the §4.1 quantizer.
  const int64_t m = 12, n = 40;
  const HostMatrix<float> w = test::random_normal(m, n, 31);
  SpqrParams p;
  p.bits = 3;
  p.group_size = n;
  p.stat_bits = 32;
  p.outlier_threshold = INFINITY;
  const SpqrResult r = spqr_quantize_matrix(test::cpu_backend(), w.cview(), identity_stats(n), p);
  EXPECT_EQ(r.encoding.outliers(), 0);
  for (int64_t i = 0; i < m; ++i) {
    float lo = w(i, 0), hi = w(i, 0);
    for (int64_t j = 0; j < n; ++j) {
      lo = std::min(lo, w(i, j));
      hi = std::max(hi, w(i, j));
    }
    const float s = (hi - lo) / 7.0f, z = -lo / s;  // zero NOT rounded, range NOT widened to 0
    for (int64_t j = 0; j < n; ++j) {
      const float q = std::clamp(std::nearbyint(w(i, j) / s + z), 0.0f, 7.0f);  // half to even
      EXPECT_EQ(r.w_hat(i, j), s * (q - z)) << i << "," << j;
    }
  }
}

TEST(SpqrMethodTest, SixteenBitCodesWithFp32StatisticsReproduceTheInput) {
  const int64_t m = 32, n = 64;
  const HostMatrix<float> w = test::random_normal(m, n, 8);
  SpqrParams p;
  p.bits = 16;
  p.stat_bits = 32;
  p.outlier_threshold = INFINITY;
  const SpqrResult r = spqr_quantize_matrix(test::cpu_backend(), w.cview(), correlated_stats(n, 8), p);
  // 16-bit grid over groups of 16: half a step is range/131070 ≈ 5e-5 here.
  double worst = 0;
  for (int64_t k = 0; k < w.size(); ++k) worst = std::max(worst, std::abs(double{r.w_hat.data()[k]} - w.data()[k]));
  EXPECT_LT(worst, 2e-4);
  EXPECT_LT(test::rel_diff(r.w_hat, w), 3e-5);
  // And the stored form decodes to the same (I16 codes).
  const TensorMap t = spqr_to_tensors(r.encoding);
  EXPECT_EQ(t.at("codes").dtype, DType::kI16);
  EXPECT_EQ(t.at("scales").dtype, DType::kF32);
  const auto method = make_spqr_method(p);
  EXPECT_EQ(method->reconstruct(test::cpu_backend(), t).storage(), r.w_hat.storage());
}

TEST(SpqrMethodTest, OutliersCutTheErrorAndStayWithinTheBudget) {
  const int64_t m = 64, n = 128;
  const HostMatrix<float> w = heavy_tailed(m, n, 17, 20);
  const InputStats s = correlated_stats(n, 17);
  SpqrParams p;  // 3/3/16/16
  p.outlier_threshold = INFINITY;
  const SpqrResult none = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  p.outlier_threshold = 0.2;
  p.outlier_max_rate = 0.05;
  const SpqrResult with = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  EXPECT_EQ(none.encoding.outliers(), 0);
  EXPECT_GT(with.encoding.outliers(), 0);
  EXPECT_LE(with.outlier_rate(), 0.05);
  const double e_none = hessian_relative_error(test::cpu_backend(), w.cview(), none.w_hat.cview(), s);
  const double e_with = hessian_relative_error(test::cpu_backend(), w.cview(), with.w_hat.cview(), s);
  EXPECT_LT(e_with, 0.8 * e_none) << "outliers " << with.encoding.outliers();
  // The planted ±12 weights are all kept as outliers (in permuted coordinates).
  const HostMatrix<float> big = test::random_normal(20, 2, 117);
  std::vector<int32_t> inv(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) inv[static_cast<size_t>(with.encoding.perm[static_cast<size_t>(j)])] = static_cast<int32_t>(j);
  for (int64_t k = 0; k < 20; ++k) {
    const int64_t i = static_cast<int64_t>(std::abs(big(k, 0)) * 1000.0f) % m;
    const int64_t j = inv[static_cast<size_t>(static_cast<int64_t>(std::abs(big(k, 1)) * 1000.0f) % n)];
    bool found = false;
    for (int32_t e = with.encoding.row_ptr[static_cast<size_t>(i)]; e < with.encoding.row_ptr[static_cast<size_t>(i + 1)]; ++e)
      found = found || with.encoding.outlier_cols[static_cast<size_t>(e)] == j;
    EXPECT_TRUE(found) << "planted weight (" << i << ", permuted col " << j << ")";
  }
}

TEST(SpqrMethodTest, TauSearchRaisesTauUntilTheRateFitsTheBudget) {
  const int64_t m = 32, n = 64;
  const HostMatrix<float> w = heavy_tailed(m, n, 23, 30);
  const InputStats s = correlated_stats(n, 23);
  SpqrParams p;
  p.outlier_threshold = 0.05;
  p.outlier_max_rate = 1.0;  // search off
  const SpqrResult free = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  ASSERT_GT(free.outlier_rate(), 0.01) << "test premise: τ = 0.05 extracts many outliers";
  EXPECT_EQ(free.runs, 1);
  p.outlier_max_rate = 0.01;
  const SpqrResult capped = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  EXPECT_LE(capped.outlier_rate(), 0.01);
  EXPECT_GT(capped.tau, 0.05);
  EXPECT_GT(capped.runs, 1);
  EXPECT_GT(capped.encoding.outliers(), 0);
  // A larger τ than the one found, still within budget, would keep no more outliers: the search
  // returned the smallest feasible τ on its path (within the 0.05 step).
  p.outlier_max_rate = 1.0;
  p.outlier_threshold = std::max(0.05, capped.tau - 0.05);
  const SpqrResult below = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  EXPECT_GE(below.encoding.outliers(), capped.encoding.outliers());
}

TEST(SpqrMethodTest, CompressStoresDocumentedTensorsAndDecodesBitExactly) {
  const int64_t m = 40, n = 72;  // partial row block (40 = 2·16 + 8) and column group (72 = 4·16 + 8)
  const HostMatrix<float> w = heavy_tailed(m, n, 41, 10);
  const InputStats s = correlated_stats(n, 41);
  SpqrParams p;
  p.bits = 4;
  const auto method = make_spqr_method(p);
  EXPECT_EQ(method->name(), "spqr");
  const CompressedUnit unit = method->compress(context(), w.cview(), s);
  const SpqrResult direct = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
  const HostMatrix<float> rec = method->reconstruct(test::cpu_backend(), unit.tensors);
  EXPECT_EQ(rec.storage(), direct.w_hat.storage());
  const int64_t nnz = direct.encoding.outliers();
  ASSERT_GT(nnz, 0);
  const int64_t groups = 5, blocks = 3;
  auto expect = [&](const char* name, DType dtype, std::vector<int64_t> shape) {
    const Tensor& t = unit.tensors.at(name);
    EXPECT_EQ(t.dtype, dtype) << name;
    EXPECT_EQ(t.shape, shape) << name;
  };
  expect("codes", DType::kI32, {m, (n * 4 + 31) / 32});      // 4-bit codes, bit-packed rows
  expect("scale_codes", DType::kI32, {m, (groups * 3 + 31) / 32});
  expect("zero_codes", DType::kI32, {m, (groups * 3 + 31) / 32});
  expect("shape", DType::kI64, {2});
  expect("format_version", DType::kI64, {});
  expect("scale_stats", DType::kF16, {blocks, groups, 2});
  expect("zero_stats", DType::kF16, {blocks, groups, 2});
  expect("outlier_row_ptr", DType::kI32, {m + 1});
  expect("outlier_cols", DType::kI16, {nnz});
  expect("outlier_values", DType::kF16, {nnz});
  expect("perm", DType::kI32, {n});
  EXPECT_EQ(unit.tensors.count("scales"), 0u);
  // Metrics: exact bits of every component; extras report the outliers.
  EXPECT_DOUBLE_EQ(unit.metrics.bits, 4.0 * m * n + 6.0 * m * groups + 64.0 * blocks * groups + 32.0 * nnz);
  auto extra = [&](const std::string& key) {
    for (const auto& [k, v] : unit.metrics.extra)
      if (k == key) return v;
    ADD_FAILURE() << "missing extra " << key;
    return -1.0;
  };
  EXPECT_EQ(extra("outliers"), static_cast<double>(nnz));
  EXPECT_DOUBLE_EQ(extra("outlier_rate"), static_cast<double>(nnz) / static_cast<double>(m * n));
  EXPECT_DOUBLE_EQ(extra("physical_bits"), unit.metrics.bits + 32.0 * (m + 1) + 16.0 * n);
  EXPECT_NEAR(unit.metrics.rel_error, hessian_relative_error(test::cpu_backend(), w.cview(), rec.cview(), s), 1e-12);
  // Deterministic: the same inputs give byte-identical tensors.
  const CompressedUnit again = method->compress(context(), w.cview(), s);
  for (const auto& [name, t] : unit.tensors) EXPECT_EQ(again.tensors.at(name).bytes, t.bytes) << name;
}

TEST(SpqrMethodTest, NoOutliersOnDivisibleShapeGivesTheNominalAverageBits) {
  const int64_t m = 32, n = 64;
  SpqrParams p;  // 3/3/16/16 -> 3.625
  p.outlier_threshold = INFINITY;
  const CompressedUnit unit =
      make_spqr_method(p)->compress(context(), test::random_normal(m, n, 2).cview(), correlated_stats(n, 2));
  EXPECT_DOUBLE_EQ(unit.metrics.bits / (m * n), 3.625);
  p.bits = 4;  // the near-lossless shape, 4/3/3/16/16
  const CompressedUnit nl =
      make_spqr_method(p)->compress(context(), test::random_normal(m, n, 2).cview(), correlated_stats(n, 2));
  EXPECT_DOUBLE_EQ(nl.metrics.bits / (m * n), 4.625);
}

TEST(SpqrMethodTest, SmallerErrorThanPlainBilevelAtMoreBits) {
  // More weight bits, and outliers, both lower the error on the same matrix.
  const int64_t m = 48, n = 96;
  const HostMatrix<float> w = heavy_tailed(m, n, 5, 15);
  const InputStats s = correlated_stats(n, 5);
  auto err = [&](int bits, double tau) {
    SpqrParams p;
    p.bits = bits;
    p.outlier_threshold = tau;
    const SpqrResult r = spqr_quantize_matrix(test::cpu_backend(), w.cview(), s, p);
    return hessian_relative_error(test::cpu_backend(), w.cview(), r.w_hat.cview(), s);
  };
  EXPECT_LT(err(3, 0.2), err(3, INFINITY));
  EXPECT_LT(err(4, INFINITY), err(3, INFINITY));
  EXPECT_LT(err(4, 0.2), err(4, INFINITY));
}

TEST(SpqrMethodTest, InvalidParametersAndMalformedTensorsAreRejected) {
  SpqrParams bad;
  bad.bits = 1;
  bad.stat_bits = 12;
  bad.group_size = 0;
  bad.outlier_threshold = -1;
  try {
    bad.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const char* opt : {"--bits", "--stat-bits", "--group-size", "--outlier-threshold"})
      EXPECT_NE(msg.find(opt), std::string::npos) << opt << " not in: " << msg;
  }
  const int64_t n = 32;
  SpqrParams p;
  const auto method = make_spqr_method(p);
  const TensorMap good = method->compress(context(), heavy_tailed(16, n, 3, 4).cview(), correlated_stats(n, 3)).tensors;
  auto broken = [&](auto mutate) {
    TensorMap t = good;
    mutate(t);
    return t;
  };
  EXPECT_NO_THROW(method->reconstruct(test::cpu_backend(), good));
  ASSERT_GT(good.at("outlier_values").numel(), 0) << "test premise: some outliers";
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t.erase("zero_stats"); })), IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["outlier_row_ptr"].as_mut<int32_t>()[16] += 1; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["stat_bits"].as_mut<int64_t>()[0] = 12; })),
               IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["codes"].shape[0] -= 1; })), IoError);
  EXPECT_THROW(method->reconstruct(test::cpu_backend(), broken([](TensorMap& t) { t["outlier_cols"].as_mut<uint16_t>()[0] = 40; })),
               IoError);
}


/// `key = value` lines of an INI preset (no sections; '#' comments), in order.
std::vector<std::pair<std::string, std::string>> read_preset(const std::string& name) {
  const auto path = test::data_dir() / ".." / ".." / "configs" / name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<std::pair<std::string, std::string>> kv;
  std::string line;
  auto trim = [](std::string t) {
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    return t;
  };
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const auto eq = line.find('=');
    kv.emplace_back(trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
  }
  return kv;
}

TEST(SpqrFactory, PresetsBuildTheDocumentedConfigurations) {
  auto load = [](const std::string& name) {
    MethodConfig c;
    for (const auto& [k, v] : read_preset(name)) apply_method_option(c, k, v);  // "method" comes first
    return c;
  };
  const MethodConfig nl = load("spqr-near-lossless.ini");
  EXPECT_EQ(nl.method, MethodKind::kSpqr);
  EXPECT_DOUBLE_EQ(spqr_average_bits(nl.spqr.format(), 0.0), 4.625);
  EXPECT_DOUBLE_EQ(nl.spqr.percdamp, 1.0);
  EXPECT_EQ(make_method(nl)->name(), "spqr");
  const MethodConfig s3 = load("spqr-3bit.ini");
  EXPECT_DOUBLE_EQ(spqr_average_bits(s3.spqr.format(), 0.0), 3.875);
  EXPECT_EQ(s3.spqr.order, ColumnOrder::kActOrder);
  const MethodConfig g4 = load("gptq-4bit-g128.ini"), g3 = load("gptq-3bit-g128.ini");
  EXPECT_EQ(g4.method, MethodKind::kGptq);
  EXPECT_EQ(g4.gptq.bits, 4);
  EXPECT_EQ(g3.gptq.bits, 3);
  EXPECT_EQ(g3.gptq.group_size, 128);
  EXPECT_EQ(make_method(g4)->name(), "gptq");
}

TEST(SpqrFactory, OptionsParseAndProblemsNameThem) {
  MethodConfig c;
  apply_method_option(c, "method", "spqr");
  apply_method_option(c, "outlier-threshold", "inf");
  apply_method_option(c, "simplified-outliers", "on");
  apply_method_option(c, "act-order", "off");
  EXPECT_TRUE(std::isinf(c.spqr.outlier_threshold));
  EXPECT_EQ(c.spqr.outlier_selection, OutlierSelection::kSimplified);
  EXPECT_EQ(c.spqr.order, ColumnOrder::kIdentity);
  EXPECT_THROW(apply_method_option(c, "act-order", "maybe"), ConfigError);
  apply_method_option(c, "stat-bits", "12");
  apply_method_option(c, "percdamp", "-1");
  const auto problems = c.problems();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("--stat-bits"), std::string::npos);
  EXPECT_NE(problems[1].find("--percdamp"), std::string::npos);
  EXPECT_THROW(make_method(c), ConfigError);
  std::map<std::string, std::string> params;
  apply_method_option(c, "method", "gptq");
  apply_method_option(c, "group-size", "0");
  for (const auto& [k, v] : make_method(c)->parameters()) params[k] = v;
  EXPECT_EQ(params["group_size"], "0");
  EXPECT_EQ(params["bits"], "4");
}

}  // namespace
}  // namespace caldera::algo
