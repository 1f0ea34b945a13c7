// Block LDL (spec §3.3) and LDLQ with tune sweeps (§3.4-§3.6) on the CPU backend: reconstruction,
// the feedback identity, agreement with the unbuffered definition, loss below nearest rounding,
// monotone tune sweeps, determinism across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/lattice.h"
#include "quant/ldl.h"
#include "quant/ldlq.h"
#include "quant/rht.h"
#include "quant/scalar.h"
#include "quant_test_data.h"
#include "test_util.h"

namespace caldera::quant {
namespace {

using linalg::Backend;
using linalg::BackendKind;
using linalg::Op;

/// Loss of plain nearest rounding of x (no feedback).
double nearest_loss(Backend& be, const linalg::Matrix<float>& x, const linalg::Matrix<float>& h, LatticeCodebook cb) {
  auto xhat = be.make<float>(x.rows(), x.cols(), "nearest");
  auto codes = be.make<uint32_t>(x.rows(), x.cols() / 8, "codes");
  lattice_quantize(be, x.cview(), cb, lattice_default_residual_scale(cb), xhat.view(), codes.view());
  return proxy_loss(be, x.cview(), xhat.cview(), h.cview());
}

TEST(BlockLdl, ReconstructsTheHessian) {
  auto& be = test::cpu_backend();
  const int64_t n = 200;
  const auto hh = test::correlated_hessian(n, 1e4, 1);
  auto h = be.upload(hh.cview(), "h");
  const BlockLdl ldl = block_ldl(be, h.cview());
  EXPECT_FALSE(ldl.used_fp64);
  const auto l = be.download(ldl.l);
  const auto d = be.download(ldl.d);
  // 𝐋: identity diagonal blocks, zero above.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (i / 8 == j / 8) {
        ASSERT_EQ(l(i, j), i == j ? 1.0f : 0.0f) << i << "," << j;
      }
      if (j / 8 > i / 8) {
        ASSERT_EQ(l(i, j), 0.0f) << i << "," << j;
      }
    }
  // 𝐋 D 𝐋ᵀ == H'.
  HostMatrix<double> ld(n, n), dd(n, n), ref(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      ld(i, j) = l(i, j);
      ref(i, j) = hh(i, j);
      if (i / 8 == j / 8) dd(i, j) = d(i, j % 8);
    }
  const auto rec = test::matmul(test::matmul(ld.cview(), dd.cview()).cview(), ld.cview(), Op::kNoTrans, Op::kTrans);
  EXPECT_LT(test::rel_diff(rec, ref), 1e-5);
  // (H'_jj)⁻¹ H'_jj == I.
  const auto hinv = be.download(ldl.hjj_inv);
  for (int64_t j = 0; j < n / 8; ++j)
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c) {
        double s = 0;
        for (int q = 0; q < 8; ++q) s += static_cast<double>(hinv(8 * j + r, q)) * hh(8 * j + q, 8 * j + c);
        ASSERT_NEAR(s, r == c ? 1.0 : 0.0, 1e-4);
      }
}

TEST(BlockLdl, RetriesInFp64WhenTheFp32CholeskyFails) {
  auto& be = test::cpu_backend();
  // Condition 1e9 rounded to fp32: positive definite, but the fp32 factorization usually breaks
  // down. Take the first seed for which it does on this BLAS.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const auto hh = test::cast_matrix<float>(test::random_spd(64, 1e9, seed));
    auto probe = be.upload(hh.cview(), "probe");
    bool fp32_fails = false;
    try {
      be.cholesky(probe.view());
      fp32_fails = !be.all_finite(probe.cview());
    } catch (const NumericError&) {
      fp32_fails = true;
    }
    if (!fp32_fails) continue;
    auto h = be.upload(hh.cview(), "h");
    const BlockLdl ldl = block_ldl(be, h.cview());
    EXPECT_TRUE(ldl.used_fp64);
    EXPECT_TRUE(be.all_finite(ldl.l.cview()));
    return;
  }
  GTEST_SKIP() << "no test matrix made the fp32 Cholesky fail on this BLAS";
}

