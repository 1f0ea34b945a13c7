#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/fixed_point.h"

namespace caldera {
namespace {

TEST(FixedPoint, ConversionRoundsToNearestEven) {
  EXPECT_EQ(to_fixed(0.0), 0);
  EXPECT_EQ(to_fixed(1.0), Fixed128{1} << 60);
  EXPECT_EQ(to_fixed(-2.5), -(Fixed128{5} << 59));
  const double lsb = std::ldexp(1.0, -60);
  EXPECT_EQ(to_fixed(lsb), 1);
  EXPECT_EQ(to_fixed(0.5 * lsb), 0);        // tie -> even (0)
  EXPECT_EQ(to_fixed(1.5 * lsb), 2);        // tie -> even (2)
  EXPECT_EQ(to_fixed(2.5 * lsb), 2);        // tie -> even (2)
  EXPECT_EQ(to_fixed(0.75 * lsb), 1);
  EXPECT_EQ(to_fixed(0.25 * lsb), 0);
  EXPECT_EQ(to_fixed(std::ldexp(1.0, 65)), Fixed128{1} << 125);
  for (double v : {1e-10, 3.14159, -123456.789, 9.9e15, -7.0e19})
    EXPECT_NEAR(from_fixed(to_fixed(v)), v, std::abs(v) * 1e-15 + 1e-18) << v;
}

TEST(FixedPoint, SumsAreIndependentOfOrderAndGrouping) {
  std::mt19937_64 gen(7);
  std::lognormal_distribution<double> mag(0.0, 6.0);
  std::vector<double> values(5000);
  for (auto& v : values) v = (gen() & 1 ? -1.0 : 1.0) * std::min(mag(gen), 1e12);
  Fixed128 forward = 0;
  for (double v : values) forward += to_fixed(v);
  std::shuffle(values.begin(), values.end(), gen);
  // Three "ranks" with uneven slices, merged through the fp64 chunk representation.
  double total[3] = {0, 0, 0};
  const size_t cuts[] = {0, 1234, 4000, values.size()};
  for (int r = 0; r < 3; ++r) {
    Fixed128 part = 0;
    for (size_t i = cuts[r]; i < cuts[r + 1]; ++i) part += to_fixed(values[i]);
    double c[3];
    fixed_to_chunks(part, c);
    for (int k = 0; k < 3; ++k) total[k] += c[k];
  }
  EXPECT_TRUE(chunks_to_fixed(total) == forward);
  // A plain fp64 sum in another order generally differs in the last bits; the fixed sum does not.
  double fsum = 0;
  for (double v : values) fsum += v;
  EXPECT_NEAR(from_fixed(forward), fsum, std::abs(fsum) * 1e-12 + 1e-6);
}

TEST(FixedPoint, ChunksRoundTripNegativeAndLarge) {
  for (Fixed128 f : {Fixed128{0}, Fixed128{-1}, Fixed128{1} << 100, -(Fixed128{12345} << 90), Fixed128{987654321}}) {
    double c[3];
    fixed_to_chunks(f, c);
    EXPECT_TRUE(chunks_to_fixed(c) == f);
  }
}

}  // namespace
}  // namespace caldera
