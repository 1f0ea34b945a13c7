// Factor quantizers (spec §2.4 and the per-row / uniform variants): scales, zero rows, storage.
#include <gtest/gtest.h>

#include <cmath>

#include "algo/factor_quant.h"
#include "core/dtype.h"
#include "quant/lattice.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;

// Rows with RMS spanning four orders of magnitude, like R's rows carrying singular values.
HostMatrix<float> graded_rows(int64_t rows, int64_t cols, uint64_t seed) {
  auto x = test::random_normal(rows, cols, seed);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) x(i, j) *= static_cast<float>(std::pow(10.0, -4.0 * i / (rows - 1)));
  return x;
}

double row_rel_error(const HostMatrix<float>& a, const HostMatrix<float>& b, int64_t row) {
  double num = 0, den = 0;
  for (int64_t j = 0; j < a.cols(); ++j) {
    num += std::pow(static_cast<double>(a(row, j)) - b(row, j), 2);
    den += std::pow(static_cast<double>(b(row, j)), 2);
  }
  return std::sqrt(num / den);
}

TEST(FactorQuant, PaperPerTensorMatchesQuantFactor) {
  // FactorFormat::kE8p + kPerTensor is exactly QUANT_FACTOR of spec §2.4.
  auto& be = cpu_backend();
  const auto x = test::random_normal(16, 128, 1);
  auto dx = be.upload(x.cview(), "x");
  const auto q = make_factor_quantizer(FactorFormat::kE8p, 4, FactorScaleMode::kPerTensor);
  QuantizedFactor f;
  q->quantize(be, dx.cview(), f);
  const auto ref = quant::quant_factor(be, dx.cview(), LatticeCodebook::kE8P12RVQ4B);
  EXPECT_EQ(be.download(f.codes).storage(), be.download(ref.codes).storage());
  EXPECT_EQ(be.download(f.scales)(0, 0), ref.scale);
  EXPECT_LT(test::rel_diff(be.download(f.values), be.download(ref.xhat)), 1e-6);
  EXPECT_EQ(q->code_bits(), 4);
  EXPECT_EQ(q->scale_bits(16), 0.0);
}

TEST(FactorQuant, PerRowScalesKeepSmallRowsThatPerTensorCrushes) {
  auto& be = cpu_backend();
  const auto x = graded_rows(16, 256, 2);
  auto dx = be.upload(x.cview(), "x");
  QuantizedFactor per_tensor, per_row;
  make_factor_quantizer(FactorFormat::kE8p, 4, FactorScaleMode::kPerTensor)->quantize(be, dx.cview(), per_tensor);
  make_factor_quantizer(FactorFormat::kE8p, 4, FactorScaleMode::kPerRow)->quantize(be, dx.cview(), per_row);
  const auto vt = be.download(per_tensor.values), vr = be.download(per_row.values);
  // Per row: every row keeps the 4-bit relative accuracy (~0.1 of RMS-1 Gaussian data or better).
  for (int64_t i = 0; i < 16; ++i) EXPECT_LT(row_rel_error(vr, x, i), 0.12) << "row " << i;
  // Per tensor: the smallest rows are rounded to a few codewords around 0, with errors near 100%+.
  EXPECT_GT(row_rel_error(vt, x, 15), 0.9);
  // Scales are fp16 values.
  const auto s = be.download(per_row.scales);
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(s(i, 0), f16_to_f32(f32_to_f16(s(i, 0))));
}

TEST(FactorQuant, ZeroRowsAndZeroTensorsDequantizeToZero) {
  auto& be = cpu_backend();
  auto x = test::random_normal(16, 64, 3);
  for (int64_t j = 0; j < 64; ++j) x(5, j) = 0.0f;
  for (auto mode : {FactorScaleMode::kPerRow, FactorScaleMode::kPerTensor}) {
    const auto q = make_factor_quantizer(FactorFormat::kE8p, 4, mode);
    auto dx = be.upload(x.cview(), "x");
    QuantizedFactor f;
    q->quantize(be, dx.cview(), f);
    const auto v = be.download(f.values);
    if (mode == FactorScaleMode::kPerRow) {
      for (int64_t j = 0; j < 64; ++j) EXPECT_EQ(v(5, j), 0.0f);
    }
    for (float e : v.storage()) EXPECT_TRUE(std::isfinite(e));
    auto zero = be.make<float>(16, 64, "zero");
    be.fill(zero.view(), 0.0f);
    q->quantize(be, zero.cview(), f);
    const auto zq = be.download(f.values);
    for (float e : zq.storage()) EXPECT_EQ(e, 0.0f);
  }
}

TEST(FactorQuant, StoreLoadRoundTripIsBitIdentical) {
  auto& be = cpu_backend();
  const auto x = graded_rows(16, 128, 4);
  auto dx = be.upload(x.cview(), "x");
  struct Case {
    FactorFormat f;
    int bits;
    FactorScaleMode s;
  };
  for (const Case& c : {Case{FactorFormat::kE8p, 4, FactorScaleMode::kPerTensor},
                        Case{FactorFormat::kE8p, 4, FactorScaleMode::kPerRow},
                        Case{FactorFormat::kE8p, 2, FactorScaleMode::kPerRow},
                        Case{FactorFormat::kE8p, 3, FactorScaleMode::kPerRow},
                        Case{FactorFormat::kUniform, 4, FactorScaleMode::kPerRow}}) {
    const auto q = make_factor_quantizer(c.f, c.bits, c.s);
    QuantizedFactor f;
    q->quantize(be, dx.cview(), f);
    TensorMap t;
    q->store(be, f, "r", t);
    const auto back = q->load(be, t, "r", 16, 128);
    EXPECT_EQ(be.download(back.values).storage(), be.download(f.values).storage()) << q->describe();
    EXPECT_EQ(t.at("r_codes").numel() * (c.f == FactorFormat::kE8p ? 64 : 32), 16 * 128 * c.bits) << q->describe();
  }
}

TEST(FactorQuant, UniformIsMinMaxPerRowWithFp16Statistics) {
  auto& be = cpu_backend();
  const auto x = graded_rows(8, 64, 5);
  auto dx = be.upload(x.cview(), "x");
  const auto q = make_factor_quantizer(FactorFormat::kUniform, 4, FactorScaleMode::kPerRow);
  QuantizedFactor f;
  q->quantize(be, dx.cview(), f);
  const auto v = be.download(f.values);
  const auto s = be.download(f.scales);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(s(i, 0), f16_to_f32(f32_to_f16(s(i, 0))));
    for (int64_t j = 0; j < 64; ++j) EXPECT_LE(std::abs(v(i, j) - x(i, j)), 0.5f * s(i, 0) * 1.01f + 1e-12f);
  }
  EXPECT_EQ(q->scale_bits(8), 32.0 * 8);
}

TEST(FactorQuant, RejectsUnsupportedConfigurations) {
  EXPECT_THROW((void)make_factor_quantizer(FactorFormat::kE8p, 5, FactorScaleMode::kPerRow), ConfigError);
  EXPECT_THROW((void)make_factor_quantizer(FactorFormat::kUniform, 4, FactorScaleMode::kPerTensor), ConfigError);
  EXPECT_THROW((void)make_factor_quantizer(FactorFormat::kUniform, 9, FactorScaleMode::kPerRow), ConfigError);
}

}  // namespace
}  // namespace caldera::algo