TEST(BlockLdl, IndefiniteMatrixThrowsNumericError) {
  auto& be = test::cpu_backend();
  auto hh = test::correlated_hessian(64, 10, 2);
  hh(5, 5) = -1.0f;
  auto h = be.upload(hh.cview(), "h");
  EXPECT_THROW((void)block_ldl(be, h.cview()), NumericError);
  auto bad = be.make<float>(12, 12, "bad");
  EXPECT_THROW((void)block_ldl(be, bad.cview()), Error);
}

/// §3.5 without panels, in double on the host, with 𝒬 = the lattice codec: the definition the
/// panel driver must reproduce up to float rounding.
struct Reference {
  HostMatrix<float> what;
  HostMatrix<uint32_t> codes;
};
Reference reference_ldlq(const HostMatrix<float>& x, const HostMatrix<float>& h, const HostMatrix<float>& l,
                         const HostMatrix<float>& hinv, LatticeCodebook cb, int tune) {
  const int64_t m = x.rows(), n = x.cols(), nb = n / 8;
  const float rs = lattice_default_residual_scale(cb);
  Reference r{HostMatrix<float>(m, n), HostMatrix<uint32_t>(m, nb)};
  for (int64_t j = nb - 1; j >= 0; --j)
    for (int64_t i = 0; i < m; ++i) {
      float t[8];
      for (int c = 0; c < 8; ++c) {
        double s = x(i, 8 * j + c);
        for (int64_t k = 8 * (j + 1); k < n; ++k) s += (static_cast<double>(x(i, k)) - r.what(i, k)) * l(k, 8 * j + c);
        t[c] = static_cast<float>(s);
      }
      r.codes(i, j) = e8p::lattice_encode8(cb, rs, t, &r.what(i, 8 * j));
    }
  for (int it = 0; it < tune; ++it)
    for (int64_t j = nb - 1; j >= 0; --j)
      for (int64_t i = 0; i < m; ++i) {
        double g[8] = {};
        for (int c = 0; c < 8; ++c)
          for (int64_t k = 0; k < n; ++k) g[c] += (static_cast<double>(x(i, k)) - r.what(i, k)) * h(k, 8 * j + c);
        float t[8];
        for (int c = 0; c < 8; ++c) {
          double s = r.what(i, 8 * j + c);
          for (int q = 0; q < 8; ++q) s += g[q] * hinv(8 * j + q, c);
          t[c] = static_cast<float>(s);
        }
        r.codes(i, j) = e8p::lattice_encode8(cb, rs, t, &r.what(i, 8 * j));
      }
  return r;
}

class LdlqTest : public ::testing::Test {
 protected:
  void make(int64_t m, int64_t n, uint64_t seed, double condition = 1e4) {
    auto& be = test::cpu_backend();
    xh_ = test::scaled_normal(m, n, 1.03f, seed);
    hh_ = test::correlated_hessian(n, condition, seed + 1);
    x_ = be.upload(xh_.cview(), "x");
    h_ = be.upload(hh_.cview(), "h");
    ldl_ = block_ldl(be, h_.cview());
  }
  HostMatrix<float> xh_, hh_;
  linalg::Matrix<float> x_, h_;
  BlockLdl ldl_;
};

