// SpQR quantizer pieces against hand-computed cases (spqr.md §4-§6, §11).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "algo/spqr_quantizer.h"
#include "core/dtype.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

TEST(SpqrMinMax, ZeroNotRoundedRangeNotWidenedDegenerateToUnit) {
  const MinMax a = spqr_grid(-1.0f, 2.0f, 2);
  EXPECT_FLOAT_EQ(a.scale, 1.0f);
  EXPECT_FLOAT_EQ(a.zero, 1.0f);
  // All-positive group: the range is [0.5, 2], not [0, 2]; the zero point is −1 (non-integer allowed).
  const MinMax b = spqr_grid(0.5f, 2.0f, 2);
  EXPECT_FLOAT_EQ(b.scale, 0.5f);
  EXPECT_FLOAT_EQ(b.zero, -1.0f);
  EXPECT_FLOAT_EQ(scalar::dequantize(scalar::quantize(0.5f, b.scale, b.zero, 2), b.scale, b.zero), 0.5f);
  const MinMax c = spqr_grid(0.1f, 0.7f, 3);
  EXPECT_NE(c.zero, std::nearbyint(c.zero));
  // lo == hi: [−1, 1].
  const MinMax d = spqr_grid(3.0f, 3.0f, 4);
  EXPECT_FLOAT_EQ(d.scale, 2.0f / 15.0f);
  EXPECT_FLOAT_EQ(d.zero, 7.5f);
  // Codes round half to even: scale 1, zero 0.5: 1.0 -> 1.5 -> 2, 2.0 -> 2.5 -> 2; clamped to [0, 7].
  EXPECT_EQ(scalar::quantize(1.0f, 1.0f, 0.5f, 3), 2u);
  EXPECT_EQ(scalar::quantize(2.0f, 1.0f, 0.5f, 3), 2u);
  EXPECT_EQ(scalar::quantize(-3.0f, 1.0f, 0.5f, 3), 0u);
  EXPECT_EQ(scalar::quantize(1e30f, 1.0f, 0.5f, 3), 7u);
}

TEST(SpqrSecondOrder, ReproducesBlockMinAndMaxExactly) {
  // Scales 0.5 .. 4.0 with 3 bits: ss = 3.5/7 = 0.5 and sz = −0.5/0.5 = −1, both exact in fp16.
  const std::vector<float> v = {0.5f, 1.2f, 4.0f, 2.6f, 0.9f, 3.3f, 0.5f, 1.0f};
  std::vector<uint8_t> codes(v.size());
  std::vector<float> deq(v.size());
  const StatPair p = quantize_statistics(v, 3, codes, deq);
  EXPECT_EQ(f16_to_f32(p.scale_f16), 0.5f);
  EXPECT_EQ(f16_to_f32(p.zero_f16), -1.0f);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[2], 7);
  EXPECT_EQ(deq[0], 0.5f);
  EXPECT_EQ(deq[2], 4.0f);
  EXPECT_EQ(deq[6], 0.5f);
  // 1.2 -> 1.2/0.5 − 1 = 1.4 -> code 1 -> 0.5·(1+1) = 1.0.
  EXPECT_EQ(codes[1], 1);
  EXPECT_EQ(deq[1], 1.0f);
}

