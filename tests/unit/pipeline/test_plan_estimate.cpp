// Method::estimate against the real compress(): the backend memory a method's replay predicts
// (algo/estimate.h) must be what compress() allocates at its peak, for every configuration whose
// allocation pattern differs (rank 0 / fp16 / E8P / uniform factors, exact / randomized SVD, LDLQ
// rounding of R, downdate on / off / exact ridge, RHT off, nearest rounding of Q, both shapes of
// lr_init), on every backend (CUDA skips without a GPU). The work counts are checked for the
// scaling they must have (iterations, tune sweeps).
#include <gtest/gtest.h>

#include <functional>

#include "algo/caldera.h"
#include "algo/method_factory.h"
#include "algo/rtn.h"
#include "algo_test_util.h"
#include "test_util.h"

namespace caldera::algo {
namespace {

using linalg::BackendKind;

/// Largest relative difference between the predicted and the measured backend peak.
constexpr double kCpuMaxRelDiff = 0.01;
/// CUDA adds cuSOLVER workspaces whose size the estimate takes from LAPACK's formulas.
constexpr double kCudaMaxRelDiff = 0.05;

struct Case {
  std::string name;
  std::function<std::unique_ptr<Method>()> make;
  int64_t m, n;
};

CalderaParams small_caldera() {
  CalderaParams p;
  p.rank = 16;
  p.iters = 2;
  p.lplr_iters = 2;
  p.tune_iters = 1;
  return p;
}

std::vector<Case> cases() {
  auto caldera = [](std::function<void(CalderaParams&)> edit) {
    return [edit] {
      CalderaParams p = small_caldera();
      edit(p);
      return std::unique_ptr<Method>(std::make_unique<CalderaMethod>(p, "caldera"));
    };
  };
  std::vector<Case> c;
  c.push_back({"caldera_wide", caldera([](CalderaParams&) {}), 128, 256});
  c.push_back({"caldera_tall", caldera([](CalderaParams&) {}), 256, 128});
  c.push_back({"caldera_one_iteration", caldera([](CalderaParams& p) { p.iters = 1; }), 128, 256});
  c.push_back({"caldera_fp16_factors", caldera([](CalderaParams& p) { p.bits_lr = 16; }), 128, 256});
  c.push_back({"caldera_randomized_svd", caldera([](CalderaParams& p) { p.lr_svd = LrSvdSolver::kRandomized; }), 128, 256});
  c.push_back({"caldera_ldlq_factors_per_row",
               caldera([](CalderaParams& p) {
                 p.factor_rounding = FactorRounding::kLdlq;
                 p.factor_scales = FactorScaleMode::kPerRow;
               }),
               128, 256});
  c.push_back({"caldera_uniform_factors",
               caldera([](CalderaParams& p) {
                 p.factor_format = FactorFormat::kUniform;
                 p.factor_scales = FactorScaleMode::kPerRow;
               }),
               128, 256});
  c.push_back({"caldera_no_downdate", caldera([](CalderaParams& p) { p.downdate = DowndateMode::kOff; }), 128, 256});
  c.push_back({"caldera_exact_ridge", caldera([](CalderaParams& p) { p.downdate_ridge = DowndateRidge::kExact; }), 128, 256});
  c.push_back({"caldera_no_rht", caldera([](CalderaParams& p) { p.incoherence = Incoherence::kNone; }), 128, 256});
  c.push_back({"caldera_nearest_q", caldera([](CalderaParams& p) { p.q_rounding = QRounding::kNearest; }), 128, 256});
  c.push_back({"quip", [] { return std::unique_ptr<Method>(std::make_unique<CalderaMethod>(CalderaParams::quip_sharp(), "quip")); },
               128, 256});
  c.push_back({"rtn", [] { return std::unique_ptr<Method>(std::make_unique<RtnMethod>(RtnParams{})); }, 128, 256});
  return c;
}

class EstimateMatchesCompress : public ::testing::TestWithParam<BackendKind> {};

TEST_P(EstimateMatchesCompress, BackendPeakOfEveryConfiguration) {
  CALDERA_REQUIRE_BACKEND(GetParam());
  auto backend = linalg::make_backend(GetParam());
  const double tolerance = GetParam() == BackendKind::kCuda ? kCudaMaxRelDiff : kCpuMaxRelDiff;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto method = c.make();
    const HostMatrix<float> w = test_methods::synthetic_weight(c.m, c.n, 7);
    const InputStats stats = test_methods::synthetic_stats(c.n, 4 * c.n, 11);
    test_methods::MemoryCheckpointStore store;
    backend->synchronize();
    const int64_t before = static_cast<int64_t>(backend->memory_stats().current_bytes);
    backend->reset_peak_memory();
    MethodContext ctx{*backend, Rng(3).stream({0, 0}), UnitId{0, "mlp.down_proj", 6}, &store, {}, {}};
    const CompressedUnit unit = method->compress(ctx, w.view(), stats);
    const int64_t measured = static_cast<int64_t>(backend->memory_stats().peak_bytes) - before;
    const UnitEstimate e = method->estimate(c.m, c.n, GetParam());
    EXPECT_TRUE(e.modeled);
    EXPECT_NEAR(static_cast<double>(e.memory.backend), static_cast<double>(measured), tolerance * static_cast<double>(measured))
        << "predicted " << e.memory.backend << " bytes, compress() peaked at " << measured;
    // The host side at least holds the fp64 and fp32 Hessians.
    EXPECT_GE(e.memory.host, 12 * c.n * c.n);
    EXPECT_GE(e.memory.combined, std::max(e.memory.backend, e.memory.host));
    EXPECT_GT(e.work.gemm_flops, 0.0);
    EXPECT_GT(e.result_bytes, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, EstimateMatchesCompress, ::testing::Values(BackendKind::kCpu, BackendKind::kCuda),
                         [](const auto& info) { return std::string(linalg::to_string(info.param)); });

TEST(UnitEstimate, WorkScalesWithIterationsAndTuneSweeps) {
  CalderaParams p = small_caldera();
  p.iters = 4;
  const CalderaMethod four(p, "caldera");
  p.iters = 8;
  const CalderaMethod eight(p, "caldera");
  const auto e4 = four.estimate(4096, 11008, BackendKind::kCuda);
  const auto e8 = eight.estimate(4096, 11008, BackendKind::kCuda);
  // The per-iteration work dominates: doubling the iterations nearly doubles the flops.
  EXPECT_GT(e8.work.gemm_flops / e4.work.gemm_flops, 1.8);
  EXPECT_LT(e8.work.gemm_flops / e4.work.gemm_flops, 2.0 + 1e-9);
  EXPECT_EQ(e8.checkpoints, 8);
  // Memory does not depend on the iteration count.
  EXPECT_EQ(e4.memory.backend, e8.memory.backend);
  // Tune sweeps: 2·m·n² flops each, per outer iteration.
  p.tune_iters = 11;
  const CalderaMethod more_tune(p, "caldera");
  const auto et = more_tune.estimate(4096, 11008, BackendKind::kCuda);
  const double per_sweep = 2.0 * 4096.0 * 11008.0 * 11008.0;
  EXPECT_NEAR(et.work.gemm_flops - e8.work.gemm_flops, 10.0 * 8.0 * per_sweep, 1e-6 * et.work.gemm_flops);
}

TEST(UnitEstimate, Llama70bDownProjNeedsTensOfGigabytes) {
  // DESIGN §2: the largest 70B unit (8192 x 28672 with a 28672² Hessian) needs roughly 15-45 GB.
  const CalderaMethod paper(CalderaParams::paper(), "caldera");
  const auto e = paper.estimate(8192, 28672, BackendKind::kCuda);
  EXPECT_GT(e.memory.backend, int64_t{15} << 30);
  EXPECT_LT(e.memory.backend, int64_t{45} << 30);
  // Host: the fp64 and fp32 processed Hessians at least (12 n²).
  EXPECT_GE(e.memory.host, int64_t{12} * 28672 * 28672);
}

/// A method without a model of its own gets Method's generic default, marked as such.
class NoModelMethod final : public Method {
 public:
  std::string name() const override { return "nomodel"; }
  std::vector<std::pair<std::string, std::string>> parameters() const override { return {}; }
  CompressedUnit compress(const MethodContext&, MatrixView<const float>, const InputStats&) const override { return {}; }
  HostMatrix<float> reconstruct(linalg::Backend&, const TensorMap&) const override { return {}; }
  double cost_estimate(int64_t m, int64_t n) const override { return static_cast<double>(m) * static_cast<double>(n); }
};

TEST(UnitEstimate, GenericDefaultIsMarkedUnmodeled) {
  const NoModelMethod m;
  const auto e = m.estimate(256, 512, BackendKind::kCpu);
  EXPECT_FALSE(e.modeled);
  EXPECT_GT(e.memory.backend, 6 * 4 * 256 * 512 - 1);
  EXPECT_GT(e.memory.host, 12 * 512 * 512 - 1);
}

TEST(MemoryTally, PeaksBreakdownsAndNesting) {
  MemoryTally t;
  {
    auto a = t.backend(10, 10, 4, "a");  // 400
    auto b = t.host(5, 10, 8, "b");      // 400
    {
      auto c = t.backend(1, 100, 1, "c");  // 100: backend 500, combined 900
    }
    t.touch(MemorySpace::kHost, 50, "d");  // host 450, combined 850
    t.nest({1000, 0, 1000}, "inner");      // backend 1400, combined 1800
    a.release();
    EXPECT_EQ(t.current(MemorySpace::kBackend), 0);
  }
  EXPECT_EQ(t.current(MemorySpace::kHost), 0);
  EXPECT_EQ(t.peaks().backend, 1400);
  EXPECT_EQ(t.peaks().host, 450);
  EXPECT_EQ(t.peaks().combined, 1800);
  ASSERT_EQ(t.at_backend_peak().size(), 2u);
  EXPECT_EQ(t.at_backend_peak()[0].first, "inner");
  EXPECT_EQ(t.at_backend_peak()[0].second, 1000);
  EXPECT_EQ(t.at_backend_peak()[1].first, "a");
  EXPECT_THROW((void)t.hold(MemorySpace::kHost, -1), Error);
  // Moving a hold keeps one allocation.
  auto x = t.host(1, 64, 1, "x");
  auto y = std::move(x);
  EXPECT_EQ(t.current(MemorySpace::kHost), 64);
  y.release();
  EXPECT_EQ(t.current(MemorySpace::kHost), 0);
}

}  // namespace
}  // namespace caldera::algo