TEST_F(LdlqTest, PanelDriverMatchesTheUnbufferedDefinition) {
  auto& be = test::cpu_backend();
  make(24, 328, 31);  // panels of 128, 128, 72 columns
  const auto l = be.download(ldl_.l);
  const auto hinv = be.download(ldl_.hjj_inv);
  for (int tune : {0, 2}) {
    const auto r = ldlq(be, x_.cview(), h_.cview(), ldl_, LdlqQuantizer::lattice(LatticeCodebook::kE8P12), tune);
    const auto ref = reference_ldlq(xh_, hh_, l, hinv, LatticeCodebook::kE8P12, tune);
    const auto codes = be.download(r.codes);
    int64_t same = 0;
    for (int64_t i = 0; i < codes.size(); ++i) same += codes.data()[i] == ref.codes.data()[i];
    // Only float-vs-double summation differences may flip near-ties.
    EXPECT_GE(static_cast<double>(same) / codes.size(), 0.99) << "tune " << tune;
    auto refw = be.upload(ref.what.cview(), "ref");
    const double l_got = proxy_loss(be, x_.cview(), r.what.cview(), h_.cview());
    const double l_ref = proxy_loss(be, x_.cview(), refw.cview(), h_.cview());
    EXPECT_NEAR(l_got, l_ref, 1e-3 * l_ref) << "tune " << tune;
    // Ŵ and the codes agree.
    const auto w = be.download(r.what);
    for (int64_t i = 0; i < 24; ++i)
      for (int64_t b = 0; b < 41; ++b) {
        float d[8];
        e8p::e8p_decode(codes(i, b), d);
        for (int c = 0; c < 8; ++c) ASSERT_EQ(w(i, 8 * b + c), d[c]);
      }
  }
}

TEST_F(LdlqTest, FeedbackIdentityAfterTheInitialPass) {
  auto& be = test::cpu_backend();
  make(32, 256, 41);
  const auto r = ldlq(be, x_.cview(), h_.cview(), ldl_, LdlqQuantizer::lattice(LatticeCodebook::kE8P12), 0);
  // E = (X − Ŵ) 𝐋 holds the per-block rounding errors: Ŵ_j = 𝒬(Ŵ_j + E_j).
  auto res = be.clone(x_.cview(), "res");
  be.axpby(-1.0f, r.what.cview(), 1.0f, res.view());
  auto e = be.make<float>(32, 256, "E");
  be.gemm(Op::kNoTrans, Op::kNoTrans, 1.0f, res.cview(), ldl_.l.cview(), 0.0f, e.view());
  auto t = be.clone(e.cview(), "T");
  be.axpby(1.0f, r.what.cview(), 1.0f, t.view());
  auto codes = be.make<uint32_t>(32, 32, "codes");
  lattice_quantize(be, t.cview(), LatticeCodebook::kE8P12, 0.0f, {}, codes.view());
  const auto c1 = be.download(codes), c0 = be.download(r.codes);
  int64_t same = 0;
  for (int64_t i = 0; i < c1.size(); ++i) same += c1.data()[i] == c0.data()[i];
  EXPECT_GE(static_cast<double>(same) / c1.size(), 0.995);
  // tr((X−Ŵ)H'(X−Ŵ)ᵀ) = tr(E D Eᵀ).
  const auto eh = be.download(e);
  const auto d = be.download(ldl_.d);
  double ede = 0;
  for (int64_t i = 0; i < 32; ++i)
    for (int64_t j = 0; j < 32; ++j)
      for (int a = 0; a < 8; ++a)
        for (int b = 0; b < 8; ++b) ede += static_cast<double>(eh(i, 8 * j + a)) * d(8 * j + a, b) * eh(i, 8 * j + b);
  const double loss = proxy_loss(be, x_.cview(), r.what.cview(), h_.cview());
  EXPECT_NEAR(ede, loss, 1e-4 * loss);
}

// A tune step rounds the block optimum in the Euclidean metric, not in H'_jj's, so a single sweep
// is not guaranteed to lower the loss; measured increases stay below 1% and the sweeps lower it
// overall (the reference behaves the same way).
TEST_F(LdlqTest, BeatsNearestRoundingAndTuneSweepsLowerTheLoss) {
  auto& be = test::cpu_backend();
  make(64, 256, 51);
  for (auto cb : {LatticeCodebook::kE8P12, LatticeCodebook::kE8P12RVQ4B}) {
    const double nearest = nearest_loss(be, x_, h_, cb);
    std::vector<double> losses;
    for (int tune = 0; tune <= 4; ++tune) {
      const auto r = ldlq(be, x_.cview(), h_.cview(), ldl_, LdlqQuantizer::lattice(cb), tune);
      losses.push_back(proxy_loss(be, x_.cview(), r.what.cview(), h_.cview()));
      EXPECT_LT(losses.back(), nearest) << "tune " << tune;
      if (tune > 0) {
        EXPECT_LE(losses[tune], losses[tune - 1] * 1.02) << "tune " << tune;
      }
    }
    EXPECT_LT(losses[0], 0.8 * nearest);
    EXPECT_LT(losses[4], 0.97 * losses[0]);
    EXPECT_LT(losses[1], losses[0]);
  }
}