TEST(SpqrSecondOrder, RandomBlocksMapMinToZeroAndMaxToTopCode) {
  const HostMatrix<float> r = test::random_normal(20, 16, 5);
  for (int bits : {2, 3, 4}) {
    const int maxq = (1 << bits) - 1;
    for (int64_t b = 0; b < r.rows(); ++b) {
      std::vector<float> v(16);
      for (int k = 0; k < 16; ++k) v[static_cast<size_t>(k)] = 0.01f + 0.002f * std::abs(r(b, k));  // scale-like
      std::vector<uint8_t> codes(16);
      std::vector<float> deq(16);
      const StatPair p = quantize_statistics(v, bits, codes, deq);
      const float ss = f16_to_f32(p.scale_f16), sz = f16_to_f32(p.zero_f16);
      const auto lo = std::min_element(v.begin(), v.end()) - v.begin();
      const auto hi = std::max_element(v.begin(), v.end()) - v.begin();
      EXPECT_EQ(codes[static_cast<size_t>(lo)], 0);
      EXPECT_EQ(codes[static_cast<size_t>(hi)], maxq);
      // fp16 statistics: min/max come back to fp16 precision, others within half a step.
      EXPECT_NEAR(deq[static_cast<size_t>(lo)], v[static_cast<size_t>(lo)], 2e-3 * v[static_cast<size_t>(lo)]);
      EXPECT_NEAR(deq[static_cast<size_t>(hi)], v[static_cast<size_t>(hi)], 2e-3 * v[static_cast<size_t>(hi)]);
      for (size_t k = 0; k < v.size(); ++k) {
        EXPECT_EQ(deq[k], scalar::dequantize(codes[k], ss, sz));
        EXPECT_LE(std::abs(deq[k] - v[k]), 0.5f * ss + 2e-3f * v[k]);
      }
    }
  }
}

TEST(SpqrSecondOrder, StatisticsFp16CannotHoldStayFinite) {
  // Values agreeing to 1e-7: the reference pair (ss ≈ 1e-8) underflows fp16, the fallback holds.
  const std::vector<float> v = {1.0f, 1.0000001f, 1.0000002f, 1.0f};
  std::vector<uint8_t> codes(v.size());
  std::vector<float> deq(v.size());
  const StatPair p = quantize_statistics(v, 3, codes, deq);
  EXPECT_GT(f16_to_f32(p.scale_f16), 0.0f);
  EXPECT_TRUE(std::isfinite(f16_to_f32(p.zero_f16)));
  for (size_t k = 0; k < v.size(); ++k) EXPECT_NEAR(deq[k], v[k], 0.1f);
}

TEST(SpqrOutliers, LeaveOneOutReductionHandComputed) {
  // x = {0, 0.3, 0.5, 2}, d = {1, 1, 0.5, 2}, 2 bits (maxq 3).
  // All four: s = 2/3, z = 0; codes 0,0,1,3 -> errors 0, 0.3, (0.5−2/3)/0.5 = −1/3, 0 -> base = 0.09 + 1/9.
  // Without x0: [0.3, 2], s = 1.7/3: 0.3 -> 0.3, 0.5 -> 0.3 (error 0.2/0.5), 2 -> 2  -> loo = 0.16.
  // Without x1: same grid as all four, error of 0.5 only -> 1/9.  Without x2: error of 0.3 only -> 0.09.
  // Without x3: [0, 0.5], s = 1/6: 0.3 -> 1.8 -> 2 -> 1/3 (error −1/30), 0.5 exact -> 1/900.
  const std::vector<float> x = {0.0f, 0.3f, 0.5f, 2.0f};
  const std::vector<float> d = {1.0f, 1.0f, 0.5f, 2.0f};
  std::vector<float> r(4);
  leave_one_out_reduction(x, d, 2, r);
  const double base = 0.09 + 1.0 / 9.0;
  EXPECT_NEAR(r[0], base - 0.16, 1e-6);
  EXPECT_NEAR(r[1], base - 1.0 / 9.0, 1e-6);
  EXPECT_NEAR(r[2], base - 0.09, 1e-6);
  EXPECT_NEAR(r[3], base - 1.0 / 900.0, 1e-6);
  std::vector<float> one(1);
  leave_one_out_reduction(std::vector<float>{0.7f}, std::vector<float>{1.0f}, 2, one);
  // One value: degenerate grid [−1, 1], s = 2/3, z = 1.5: 0.7 -> code round(2.55) = 3 -> 1.0;
  // nothing is left without it, so r = base = 0.3².
  EXPECT_NEAR(one[0], 0.09, 1e-6);
}

