// RTN baseline, the method factory / validation, and the spec §7.3 bit accounting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "algo/bits.h"
#include "algo/method_factory.h"
#include "core/dtype.h"
#include "algo_test_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using test::cpu_backend;

TEST(Bits, SpecTable73ForLlamaShapes) {
  // Average over one decoder layer (every layer has the same shapes) of spec §7.3's formula.
  struct Model {
    const char* name;
    int64_t hidden, inter, kv;
    double r64b4, r64b16, r256b4, r256b16;
  };
  const Model models[] = {{"Llama-2-7B", 4096, 11008, 4096, 2.099, 2.395, 2.395, 3.580},
                          {"Llama-2-13B", 5120, 13824, 5120, 2.079, 2.316, 2.316, 3.263},
                          {"Llama-2-70B", 8192, 28672, 1024, 2.048, 2.194, 2.194, 2.775},
                          {"Llama-3-8B", 4096, 14336, 1024, 2.096, 2.385, 2.385, 3.538}};
  for (const auto& md : models) {
    const std::pair<int64_t, int64_t> shapes[] = {{md.hidden, md.hidden}, {md.kv, md.hidden},   {md.kv, md.hidden},
                                                  {md.hidden, md.hidden}, {md.inter, md.hidden}, {md.inter, md.hidden},
                                                  {md.hidden, md.inter}};
    auto avg = [&](int rank, int bits_lr) {
      double bits = 0, params = 0;
      for (auto [m, n] : shapes) {
        bits += paper_bits(m, n, rank, 2, bits_lr, bits_lr);
        params += static_cast<double>(m) * n;
      }
      return bits / params;
    };
    EXPECT_NEAR(avg(64, 4), md.r64b4, 5e-4) << md.name;
    EXPECT_NEAR(avg(64, 16), md.r64b16, 5e-4) << md.name;
    EXPECT_NEAR(avg(256, 4), md.r256b4, 5e-4) << md.name;
    EXPECT_NEAR(avg(256, 16), md.r256b16, 5e-4) << md.name;
    EXPECT_DOUBLE_EQ(avg(0, 4), 2.0);
  }
  EXPECT_DOUBLE_EQ(scalar_group_bits(512, 1408, 2, 64) / (512.0 * 1408), 2.5);
}

TEST(MethodFactory, ParsesMethodsAndReportsEveryProblemAtOnce) {
  EXPECT_EQ(parse_method_kind("quip"), MethodKind::kQuip);
  EXPECT_THROW((void)parse_method_kind("gptq2"), ConfigError);
  MethodConfig c = MethodConfig::defaults(MethodKind::kCaldera);
  EXPECT_TRUE(c.problems().empty());
  c.caldera.rank = 20;
  c.caldera.bits_q = 5;
  c.caldera.iters = 0;
  const auto p = c.problems();
  EXPECT_EQ(p.size(), 3u);
  try {
    c.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    for (const char* opt : {"--rank", "--bits-q", "--iters"}) EXPECT_NE(msg.find(opt), std::string::npos) << msg;
  }
  MethodConfig q = MethodConfig::defaults(MethodKind::kQuip);
  EXPECT_TRUE(q.problems().empty());
  EXPECT_EQ(make_method(q)->name(), "quip");
  q.caldera.rank = 16;
  EXPECT_FALSE(q.problems().empty());
  MethodConfig r = MethodConfig::defaults(MethodKind::kRtn);
  r.rtn.bits = 1;
  EXPECT_THROW((void)make_method(r), ConfigError);
  // Uniform factors require per-row scales.
  MethodConfig u = MethodConfig::defaults(MethodKind::kCaldera);
  u.caldera.factor_format = FactorFormat::kUniform;
  EXPECT_FALSE(u.problems().empty());
  u.caldera.factor_scales = FactorScaleMode::kPerRow;
  EXPECT_TRUE(u.problems().empty());
}

TEST(MethodFactory, AppliesOptionsByName) {
  MethodConfig c;
  apply_method_option(c, "method", "caldera");
  apply_method_option(c, "rank", "64");
  apply_method_option(c, "bits-lr", "16");
  apply_method_option(c, "factor-scales", "per-row");
  apply_method_option(c, "lr-split", "balanced");
  apply_method_option(c, "q-input-rms", "0.9");
  EXPECT_EQ(c.caldera.rank, 64);
  EXPECT_EQ(c.caldera.bits_lr, 16);
  EXPECT_EQ(c.caldera.factor_scales, FactorScaleMode::kPerRow);
  EXPECT_EQ(c.caldera.lr_split, LrSplit::kBalanced);
  EXPECT_DOUBLE_EQ(c.caldera.q_input_rms, 0.9);
  apply_method_option(c, "method", "quip");  // resets to the QuIP# preset
  EXPECT_EQ(c.caldera.rank, 0);
  EXPECT_TRUE(c.problems().empty());
  EXPECT_THROW(apply_method_option(c, "rank", "sixty"), ConfigError);
  EXPECT_THROW(apply_method_option(c, "factor-scales", "per-col"), ConfigError);
  EXPECT_THROW(apply_method_option(c, "ranks", "4"), ConfigError);
  // Every listed option is accepted by apply_method_option with some value.
  for (const auto& [name, help] : method_option_names()) {
    EXPECT_FALSE(help.empty()) << name;
    bool accepted = false;
    for (const char* v : {"2", "0.5", "on", "e8p", "per-row", "balanced", "exact", "ldlq", "minmax", "caldera", "abs-mean", "uniform", "uv", "f64", "local"}) {
      MethodConfig t;
      try {
        apply_method_option(t, name, v);
        accepted = true;
        break;
      } catch (const ConfigError&) {
      }
    }
    EXPECT_TRUE(accepted) << name;
  }
}

