// Index packing of lattice codes (spec §5.5), the min-max group quantizer (spqr.md §4.1) and bit
// packing of 1..8-bit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/lattice.h"
#include "quant/scalar.h"
#include "test_util.h"

namespace caldera::quant {
namespace {

HostMatrix<uint32_t> random_codes(int64_t rows, int64_t blocks, LatticeCodebook cb, uint64_t seed) {
  HostMatrix<uint32_t> c(rows, blocks);
  const Rng rng(seed);
  for (int64_t i = 0; i < c.size(); ++i) {
    uint32_t w[4];
    rng_words(rng.key(), static_cast<uint64_t>(i), w);
    c.data()[i] = cb == LatticeCodebook::kE8P12        ? (w[0] & 0xFFFFu)
                  : cb == LatticeCodebook::kE8P12RVQ4B ? w[0]
                                                       : ((w[0] & 0xFFFF0000u) | (w[1] & 0xFFu));
  }
  return c;
}

TEST(LatticePacking, RoundTripsEveryCodebook) {
  for (auto cb : {LatticeCodebook::kE8P12, LatticeCodebook::kE8P12RVQ3B, LatticeCodebook::kE8P12RVQ4B}) {
    const auto codes = random_codes(48, 192 / 8, cb, 5);
    const auto packed = pack_lattice_codes(codes.cview(), cb);
    EXPECT_EQ(packed.rows(), 48);
    EXPECT_EQ(packed.cols(), 192 * lattice_bits(cb) / 64);  // exactly `bits` bits per weight
    const auto back = unpack_lattice_codes(packed.cview(), cb, 192);
    EXPECT_EQ(back.storage(), codes.storage());
  }
}

TEST(LatticePacking, HandCheckedE8pLayout) {
  // 32 rows × 64 columns: codes 32 × 8, word grid 16 × 4, tiles (2, 1, 8, 4) → out 32 × 2.
  HostMatrix<uint32_t> codes(32, 8);
  codes(0, 0) = 0x0102;  // c0 of group (0, 0)
  codes(1, 0) = 0x0304;  // c1
  codes(0, 1) = 0x0506;  // c2
  codes(1, 1) = 0x0708;  // c3
  codes(2, 0) = 0xAB00;  // group (1, 0): c0 abs 0xAB, no signs
  codes(16, 0) = 0x00FF; // group (8, 0): c0 signs 0xFF
  const auto p = pack_lattice_codes(codes.cview(), LatticeCodebook::kE8P12);
  ASSERT_EQ(p.rows(), 32);
  ASSERT_EQ(p.cols(), 2);
  // abs32 = 01 | 03<<8 | 05<<16 | 07<<24; sign32 bit 4j+q = bit j of c_q's sign byte:
  // c0 0x02 → bit 4, c1 0x04 → bit 9, c2 0x06 → bits 6, 10, c3 0x08 → bit 15.
  EXPECT_EQ(static_cast<uint64_t>(p(0, 0)), (uint64_t{0x8650} << 32) | 0x07050301u);
  // Group (1, 0) is word-row 1 of tile (0, 0): flat index 4 of the 32 × 2 view → out(2, 0).
  EXPECT_EQ(static_cast<uint64_t>(p(2, 0)), 0xABu);
  // Group (8, 0) is word-row 0 of tile (1, 0): flat index 32 → out(16, 0); signs 0xFF of c0 → bits 0,4,…,28.
  EXPECT_EQ(static_cast<uint64_t>(p(16, 0)), uint64_t{0x11111111} << 32);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < p.size(); ++i) nonzero += p.data()[i] != 0;
  EXPECT_EQ(nonzero, 3);
}

TEST(LatticePacking, Rvq3bResidualLayout) {
  HostMatrix<uint32_t> codes(16, 8);
  for (int q = 0; q < 8; ++q) codes(3, q) = static_cast<uint32_t>(0x10 + q);
  const auto p = pack_lattice_codes(codes.cview(), LatticeCodebook::kE8P12RVQ3B);
  ASSERT_EQ(p.cols(), 3);  // 2 E8P words + 1 E81B word per row
  EXPECT_EQ(static_cast<uint64_t>(p(3, 2)), 0x1716151413121110ull);
}

TEST(LatticePacking, RejectsBadShapesAndCodes) {
  HostMatrix<uint32_t> codes(8, 8);
  EXPECT_THROW((void)pack_lattice_codes(codes.cview(), LatticeCodebook::kE8P12), Error);
  HostMatrix<uint32_t> big(16, 8);
  big(0, 0) = 0x10000;
  EXPECT_THROW((void)pack_lattice_codes(big.cview(), LatticeCodebook::kE8P12), Error);
  big(0, 0) = 0x0100;
  EXPECT_THROW((void)pack_lattice_codes(big.cview(), LatticeCodebook::kE8P12RVQ3B), Error);
}

TEST(BitPacking, HandCheckedAndRoundTrip) {
  HostMatrix<uint8_t> c(1, 3);
  c(0, 0) = 1;
  c(0, 1) = 2;
  c(0, 2) = 3;
  EXPECT_EQ(pack_bits(c.cview(), 2)(0, 0), 0x39u);  // 01 | 10<<2 | 11<<4
  // 3-bit codes straddle words: code 10 (bits 30..32) = 7 → bits 30, 31 of word 0 and bit 0 of word 1.
  HostMatrix<uint8_t> s(1, 11);
  s(0, 10) = 7;
  const auto ps = pack_bits(s.cview(), 3);
  ASSERT_EQ(ps.cols(), 2);
  EXPECT_EQ(ps(0, 0), 0xC0000000u);
  EXPECT_EQ(ps(0, 1), 0x1u);
  for (int bits : {2, 3, 4}) {
    HostMatrix<uint8_t> codes(7, 45);
    for (int64_t i = 0; i < codes.size(); ++i) codes.data()[i] = static_cast<uint8_t>((i * 2654435761u >> 7) % (1u << bits));
    const auto packed = pack_bits(codes.cview(), bits);
    EXPECT_EQ(packed.cols(), (45 * bits + 31) / 32);
    EXPECT_EQ(unpack_bits(packed.cview(), bits, 45).storage(), codes.storage()) << bits << " bits";
  }
  HostMatrix<uint8_t> bad(1, 1);
  bad(0, 0) = 4;
  EXPECT_THROW((void)pack_bits(bad.cview(), 2), Error);
}

GroupQuantResult quantize_host(const HostMatrix<float>& x, const GroupQuantizer& q) {
  auto& be = test::cpu_backend();
  auto d = be.upload(x.cview(), "x");
  return group_quantize(be, d.cview(), q);
}

TEST(GroupQuantizer, ConstantAndZeroRows) {
  auto& be = test::cpu_backend();
  HostMatrix<float> x(3, 16);
  for (int64_t j = 0; j < 16; ++j) {
    x(0, j) = 0.0f;   // zero row
    x(1, j) = 2.5f;   // constant positive row
    x(2, j) = -0.5f;  // constant negative row
  }
  // GPTQ/RTN variant: the range contains 0, constant rows are reproduced, zero rows use [−1, 1].
  const auto g = quantize_host(x, GroupQuantizer::gptq(4, 0));
  const auto xh = be.download(g.xhat);
  const auto sc = be.download(g.scale);
  for (int64_t j = 0; j < 16; ++j) {
    EXPECT_EQ(xh(0, j), 0.0f);
    EXPECT_FLOAT_EQ(xh(1, j), 2.5f);
    EXPECT_FLOAT_EQ(xh(2, j), -0.5f);
  }
  EXPECT_FLOAT_EQ(sc(0, 0), 2.0f / 15.0f);
  // SpQR variant (data range only): lo == hi → [−1, 1] (spqr.md §4.1), so 2.5 clips to 1.
  const auto s = quantize_host(x, GroupQuantizer::spqr(3, 8));
  const auto sh = be.download(s.xhat);
  for (int64_t j = 0; j < 16; ++j) {
    EXPECT_NEAR(sh(0, j), 0.0f, 2.0f / 7.0f);
    EXPECT_NEAR(sh(1, j), 1.0f, 1e-6f);
    EXPECT_NEAR(sh(2, j), -0.5f, 1.0f / 7.0f);
  }
}

TEST(GroupQuantizer, HalfwayTiesRoundToEven) {
  auto& be = test::cpu_backend();
  // Range [0, 3] at 2 bits: s = 1, z = 0; 0.5 → 0, 1.5 → 2, 2.5 → 2 (half to even).
  HostMatrix<float> x(1, 6);
  const float v[6] = {0.0f, 0.5f, 1.5f, 2.5f, 3.0f, 1.0f};
  for (int j = 0; j < 6; ++j) x(0, j) = v[j];
  const auto g = quantize_host(x, GroupQuantizer::spqr(2, 0));
  const auto c = be.download(g.codes);
  EXPECT_EQ(c(0, 1), 0);
  EXPECT_EQ(c(0, 2), 2);
  EXPECT_EQ(c(0, 3), 2);
  EXPECT_EQ(c(0, 4), 3);
  EXPECT_EQ(c(0, 5), 1);
}

TEST(GroupQuantizer, GroupsAlongColumnsAndErrorBound) {
  auto& be = test::cpu_backend();
  const auto x = test::random_normal(9, 100, 17);  // last group of 100 % 16 = 4 columns
  for (auto sym : {ScalarSymmetry::kAsymmetric, ScalarSymmetry::kSymmetric})
    for (int bits : {2, 3, 4, 8}) {
      GroupQuantizer q = GroupQuantizer::spqr(bits, 16);
      q.symmetry = sym;
      const auto g = quantize_host(x, q);
      ASSERT_EQ(g.scale.cols(), 7);
      const auto xh = be.download(g.xhat);
      const auto sc = be.download(g.scale);
      const auto codes = be.download(g.codes);
      for (int64_t i = 0; i < 9; ++i)
        for (int64_t j = 0; j < 100; ++j) {
          ASSERT_LT(codes(i, j), 1 << bits);
          // Every value is within half a step of its reconstruction, except SpQR's symmetric grid on
          // an all-positive group (its range [lo, hi] is then not centred on the zero point).
          float lo = x(i, j / 16 * 16);
          for (int64_t c = j / 16 * 16; c < std::min<int64_t>(100, j / 16 * 16 + 16); ++c) lo = std::min(lo, x(i, c));
          if (sym == ScalarSymmetry::kSymmetric && lo >= 0) continue;
          ASSERT_LE(std::fabs(xh(i, j) - x(i, j)), 0.5f * sc(i, j / 16) * (1 + 1e-4f) + 1e-6f) << i << "," << j;
        }
      auto deq = be.make<float>(9, 100, "deq");
      be.quant().scalar_dequantize(g.codes.cview(), g.grid(), deq.view());
      EXPECT_EQ(test::rel_diff(be.download(deq), xh), 0.0);
    }
  EXPECT_THROW((void)quantize_host(x, GroupQuantizer::spqr(9, 16)), ConfigError);
}

}  // namespace
}  // namespace caldera::quant