TEST(SpqrOutliers, LeaveOneOutMatchesRefittingEveryWeight) {
  // The O(g) form (refit only at a unique min or max) equals the definition: refit without each k.
  const HostMatrix<float> xs = test::random_normal(40, 16, 77);
  const HostMatrix<float> ds = test::random_normal(1, 16, 78);
  std::vector<float> d(16);
  for (size_t k = 0; k < 16; ++k) d[k] = 0.5f + std::abs(ds(0, static_cast<int64_t>(k)));
  for (int64_t row = 0; row < xs.rows(); ++row) {
    std::vector<float> x(xs.data() + row * 16, xs.data() + row * 16 + 16);
    if (row % 4 == 1) x[3] = *std::max_element(x.begin(), x.end());  // tied maximum
    if (row % 4 == 2) x[5] = *std::min_element(x.begin(), x.end());  // tied minimum
    if (row % 4 == 3) std::fill(x.begin(), x.end(), 0.25f);         // constant row
    for (int bits : {2, 3, 4}) {
      std::vector<float> r(16);
      leave_one_out_reduction(x, d, bits, r);
      auto err = [&](size_t skip) {
        float lo = INFINITY, hi = -INFINITY;
        for (size_t t = 0; t < 16; ++t)
          if (t != skip) lo = std::min(lo, x[t]), hi = std::max(hi, x[t]);
        const MinMax f = spqr_grid(lo, hi, bits);
        double e = 0;
        for (size_t t = 0; t < 16; ++t)
          if (t != skip) {
            const double diff = (x[t] - scalar::dequantize(scalar::quantize(x[t], f.scale, f.zero, bits), f.scale, f.zero)) / d[t];
            e += diff * diff;
          }
        return e;
      };
      const double base = err(16);
      for (size_t k = 0; k < 16; ++k) EXPECT_NEAR(r[k], base - err(k), 1e-5 * (1 + base)) << row << " " << k;
    }
  }
}

TEST(SpqrOutliers, OutlierScaleIsMeanOfUnbiasedColumnVariancesOverDSquared) {
  // Columns (1, 2, 3) and (0, 0, 6): unbiased variances 1 and 12; d = (1, 2): σ² = (1/1 + 12/4)/2 = 2.
  const HostMatrix<float> w(3, 2, {1, 0, 2, 0, 3, 6});
  const std::vector<float> d = {1.0f, 2.0f};
  EXPECT_DOUBLE_EQ(outlier_scale(w.cview(), d), 2.0);
  const HostMatrix<float> one_row(1, 2, {1, 2});
  EXPECT_TRUE(std::isinf(outlier_scale(one_row.cview(), d)));
}