TEST(MethodFactory, ParametersNameTheOptionsAndRoundTrip) {
  // parameters() lists key=value pairs under the option names, and applying them reproduces them.
  for (MethodKind kind : {MethodKind::kCaldera, MethodKind::kQuip, MethodKind::kRtn}) {
    MethodConfig c = MethodConfig::defaults(kind);
    c.caldera.factor_scales = FactorScaleMode::kPerRow;
    c.caldera.lr_split = LrSplit::kBalanced;
    c.rtn.group_size = 128;
    const auto params = make_method(c)->parameters();
    MethodConfig back;
    apply_method_option(back, "method", std::string(to_string(kind)));
    for (const auto& [k, v] : params) apply_method_option(back, k, v);
    EXPECT_EQ(make_method(back)->parameters(), params) << to_string(kind);
  }
  bool has_rank = false;
  for (const auto& [k, v] : make_method(MethodConfig::defaults(MethodKind::kCaldera))->parameters())
    if (k == "rank") has_rank = v == "256";
  EXPECT_TRUE(has_rank);
}

class RtnTest : public ::testing::Test {
 protected:
  MethodContext context() { return MethodContext{cpu_backend(), Rng(1), UnitId{0, "mlp.up_proj", 5}, nullptr, {}, {}}; }
};

TEST_F(RtnTest, ReconstructMatchesMetricAndStaysOnTheGroupGrid) {
  const auto w = test_methods::synthetic_weight(32, 192, 8);
  const auto stats = test_methods::synthetic_stats(192, 256, 9);
  for (RtnGrid grid : {RtnGrid::kMinMax, RtnGrid::kGptq}) {
    RtnParams p;
    p.grid = grid;
    const RtnMethod method(p);
    const auto out = method.compress(context(), w.cview(), stats);
    const auto w_hat = method.reconstruct(cpu_backend(), out.tensors);
    ASSERT_EQ(w_hat.rows(), 32);
    ASSERT_EQ(w_hat.cols(), 192);
    EXPECT_EQ(out.metrics.bits, 32.0 * 192 * 2.5);
    // Each group of 64 holds at most 4 distinct values, and the error is at most half a step.
    const Tensor& s = out.tensors.at("scales");
    ASSERT_EQ(s.shape, std::vector<int64_t>({32, 3}));
    for (int64_t i = 0; i < 32; ++i)
      for (int64_t g = 0; g < 3; ++g) {
        std::vector<float> vals;
        const float step = f16_to_f32(s.as<uint16_t>()[i * 3 + g]);
        for (int64_t j = 64 * g; j < 64 * (g + 1); ++j) {
          if (std::find(vals.begin(), vals.end(), w_hat(i, j)) == vals.end()) vals.push_back(w_hat(i, j));
          if (grid == RtnGrid::kMinMax) {
            EXPECT_LE(std::abs(w_hat(i, j) - w(i, j)), 0.5f * step * 1.01f);
          }
        }
        EXPECT_LE(vals.size(), 4u);
      }
    // The metric is the spec §1.3 error of exactly what reconstruct() returns.
    const auto rel = method.compress(context(), w_hat.cview(), stats).metrics.rel_error;
    EXPECT_LT(rel, out.metrics.rel_error);  // re-quantizing an on-grid matrix is (nearly) lossless
    EXPECT_GT(out.metrics.rel_error, 0.05);
  }
}

TEST_F(RtnTest, PerChannelAndFourBits) {
  const auto w = test_methods::synthetic_weight(16, 128, 10);
  const auto stats = test_methods::synthetic_stats(128, 256, 11);
  RtnParams p2, p4;
  p2.group_size = 0;
  p4.bits = 4;
  const double e2 = RtnMethod(p2).compress(context(), w.cview(), stats).metrics.rel_error;
  const double e4 = RtnMethod(p4).compress(context(), w.cview(), stats).metrics.rel_error;
  EXPECT_LT(e4, e2 / 3);
}

}  // namespace
}  // namespace caldera::algo
