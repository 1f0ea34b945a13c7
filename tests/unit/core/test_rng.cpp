#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/rng.h"

namespace caldera {
namespace {

TEST(Rng, Philox4x32KnownAnswer) {
  // Random123 known-answer test vector for philox4x32-10 (counter 0, key 0).
  const uint32_t ctr[4] = {0, 0, 0, 0};
  uint32_t out[4];
  philox4x32_10(ctr, RngKey{0, 0}, out);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
  const uint32_t ctr2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  philox4x32_10(ctr2, RngKey{0xa4093822u, 0x299f31d0u}, out);
  EXPECT_EQ(out[0], 0xd16cfe09u);
  EXPECT_EQ(out[1], 0x94fdccebu);
  EXPECT_EQ(out[2], 0x5001e420u);
  EXPECT_EQ(out[3], 0x24126ea1u);
}

TEST(Rng, StreamsAreDeterministicAndDistinct) {
  const Rng a = Rng(42).stream(3, 5, RngPurpose::kSignsIn);
  const Rng b = Rng(42).stream(3, 5, RngPurpose::kSignsIn);
  const Rng c = Rng(42).stream(3, 5, RngPurpose::kSignsOut);
  const Rng d = Rng(43).stream(3, 5, RngPurpose::kSignsIn);
  EXPECT_EQ(a.signs(1000), b.signs(1000));
  EXPECT_NE(a.signs(1000), c.signs(1000));
  EXPECT_NE(a.signs(1000), d.signs(1000));
  EXPECT_EQ(Rng(7).stream({1, 2}).state(), Rng(7).stream({1}).stream({2}).state());
}

TEST(Rng, MomentsAreRight) {
  const Rng r = Rng(1).stream({9});
  const int n = 200000;
  double mean = 0, var = 0, sign_sum = 0, umean = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal(i);
    mean += x;
    var += x * x;
    sign_sum += r.sign(i);
    const float u = r.uniform(i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    umean += u;
  }
  mean /= n;
  var = var / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.015);
  EXPECT_NEAR(var, 1.0, 0.02);
  EXPECT_NEAR(sign_sum / n, 0.0, 0.015);
  EXPECT_NEAR(umean / n, 0.5, 0.005);
}

}  // namespace
}  // namespace caldera