TEST(SpqrOutliers, ColumnQuantizerExcludesCandidatesAndExtractsOutliers) {
  // One 2×4 group, 2-bit weights, fp32 statistics (no bilevel), d = 1.
  // Row 1 = {0, 0.1, 0.25, 9}: LOO reductions (same arithmetic as the hand case above)
  // r = {0.05, 0.01, 0.0625, 0.0722}; θ between the two largest makes 9.0 the only candidate.
  const HostMatrix<float> g(2, 4, {0.0f, 0.1f, 0.2f, 0.3f, 0.0f, 0.1f, 0.25f, 9.0f});
  const std::vector<float> d = {1, 1, 1, 1};
  std::vector<float> r(4);
  leave_one_out_reduction(std::span<const float>(g.data() + 4, 4), d, 2, r);
  EXPECT_NEAR(r[0], 0.05, 1e-6);
  EXPECT_NEAR(r[1], 0.01, 1e-6);
  EXPECT_NEAR(r[2], 0.0625, 1e-6);
  EXPECT_NEAR(r[3], 0.0725 - 0.01 / 36.0, 1e-6);
  const double theta = 0.5 * (r[2] + r[3]);

  SpqrFormat f;
  f.bits = 2;
  f.stat_bits = 32;
  f.group_size = 4;
  f.stat_group_size = 2;
  SpqrColumnQuantizer q(f, 2, 4, theta, OutlierSelection::kLeaveOneOut);
  q.begin_group(0, g.cview(), d);
  // Row 1 is fit on {0, 0.1, 0.25, mean(0, 0.1, 0.25)}: s = 0.25/3, z = 0. 9.0 -> code 3 -> 0.25,
  // error² 76.6 > θ: outlier with the code of 0.0 (code 0, value 0) and residual 9.0.
  EXPECT_EQ(q.quantize(1, 3, 9.0f, 1.0f), 9.0f);
  // 0.1 -> code round(1.2) = 1 -> 0.0833, error² 2.8e-4 < θ: not an outlier.
  EXPECT_NEAR(q.quantize(1, 1, 0.1f, 1.0f), 0.25f / 3.0f, 1e-7);
  // Row 0 (no candidates): s = 0.1, z = 0. A GPTQ-updated 0.9 -> code 3 -> 0.3, error² 0.36 > θ.
  EXPECT_EQ(q.quantize(0, 2, 0.9f, 1.0f), f16_to_f32(f32_to_f16(0.9f)));
  EXPECT_NEAR(q.quantize(0, 3, 0.3f, 1.0f), 0.3f, 1e-7);
  EXPECT_EQ(q.outliers(), 2);
  const SpqrEncoding e = q.release_encoding(std::vector<int32_t>{0, 1, 2, 3});
  EXPECT_NEAR(e.scales[0], 0.1f, 1e-7);
  EXPECT_NEAR(e.scales[1], 0.25f / 3.0f, 1e-7);
  EXPECT_EQ(e.zeros[1], 0.0f);
  EXPECT_EQ((std::vector<int32_t>{0, 1, 2}), e.row_ptr);
  EXPECT_EQ((std::vector<int32_t>{2, 3}), e.outlier_cols);
  EXPECT_EQ(e.codes[2], 0);
  EXPECT_EQ(e.codes[4 + 3], 0);
  EXPECT_EQ(e.codes[4 + 1], 1);
  EXPECT_EQ(f16_to_f32(e.outlier_residuals[1]), 9.0f);

  // τ = ∞: no LOO, statistics on the raw group (s = 9/3), nothing extracted.
  SpqrColumnQuantizer plain(f, 2, 4, INFINITY, OutlierSelection::kLeaveOneOut);
  plain.begin_group(0, g.cview(), d);
  EXPECT_EQ(plain.quantize(1, 3, 9.0f, 1.0f), 9.0f);
  EXPECT_NEAR(plain.quantize(0, 2, 0.9f, 1.0f), 0.3f, 1e-7);  // clipped to the grid's top
  EXPECT_EQ(plain.outliers(), 0);
  EXPECT_NEAR(plain.release_encoding(std::vector<int32_t>{0, 1, 2, 3}).scales[1], 3.0f, 1e-6);
}

TEST(SpqrBits, AverageBitsMatchesSpecTables) {
  auto fmt = [](int b, int sb, int64_t b1, int64_t b2) {
    SpqrFormat f;
    f.bits = b;
    f.stat_bits = sb;
    f.group_size = b1;
    f.stat_group_size = b2;
    return f;
  };
  // spqr.md §6.1 worked values.
  EXPECT_DOUBLE_EQ(spqr_average_bits(fmt(4, 3, 16, 16), 0.0), 4.625);
  EXPECT_DOUBLE_EQ(spqr_average_bits(fmt(3, 3, 16, 16), 0.0), 3.625);
  EXPECT_DOUBLE_EQ(spqr_average_bits(fmt(3, 3, 8, 64), 0.0), 3.875);
  EXPECT_NEAR(spqr_average_bits(fmt(3, 3, 16, 32), 0.004), 3.628, 1e-12);
  // §6.2 group-size sweep (3-bit weights and statistics; the spec rounds to 3 decimals).
  const double sweep16[] = {4.375, 3.875, 3.625, 3.5, 3.438, 3.406};
  const double sweep8[] = {5.75, 4.75, 4.25, 4.0, 3.875, 3.813};
  const int64_t beta2[] = {4, 8, 16, 32, 64, 128};
  for (int k = 0; k < 6; ++k) {
    EXPECT_NEAR(spqr_average_bits(fmt(3, 3, 16, beta2[k]), 0.0), sweep16[k], 5.01e-4);
    EXPECT_NEAR(spqr_average_bits(fmt(3, 3, 8, beta2[k]), 0.0), sweep8[k], 5.01e-4);
  }
  // Unquantized statistics: 16 bits each in place of b_s/b_z and no second-order pairs.
  EXPECT_DOUBLE_EQ(spqr_average_bits(fmt(3, 16, 16, 16), 0.0), 5.0);
}