TEST_F(LdlqTest, AfterRhtAsInCaldera) {
  auto& be = test::cpu_backend();
  make(64, 704, 61, 1e5);
  const auto signs = make_rht_signs(Rng(3).stream({0, 0}), 64, 704);
  auto wr = rht_weight(be, x_.cview(), signs);
  auto hr = rht_hessian(be, h_.cview(), signs);
  const BlockLdl ldl = block_ldl(be, hr.cview());
  LatticeLdlqOptions opts;
  opts.tune_iters = 3;
  const auto q = ldlq_lattice_scaled(be, wr.cview(), hr.cview(), ldl, opts);
  EXPECT_NEAR(q.scale, 1.03 / 1.03, 0.05);  // RMS(W) = 1.03, ρ = 1.03
  const double loss = proxy_loss(be, wr.cview(), q.q.cview(), hr.cview());
  EXPECT_LT(loss, nearest_loss(be, wr, hr, LatticeCodebook::kE8P12));
  // Back in the original basis the loss is the same.
  auto back = rht_weight_inverse(be, q.q.cview(), signs);
  EXPECT_NEAR(proxy_loss(be, x_.cview(), back.cview(), h_.cview()), loss, 1e-3 * loss);
}

TEST_F(LdlqTest, ScalarQuantizerBeatsRoundToNearest) {
  auto& be = test::cpu_backend();
  make(48, 256, 71);
  const auto rtn = group_quantize(be, x_.cview(), GroupQuantizer::gptq(3, 64));
  const double rtn_loss = proxy_loss(be, x_.cview(), rtn.xhat.cview(), h_.cview());
  const auto r = ldlq(be, x_.cview(), h_.cview(), ldl_, LdlqQuantizer::scalar(rtn.grid()), 2);
  const double loss = proxy_loss(be, x_.cview(), r.what.cview(), h_.cview());
  EXPECT_LT(loss, 0.8 * rtn_loss);
  // Codes and Ŵ agree through the grid.
  auto deq = be.make<float>(48, 256, "deq");
  be.quant().scalar_dequantize(r.scalar_codes.cview(), rtn.grid(), deq.view());
  EXPECT_EQ(test::rel_diff(be.download(deq), be.download(r.what)), 0.0);
}

TEST_F(LdlqTest, DeterministicAcrossRunsAndThreadCounts) {
  make(40, 256, 81);
  std::vector<HostMatrix<uint32_t>> runs;
  for (int threads : {1, 2, 1}) {
    linalg::BackendOptions o;
    o.cpu_threads = threads;
    auto be = linalg::make_backend(BackendKind::kCpu, o);
    auto x = be->upload(xh_.cview(), "x");
    auto h = be->upload(hh_.cview(), "h");
    const BlockLdl ldl = block_ldl(*be, h.cview());
    const auto r = ldlq(*be, x.cview(), h.cview(), ldl, LdlqQuantizer::lattice(LatticeCodebook::kE8P12RVQ3B), 3);
    runs.push_back(be->download(r.codes));
  }
  for (size_t k = 1; k < runs.size(); ++k) EXPECT_EQ(runs[k].storage(), runs[0].storage()) << "run " << k;
}

TEST_F(LdlqTest, RejectsMismatchedShapes) {
  auto& be = test::cpu_backend();
  make(8, 64, 91);
  auto x2 = be.make<float>(8, 72, "x2");
  EXPECT_THROW((void)ldlq(be, x2.cview(), h_.cview(), ldl_, LdlqQuantizer::lattice(LatticeCodebook::kE8P12), 0), Error);
  EXPECT_THROW((void)ldlq(be, x_.cview(), h_.cview(), ldl_, LdlqQuantizer::lattice(LatticeCodebook::kE8P12), -1),
               Error);
}

}  // namespace
}  // namespace caldera::quant
