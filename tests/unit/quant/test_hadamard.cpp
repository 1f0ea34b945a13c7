// Hadamard factors (spec §4.1, Appendix A), had_rows against the dense definition, orthogonality
// for every Llama dimension, and the randomized Hadamard transform (§4.2-§4.3).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <string>

#include "core/error.h"
#include "quant/hadamard.h"
#include "quant/ldlq.h"
#include "quant/rht.h"
#include "test_util.h"

namespace caldera::quant {
namespace {

using linalg::Op;

struct DimCase {
  int64_t n;
  int32_t k;
};

// §4.1 table plus the bundled models' 704 / 1408 and Qwen2's 18944.
constexpr DimCase kDims[] = {{1024, 1},   {4096, 1},    {5120, 20}, {8192, 1},  {11008, 172},
                             {13824, 108}, {14336, 28}, {28672, 28}, {704, 44}, {1408, 44}};

TEST(HadamardFactor, ChoosesTheReferenceK) {
  for (const auto& c : kDims) {
    const auto f = hadamard_factor(c.n);
    EXPECT_EQ(f.k, c.k) << "n = " << c.n;
    EXPECT_EQ(f.p * f.k, c.n);
    EXPECT_TRUE(std::has_single_bit(static_cast<uint64_t>(f.p)));
  }
  EXPECT_EQ(hadamard_factor(18944).k, 148);  // Paley II, q = 73
  EXPECT_EQ(hadamard_factor(240).k, 60);     // 60 before 20 and 12 in the reference's order
  EXPECT_EQ(hadamard_factor(1).k, 1);
  EXPECT_EQ(hadamard_factor(156 * 4).k, 156);
}

TEST(HadamardFactor, ClearErrorForUncoveredDimensions) {
  for (int64_t n : {int64_t{0}, int64_t{6}, int64_t{92}, int64_t{3 * 7}, int64_t{-8}}) {
    try {
      (void)hadamard_factor(n);
      ADD_FAILURE() << "n = " << n << " should be rejected";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(n)), std::string::npos) << e.what();
    }
  }
}

TEST(HadamardFactor, EveryKIsAHadamardMatrix) {
  for (int32_t k : {1, 12, 20, 28, 36, 44, 52, 60, 108, 116, 124, 140, 148, 156, 172}) {
    const auto h = hadamard_matrix(k);
    ASSERT_EQ(static_cast<int64_t>(h.size()), int64_t{k} * k);
    for (int8_t v : h) ASSERT_TRUE(v == 1 || v == -1) << "K = " << k;
    for (int32_t i = 0; i < k; ++i)
      for (int32_t j = 0; j < k; ++j) {
        int s = 0;
        for (int32_t c = 0; c < k; ++c) s += h[i * k + c] * h[j * k + c];
        ASSERT_EQ(s, i == j ? k : 0) << "K = " << k << " rows " << i << ", " << j;
      }
  }
}

TEST(HadamardFactor, AppendixAEntries) {
  // Paley I, q = 11 (K = 12): squares mod 11 are {1, 3, 4, 5, 9}.
  const auto h12 = hadamard_matrix(12);
  EXPECT_EQ(h12[0], 1);
  EXPECT_EQ(h12[1], -1);
  EXPECT_EQ(h12[12 * 1 + 0], 1);
  EXPECT_EQ(h12[12 * 1 + 1], 1);   // δ + χ(0)
  EXPECT_EQ(h12[12 * 2 + 1], 1);   // χ(1)
  EXPECT_EQ(h12[12 * 1 + 2], -1);  // χ(−1) = χ(10)
  EXPECT_EQ(h12[12 * 4 + 1], 1);   // χ(3)
  // Paley II, q = 13 (K = 28): top-left block S + I with S[0][0] = 0 → 1; S[1][2] = χ(1) = 1.
  const auto h28 = hadamard_matrix(28);
  EXPECT_EQ(h28[0], 1);
  EXPECT_EQ(h28[28 * 1 + 2], 1);
  EXPECT_EQ(h28[14], -1);               // top-right block S − I at (0,0): 0 − 1
  EXPECT_EQ(h28[28 * 14 + 14], -1);     // bottom-right −S − I at (0,0)
  // Williamson K = 52: first row is A's first row then B's, C's, D's.
  const auto h52 = hadamard_matrix(52);
  const std::string first = "+-+--++++--+-+---++++++---++-+--++--+-++----+--+----";
  for (int j = 0; j < 52; ++j) EXPECT_EQ(h52[j], first[j] == '+' ? 1 : -1) << j;
  // Row 13 starts with −B (circulant row 0 of B negated).
  EXPECT_EQ(h52[52 * 13 + 0], -1);
  EXPECT_EQ(h52[52 * 13 + 1], 1);
}