TEST(SpqrBits, StorageBitsCountEveryStoredComponent) {
  SpqrFormat f;  // 3/3/16/16
  // Divisible shape: exactly the formula times m·n (one outlier = 32 bits).
  EXPECT_DOUBLE_EQ(spqr_storage_bits(f, 64, 128, 5), spqr_average_bits(f, 5.0 / (64 * 128)) * 64 * 128);
  // 20×40: G = 3 column groups, R = 2 row blocks.
  EXPECT_DOUBLE_EQ(spqr_storage_bits(f, 20, 40, 0), 3.0 * 800 + 6.0 * 20 * 3 + 64.0 * 2 * 3);
  EXPECT_DOUBLE_EQ(spqr_index_bits(20, 40), 32.0 * 21 + 16.0 * 40);
  EXPECT_DOUBLE_EQ(spqr_index_bits(2, 70000), 32.0 * 3 + 32.0 * 70000);
}

SpqrEncoding small_encoding() {
  SpqrEncoding e;
  e.format.bits = 2;
  e.format.stat_bits = 16;
  e.format.group_size = 2;
  e.format.stat_group_size = 2;
  e.rows = 3;
  e.cols = 4;
  e.perm = {2, 0, 3, 1};
  e.codes = {0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 1, 1};
  e.scales = {1, 0.5f, 1, 1, 2, 2};
  e.zeros = {0, 1, 0, 0, 1, 1};
  e.row_ptr = {0, 1, 1, 3};
  e.outlier_cols = {3, 0, 2};
  e.outlier_residuals = {f32_to_f16(0.25f), f32_to_f16(-1.0f), f32_to_f16(8.0f)};
  return e;
}

TEST(SpqrEncodingTest, CsrDecodeAddsResidualsAtTheirColumns) {
  const SpqrEncoding e = small_encoding();
  const HostMatrix<float> w = decode_permuted(e);
  // Row 0: group 0 (s 1, z 0): 0, 1; group 1 (s .5, z 1): .5·(2−1) = .5, .5·(3−1) = 1, + 0.25 at col 3.
  EXPECT_EQ(w(0, 0), 0.0f);
  EXPECT_EQ(w(0, 1), 1.0f);
  EXPECT_EQ(w(0, 2), 0.5f);
  EXPECT_EQ(w(0, 3), 1.25f);
  // Row 1 has no outliers: 3, 2, 1, 0 with s = 1, z = 0.
  EXPECT_EQ(w(1, 0), 3.0f);
  EXPECT_EQ(w(1, 3), 0.0f);
  // Row 2: s 2, z 1 -> all 0; outliers −1 at col 0 and 8 at col 2.
  EXPECT_EQ(w(2, 0), -1.0f);
  EXPECT_EQ(w(2, 1), 0.0f);
  EXPECT_EQ(w(2, 2), 8.0f);
}

TEST(SpqrEncodingTest, ValidateRejectsBrokenCsrCodesAndPermutations) {
  EXPECT_NO_THROW(small_encoding().validate());
  auto broken = [](auto mutate) {
    SpqrEncoding e = small_encoding();
    mutate(e);
    return e;
  };
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.outlier_cols = {3, 2, 0}; }).validate(), IoError);  // not ascending
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.outlier_cols = {3, 0, 4}; }).validate(), IoError);  // out of range
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.row_ptr = {0, 2, 1, 3}; }).validate(), IoError);    // decreasing
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.row_ptr = {0, 1, 1, 2}; }).validate(), IoError);    // wrong total
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.codes[5] = 4; }).validate(), IoError);             // > maxq
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.perm = {0, 0, 1, 2}; }).validate(), IoError);      // repeated
  EXPECT_THROW(broken([](SpqrEncoding& e) { e.scales.pop_back(); }).validate(), IoError);        // size
}

}  // namespace
}  // namespace caldera::algo
