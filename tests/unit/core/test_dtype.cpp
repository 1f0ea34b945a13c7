#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/dtype.h"

namespace caldera {
namespace {

// Reference fp32 -> fp16 by exhaustive search over the 65536 patterns is too slow per value; instead
// round-trip every fp16 pattern and check monotone rounding at midpoints.
TEST(Dtype, F16RoundTripsEveryFinitePattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = f16_to_f32(bits);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), bits) << "pattern " << h << " value " << f;
  }
}

TEST(Dtype, F16RoundsToNearestEven) {
  // 1 + 2^-11 is exactly between 1 and 1 + 2^-10: ties to even -> 1.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 is between 1+2^-10 (odd mantissa) and 1+2^-9: ties to even -> 1 + 2^-9.
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
}

TEST(Dtype, Bf16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; h += 7) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_bf16(f), h);
  }
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(bits_float(0x7f800001u)))));
}

TEST(Dtype, NamesRoundTrip) {
  for (DType t : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32, DType::kI16,
                  DType::kI8, DType::kU8, DType::kBool}) {
    DType back;
    ASSERT_TRUE(parse_dtype(dtype_name(t), &back));
    EXPECT_EQ(back, t);
  }
  DType unused;
  EXPECT_FALSE(parse_dtype("F8_E4M3", &unused));
  EXPECT_EQ(dtype_size(DType::kBF16), 2);
}

}  // namespace
}  // namespace caldera
