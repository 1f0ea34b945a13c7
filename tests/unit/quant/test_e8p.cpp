// E8P12 codebook, E81B grid and RVQ variants (spec caldera-quipsharp.md §5): tables rebuilt from
// the construction rules, the §5.9 verification values, exactness of the nearest search, and the
// facet's lattice_quantize / lattice_decode on the CPU backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <vector>

#include "core/e8p_tables.h"
#include "quant/lattice.h"
#include "test_util.h"

namespace caldera {
namespace {

using Vec8 = std::array<float, 8>;

Vec8 decode(uint32_t c) {
  Vec8 v;
  e8p::e8p_decode(c, v.data());
  return v;
}

double dist2(const float* a, const float* b) {
  double s = 0;
  for (int i = 0; i < 8; ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return s;
}

uint32_t fnv1a(uint32_t h, uint8_t byte) { return (h ^ byte) * 0x01000193u; }

/// The source set S of §5.1 (values ×2): all {1,3,5}^8 with Σ ≤ 40 sorted, then the 29 padding rows.
std::vector<std::array<int, 8>> source_set() {
  std::vector<std::array<int, 8>> s;
  std::array<int, 8> a{};
  const int vals[3] = {1, 3, 5};
  for (int code = 0; code < 6561; ++code) {
    int c = code, n2 = 0;
    for (int i = 7; i >= 0; --i) {
      a[i] = vals[c % 3];
      c /= 3;
      n2 += a[i] * a[i];
    }
    if (n2 <= 40) s.push_back(a);
  }
  std::sort(s.begin(), s.end());
  const char* pad[29] = {"31113333", "13113333", "11313333", "11133333", "33313311", "33313131", "33311331", "33313113",
                         "33311313", "33311133", "33133311", "33133131", "33131331", "33133113", "33131313", "33131133",
                         "31333311", "31333131", "31331331", "31333113", "31331313", "13331133", "13333311", "13333131",
                         "13331331", "13333113", "13331313", "11331333", "33113331"};
  for (const char* p : pad) {
    for (int i = 0; i < 8; ++i) a[i] = p[i] - '0';
    s.push_back(a);
  }
  return s;
}

TEST(E8pTables, PackedAbsMatchesConstructionRules) {
  const auto s = source_set();
  ASSERT_EQ(s.size(), 256u);
  EXPECT_EQ(s[0], (std::array<int, 8>{1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(s[226], (std::array<int, 8>{5, 3, 1, 1, 1, 1, 1, 1}));
  std::array<int, 7> norm_counts{};
  for (int a = 0; a < 256; ++a) {
    int sum = 0, n2 = 0;
    for (int v : s[a]) sum += v, n2 += v * v;
    norm_counts[n2 / 8 - 1]++;  // norm² = n2/4 ∈ {2, 4, ..., 12}
    const bool odd = (sum / 2) % 2 == 1;
    uint32_t w = 0;
    for (int i = 0; i < 8; ++i) {
      const int at = (i == 7 && odd) ? -s[a][i] : s[a][i];
      w |= static_cast<uint32_t>(at + 8) << (4 * e8p::sigma(i));
    }
    EXPECT_EQ(w, e8p::kE8pPackedAbs[a]) << "pattern " << a;
  }
  EXPECT_EQ(norm_counts, (std::array<int, 7>{1, 8, 28, 64, 126, 29, 0}));
  EXPECT_EQ(e8p::kE8pPackedAbs[0], 0x99999999u);
}

TEST(E8pTables, E81bMatchesConstructionRules) {
  std::vector<std::array<int, 8>> grid;  // values ×2
  std::array<int, 8> t{};
  for (int code = 0; code < (1 << 24); ++code) {  // coordinates in −4..3, lexicographic
    int c = code, n2 = 0, sum = 0;
    for (int i = 7; i >= 0; --i) {
      t[i] = (c & 7) - 4;
      c >>= 3;
      n2 += t[i] * t[i];
      sum += t[i];
    }
    if (n2 <= 2 && sum % 2 == 0) {
      std::array<int, 8> g;
      for (int i = 0; i < 8; ++i) g[i] = 2 * t[i];
      grid.push_back(g);
    }
  }
  ASSERT_EQ(grid.size(), 113u);
  for (int code = 0; code < 256; ++code) {  // (±½)^8, even number of minus signs, lexicographic
    int neg = 0;
    for (int i = 0; i < 8; ++i) {
      t[i] = ((code >> (7 - i)) & 1) ? 1 : -1;
      neg += t[i] < 0;
    }
    if (neg % 2 == 0) grid.push_back(t);
  }
  for (int s : {4, -4})
    for (int i = 0; i < (s > 0 ? 8 : 7); ++i) {
      std::array<int, 8> g{};
      g[i] = s;
      grid.push_back(g);
    }
  ASSERT_EQ(grid.size(), 256u);
  uint32_t h = 0x811c9dc5u;
  for (int g = 0; g < 256; ++g) {
    float v[8];
    e8p::e81b_decode(static_cast<uint32_t>(g), v);
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(static_cast<int>(2 * v[i]), grid[g][i]) << "entry " << g << " coordinate " << i;
      h = fnv1a(h, static_cast<uint8_t>(static_cast<int8_t>(2 * v[i])));
    }
  }
  EXPECT_EQ(h, 0x09648741u);  // §5.9
  float v[8];
  e8p::e81b_decode(56, v);
  EXPECT_EQ(std::count(v, v + 8, 0.0f), 8);
  e8p::e81b_decode(113, v);
  EXPECT_EQ(std::count(v, v + 8, -0.5f), 8);
  e8p::e81b_decode(241, v);
  EXPECT_EQ(v[0], 2.0f);
}

TEST(E8pCodebook, VerificationValuesOfSection59) {
  uint32_t h = 0x811c9dc5u;
  double total = 0;
  std::set<std::array<float, 8>> distinct;
  for (uint32_t c = 0; c < 65536; ++c) {
    const Vec8 v = decode(c);
    distinct.insert(v);
    for (float x : v) {
      total += static_cast<double>(x) * x;
      h = fnv1a(h, static_cast<uint8_t>(static_cast<int8_t>(4 * x)));
    }
  }
  EXPECT_EQ(h, 0xFACAF5C5u);
  EXPECT_EQ(total, 627200.0);
  EXPECT_EQ(distinct.size(), 65536u);
  EXPECT_EQ(decode(0x0000), (Vec8{.75f, .75f, .75f, .75f, .75f, .75f, .75f, .75f}));
  EXPECT_EQ(decode(0x0001), (Vec8{.25f, .25f, .25f, .25f, .25f, .25f, .25f, .25f}));
  EXPECT_EQ(decode(0x0100), (Vec8{.75f, .75f, .75f, .75f, .75f, .75f, .75f, -1.25f}));
  EXPECT_EQ(decode(0x1234), (Vec8{-.75f, -.75f, .25f, -.75f, -1.75f, .25f, .25f, 1.25f}));
  EXPECT_EQ(decode(0xFFFF), (Vec8{-1.25f, -1.25f, -.25f, -.25f, -1.25f, -1.25f, -1.25f, .75f}));
}

TEST(E8pCodebook, EncodeOfDecodeIsIdentityForAllCodes) {
  for (uint32_t c = 0; c < 65536; ++c) {
    const Vec8 v = decode(c);
    ASSERT_EQ(e8p::e8p_nearest(v.data()), c) << "code " << c;
  }
}

/// Brute force over all 65536 codewords in double: the nearest search must reach the minimum.
TEST(E8pCodebook, NearestSearchIsOptimalAgainstBruteForce) {
  std::vector<Vec8> book(65536);
  for (uint32_t c = 0; c < 65536; ++c) book[c] = decode(c);
  const float scales[] = {0.1f, 0.5f, 1.0f, 2.0f, 4.0f};
  int n_checked = 0;
  for (int si = 0; si < 5; ++si) {
    const auto x = test::random_normal(60, 8, 100 + si);
    for (int64_t r = 0; r < x.rows(); ++r) {
      float v[8];
      for (int i = 0; i < 8; ++i) v[i] = x(r, i) * scales[si];
      const uint32_t c = e8p::e8p_nearest(v);
      double best = 1e300;
      for (const auto& b : book) best = std::min(best, dist2(v, b.data()));
      const double got = dist2(v, book[c].data());
      EXPECT_LE(got, best * (1 + 1e-12) + 1e-12) << "scale " << scales[si] << " row " << r;
      ++n_checked;
    }
  }
  EXPECT_EQ(n_checked, 300);
}

TEST(E8pCodebook, TiesAreBrokenByTheWrittenRule) {
  // x = 0 is equidistant from (−½)^8 + ¼ and (½)^8 − ¼ (pattern 0 under both shifts, equal keys):
  // the +¼ shift wins the tie, so the codeword is (−¼)^8.
  const float zero[8] = {};
  EXPECT_EQ(decode(e8p::e8p_nearest(zero)), (Vec8{-.25f, -.25f, -.25f, -.25f, -.25f, -.25f, -.25f, -.25f}));
  // x − ¼ = (−½, ½, …, ½) lies at squared distance 1 from several codewords of the +¼ shift:
  // pattern 0 with a parity fix (flipping any one coordinate), and (±3/2 at one coordinate, ½
  // elsewhere). The lowest pattern (0) wins, and its parity fix flips the lowest of the equal
  // minima (coordinate 0): u = (½)^8, codeword (¾)^8 = DECODE(0x0000).
  const float x[8] = {-0.25f, 0.75f, 0.75f, 0.75f, 0.75f, 0.75f, 0.75f, 0.75f};
  EXPECT_EQ(e8p::e8p_nearest(x), 0x0000u);
}

TEST(E8pCodebook, Rvq4bAndRvq3bReduceTheErrorAndRoundTrip) {
  const auto x = test::random_normal(400, 8, 7);
  double e2 = 0, e3 = 0, e4 = 0;
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* v = &x(r, 0);
    float h2[8], h3[8], h4[8], d[8];
    const uint32_t c2 = e8p::lattice_encode8(LatticeCodebook::kE8P12, 0.0f, v, h2);
    const uint32_t c3 = e8p::lattice_encode8(LatticeCodebook::kE8P12RVQ3B, 2.04f, v, h3);
    const uint32_t c4 = e8p::lattice_encode8(LatticeCodebook::kE8P12RVQ4B, 3.45f, v, h4);
    EXPECT_EQ(c3 >> 16, c2);  // first stage is the E8P12 code
    EXPECT_EQ(c4 >> 16, c2);
    EXPECT_LT(c3 & 0xFFFFu, 256u);
    e8p::lattice_decode8(LatticeCodebook::kE8P12RVQ4B, 3.45f, c4, d);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(d[i], h4[i]);
    e8p::lattice_decode8(LatticeCodebook::kE8P12RVQ3B, 2.04f, c3, d);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(d[i], h3[i]);
    e2 += dist2(v, h2);
    e3 += dist2(v, h3);
    e4 += dist2(v, h4);
  }
  // Gaussian MSE per coordinate of the QuIP# codebooks at RMS 1: roughly 0.09 (2-bit) > 3-bit > 4-bit.
  EXPECT_LT(e3, 0.5 * e2);
  EXPECT_LT(e4, 0.5 * e3);
  EXPECT_LT(e2 / (8 * 400), 0.12);
}

TEST(E8pCodebook, E81bSearchIsOptimal) {
  const auto x = test::random_normal(200, 8, 9);
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* v = &x(r, 0);
    const uint32_t g = e8p::e81b_nearest(v);
    float best_v[8];
    e8p::e81b_decode(g, best_v);
    const double got = dist2(v, best_v);
    for (uint32_t o = 0; o < 256; ++o) {
      float w[8];
      e8p::e81b_decode(o, w);
      ASSERT_LE(got, dist2(v, w) + 1e-12) << "row " << r << " entry " << o;
    }
  }
}

TEST(LatticeFacet, QuantizeMatchesReferenceCodecAndDecodes) {
  auto& be = test::cpu_backend();
  auto xh = test::random_normal(37, 64, 21);
  // Rows 0..15 on the quarter-integer grid (exact ties between candidates), row 16 all zero.
  for (int64_t r = 0; r < 17; ++r)
    for (int64_t c = 0; c < 64; ++c) xh(r, c) = r == 16 ? 0.0f : std::round(xh(r, c) * 4.0f) / 4.0f;
  auto x = be.upload(xh.cview(), "x");
  for (auto cb : {LatticeCodebook::kE8P12, LatticeCodebook::kE8P12RVQ3B, LatticeCodebook::kE8P12RVQ4B}) {
    const float rs = lattice_default_residual_scale(cb);
    auto xhat = be.make<float>(37, 64, "xhat");
    auto codes = be.make<uint32_t>(37, 8, "codes");
    quant::lattice_quantize(be, x.cview(), cb, rs, xhat.view(), codes.view());
    const auto hc = be.download(codes);
    const auto hx = be.download(xhat);
    for (int64_t r = 0; r < 37; ++r)
      for (int64_t b = 0; b < 8; ++b) {
        float out[8];
        ASSERT_EQ(hc(r, b), e8p::lattice_encode8(cb, rs, &xh(r, 8 * b), out));
        for (int i = 0; i < 8; ++i) ASSERT_EQ(hx(r, 8 * b + i), out[i]);
      }
    auto dec = be.make<float>(37, 64, "dec");
    be.quant().lattice_decode(codes.cview(), cb, rs, dec.view());
    EXPECT_EQ(test::rel_diff(be.download(dec), hx), 0.0);
  }
}

TEST(LatticeFacet, BackendSearchEqualsTheReferenceOnManyVectors) {
  auto& be = test::cpu_backend();
  const int64_t rows = 512;
  auto xh = test::random_normal(rows, 64, 22);
  const float scales[4] = {0.05f, 0.7f, 1.5f, 6.0f};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < 64; ++c) {
      xh(r, c) *= scales[r % 4];
      if (r % 8 == 7) xh(r, c) = std::round(xh(r, c) * 2.0f) / 4.0f;  // ties
    }
  auto x = be.upload(xh.cview(), "x");
  auto codes = be.make<uint32_t>(rows, 8, "codes");
  quant::lattice_quantize(be, x.cview(), LatticeCodebook::kE8P12RVQ4B, 3.45f, {}, codes.view());
  const auto hc = be.download(codes);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < 8; ++b) {
      float out[8];
      ASSERT_EQ(hc(r, b), e8p::lattice_encode8(LatticeCodebook::kE8P12RVQ4B, 3.45f, &xh(r, 8 * b), out))
          << "row " << r << " block " << b;
    }
}

TEST(LatticeFacet, RejectsBadShapes) {
  auto& be = test::cpu_backend();
  auto x = be.make<float>(4, 12, "x");
  auto codes = be.make<uint32_t>(4, 1, "codes");
  EXPECT_THROW(quant::lattice_quantize(be, x.cview(), LatticeCodebook::kE8P12, 0.0f, {}, codes.view()), Error);
  auto x8 = be.make<float>(4, 8, "x8");
  be.fill(x8.view(), 0.0f);
  EXPECT_THROW(quant::lattice_quantize(be, x8.cview(), LatticeCodebook::kE8P12RVQ4B, 0.0f, {}, codes.view()), Error);
}

TEST(QuantFactor, ScalesByRmsAndHandlesZero) {
  auto& be = test::cpu_backend();
  auto xh = test::random_normal(16, 64, 5);
  for (int64_t i = 0; i < xh.size(); ++i) xh.data()[i] *= 7.0f;
  auto x = be.upload(xh.cview(), "x");
  const auto fq = quant::quant_factor(be, x.cview(), LatticeCodebook::kE8P12RVQ4B);
  EXPECT_NEAR(fq.scale, 7.0, 0.7);
  const auto hx = be.download(fq.xhat);
  EXPECT_LT(test::rel_diff(hx, xh), 0.12);  // 4-bit lattice: ~1% MSE at RMS 1
  const auto hc = be.download(fq.codes);
  for (int64_t r = 0; r < 16; ++r)
    for (int64_t b = 0; b < 8; ++b) {
      float d[8];
      e8p::lattice_decode8(LatticeCodebook::kE8P12RVQ4B, 3.45f, hc(r, b), d);
      for (int i = 0; i < 8; ++i) ASSERT_FLOAT_EQ(hx(r, 8 * b + i), fq.scale * d[i]);
    }
  auto z = be.make<float>(16, 64, "zero");
  be.fill(z.view(), 0.0f);
  const auto fz = quant::quant_factor(be, z.cview(), LatticeCodebook::kE8P12);
  EXPECT_EQ(fz.scale, 0.0f);
  EXPECT_EQ(be.sum_squares(fz.xhat.cview()), 0.0);
}

}  // namespace
}  // namespace caldera