/// Had_n[i][i'] from the definition (1/√n)·H_K[r][r']·(−1)^popcount(c & c').
double dense_entry(const HadamardFactor& f, int64_t i, int64_t ip) {
  const int64_t r = i / f.p, c = i % f.p, rp = ip / f.p, cp = ip % f.p;
  const int sign = (std::popcount(static_cast<uint64_t>(c & cp)) & 1) ? -1 : 1;
  return f.hk[r * f.k + rp] * sign / std::sqrt(static_cast<double>(f.n));
}

TEST(HadRows, MatchesTheDenseDefinition) {
  auto& be = test::cpu_backend();
  for (int64_t n : {int64_t{8}, int64_t{48}, int64_t{160}, int64_t{56}, int64_t{704}, int64_t{1408}, int64_t{11008},
                    int64_t{28672}}) {
    const auto f = hadamard_factor(n);
    const int64_t rows = std::min<int64_t>(n, 24);
    HostMatrix<float> e(rows, n);
    for (int64_t r = 0; r < rows; ++r) e(r, (r * 7919) % n) = 1.0f;  // basis vectors spread over the range
    for (Op op : {Op::kNoTrans, Op::kTrans}) {
      auto x = be.upload(e.cview(), "x");
      had_rows(be, x.view(), f, op);
      const auto y = be.download(x);
      double max_err = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t col = (r * 7919) % n;
        // hadU(e_col) = column col of Had_n; hadUt(e_col) = row col of Had_n.
        for (int64_t i = 0; i < n; ++i) {
          const double want = op == Op::kNoTrans ? dense_entry(f, i, col) : dense_entry(f, col, i);
          max_err = std::max(max_err, std::fabs(y(r, i) - want));
        }
      }
      EXPECT_LT(max_err, 1e-7) << "n = " << n << " op " << (op == Op::kNoTrans ? "hadU" : "hadUt");
    }
  }
}

TEST(HadRows, OrthogonalForEveryLlamaDimension) {
  auto& be = test::cpu_backend();
  for (const auto& c : kDims) {
    const auto f = hadamard_factor(c.n);
    const int64_t rows = 16;
    const auto xh = test::random_normal(rows, c.n, static_cast<uint64_t>(c.n));
    for (Op op : {Op::kNoTrans, Op::kTrans}) {
      auto x = be.upload(xh.cview(), "x");
      had_rows(be, x.view(), f, op);
      const auto y = be.download(x);
      // Inner products are preserved: |⟨Ax_a, Ax_b⟩ − ⟨x_a, x_b⟩| ≤ 1e-6 ‖x_a‖‖x_b‖.
      double worst = 0;
      for (int64_t a = 0; a < rows; ++a)
        for (int64_t b = 0; b <= a; ++b) {
          double gx = 0, gy = 0, na = 0, nb = 0;
          for (int64_t i = 0; i < c.n; ++i) {
            gx += static_cast<double>(xh(a, i)) * xh(b, i);
            gy += static_cast<double>(y(a, i)) * y(b, i);
            na += static_cast<double>(xh(a, i)) * xh(a, i);
            nb += static_cast<double>(xh(b, i)) * xh(b, i);
          }
          worst = std::max(worst, std::fabs(gx - gy) / std::sqrt(na * nb));
        }
      EXPECT_LT(worst, 1e-6) << "n = " << c.n;
      // And the other op inverts it.
      had_rows(be, x.view(), f, op == Op::kNoTrans ? Op::kTrans : Op::kNoTrans);
      EXPECT_LT(test::rel_diff(be.download(x), xh), 1e-6) << "n = " << c.n;
    }
  }
}

TEST(HadRows, DenseGramIsIdentityForSmallDims) {
  auto& be = test::cpu_backend();
  for (int64_t n : {int64_t{704}, int64_t{1024}, int64_t{1408}}) {
    const auto f = hadamard_factor(n);
    HostMatrix<float> eye(n, n);
    for (int64_t i = 0; i < n; ++i) eye(i, i) = 1.0f;
    auto x = be.upload(eye.cview(), "eye");
    had_rows(be, x.view(), f, Op::kNoTrans);  // row i = (Had_n e_i)ᵀ = column i of Had_n
    HostMatrix<double> a(n, n);
    const auto y = be.download(x);
    for (int64_t i = 0; i < a.size(); ++i) a.data()[i] = y.data()[i];
    const auto g = test::matmul(a.cview(), a.cview(), Op::kNoTrans, Op::kTrans);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) worst = std::max(worst, std::fabs(g(i, j) - (i == j ? 1.0 : 0.0)));
    EXPECT_LT(worst, 1e-6) << "n = " << n;
  }
}

TEST(HadRows, SignVectorsApplyBeforeAndAfter) {
  auto& be = test::cpu_backend();
  const auto f = hadamard_factor(704);
  const auto xh = test::random_normal(5, 704, 3);
  const auto signs = Rng(1).stream({9}).signs(704);
  auto s = be.upload(MatrixView<const float>(signs.data(), 1, 704), "s");
  // hadUt(x ⊙ s) then hadU(·) ⊙ s is the identity.
  auto x = be.upload(xh.cview(), "x");
  be.quant().hadamard_rows(x.view(), f, Op::kTrans, s.cview(), {});
  auto ref = be.upload(xh.cview(), "ref");
  be.mul_cols(ref.view(), s.cview());
  had_rows(be, ref.view(), f, Op::kTrans);
  EXPECT_EQ(test::rel_diff(be.download(x), be.download(ref)), 0.0);
  be.quant().hadamard_rows(x.view(), f, Op::kNoTrans, {}, s.cview());
  EXPECT_LT(test::rel_diff(be.download(x), xh), 1e-6);
}

TEST(Rht, SignsAreDeterministicPerStream) {
  const auto a = make_rht_signs(Rng(42).stream({3, 5}), 64, 704);
  const auto b = make_rht_signs(Rng(42).stream({3, 5}), 64, 704);
  const auto c = make_rht_signs(Rng(42).stream({3, 6}), 64, 704);
  EXPECT_EQ(a.su, b.su);
  EXPECT_EQ(a.sv, b.sv);
  EXPECT_NE(a.su, c.su);
  EXPECT_EQ(a.su, Rng(42).stream(3, 5, RngPurpose::kSignsIn).signs(704));
  int plus = 0;
  for (float v : a.su) plus += v > 0;
  EXPECT_GT(plus, 300);
  EXPECT_LT(plus, 404);
}

TEST(Rht, RoundTripAndObjectivePreservation) {
  auto& be = test::cpu_backend();
  const int64_t m = 256, n = 704;
  const auto wh = test::random_normal(m, n, 11);
  const auto hh = test::cast_matrix<float>(test::random_spd(n, 1e3, 12));
  const auto signs = make_rht_signs(Rng(7).stream({0, 1}), m, n);
  auto w = be.upload(wh.cview(), "w");
  auto h = be.upload(hh.cview(), "h");
  auto wr = rht_weight(be, w.cview(), signs);
  auto back = rht_weight_inverse(be, wr.cview(), signs);
  EXPECT_LT(test::rel_diff(be.download(back), wh), 1e-5);
  EXPECT_NEAR(be.sum_squares(wr.cview()), be.sum_squares(w.cview()), 1e-5 * be.sum_squares(w.cview()));

  auto hr = rht_hessian(be, h.cview(), signs);
  const auto hrh = be.download(hr);
  double tr = 0, trr = 0;
  for (int64_t i = 0; i < n; ++i) {
    tr += hh(i, i);
    trr += hrh(i, i);
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(hrh(i, j), hrh(j, i));
  }
  EXPECT_NEAR(trr, tr, 1e-5 * tr);
  // tr((Ŵ − W) H (Ŵ − W)ᵀ) is invariant when Ŵ_r = rht_weight(Ŵ).
  auto noise = test::random_normal(m, n, 13);
  HostMatrix<float> wq(m, n);
  for (int64_t i = 0; i < wq.size(); ++i) wq.data()[i] = wh.data()[i] + 0.1f * noise.data()[i];
  auto what = be.upload(wq.cview(), "what");
  auto whatr = rht_weight(be, what.cview(), signs);
  const double loss = proxy_loss(be, w.cview(), what.cview(), h.cview());
  const double loss_r = proxy_loss(be, wr.cview(), whatr.cview(), hr.cview());
  EXPECT_NEAR(loss_r, loss, 1e-4 * loss);
  // Sign vectors of the wrong length are rejected.
  EXPECT_THROW((void)rht_weight(be, h.cview(), signs), Error);
}

}  // namespace
}  // namespace caldera::quant
