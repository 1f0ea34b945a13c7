// CUDA-only behaviour of CudaBackend (labels parity;gpu): device selection, the memory pool and its
// accounting, the out-of-memory message, DeviceBuffer, kernel argument checks, the fatal path of
// sticky errors, and the elementwise kernels at sizes where grid-stride loops and multi-block
// reductions matter, compared with the CPU reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "linalg/backend.h"
#include "linalg/cuda/cuda_backend.h"
#include "test_util.h"

namespace caldera::linalg {
namespace {

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CALDERA_REQUIRE_BACKEND(BackendKind::kCuda);
    be_ = std::make_unique<CudaBackend>(BackendOptions{});
  }
  std::unique_ptr<CudaBackend> be_;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(CudaBackendTest, DescribesItsDevice) {
  const CudaDeviceInfo& info = be_->device_info();
  EXPECT_FALSE(info.name.empty());
  EXPECT_GT(info.sm_count, 0);
  EXPECT_GE(info.compute_capability_major, 8);
  EXPECT_GT(info.shared_memory_per_block_optin_bytes, 0u);
  EXPECT_GT(info.total_memory_bytes, size_t{1} << 30);
  EXPECT_TRUE(contains(be_->description(), "cuda:0")) << be_->description();
  EXPECT_TRUE(contains(be_->description(), info.name)) << be_->description();
  EXPECT_NE(be_->stream(), nullptr);
  EXPECT_NE(be_->cublas(), nullptr);
  EXPECT_NE(be_->cusolver(), nullptr);
}

TEST_F(CudaBackendTest, DeviceFollowsLocalRankModuloDeviceCount) {
  const int count = cuda_device_count();
  BackendOptions options;
  options.local_rank = count;  // wraps around to device 0
  EXPECT_EQ(CudaBackend(options).device(), 0);
  options.local_rank = 2 * count - 1;
  EXPECT_EQ(CudaBackend(options).device(), count - 1);
  options.local_rank = -1;
  EXPECT_THROW(CudaBackend{options}, ConfigError);
  options = BackendOptions{};
  options.device = count;
  EXPECT_THROW(CudaBackend{options}, ConfigError);
}

TEST_F(CudaBackendTest, OutOfMemoryNamesLabelSizeFreeMemoryAndLiveAllocations) {
  DeviceBuffer<float> live(*be_, size_t{1} << 20, "live-buffer-for-oom-test");
  const size_t before = be_->memory_stats().current_bytes;
  const size_t absurd = be_->device_info().total_memory_bytes + (size_t{1} << 30);  // a GiB more than exists
  try {
    (void)be_->allocate_bytes(absurd, "absurd-request");
    FAIL() << "allocating more than the device's memory succeeded";
  } catch (const CudaError& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "out of memory")) << msg;
    EXPECT_TRUE(contains(msg, "GiB for 'absurd-request'")) << msg;
    EXPECT_TRUE(contains(msg, "free of")) << msg;
    EXPECT_TRUE(contains(msg, "live-buffer-for-oom-test")) << msg;
  }
  // The failure leaves the backend usable and the accounting unchanged.
  EXPECT_EQ(be_->memory_stats().current_bytes, before);
  auto m = be_->make<float>(64, 64, "after-oom");
  be_->fill(m.view(), 2.0f);
  EXPECT_DOUBLE_EQ(be_->sum_squares(m.cview()), 4.0 * 64 * 64);
}

TEST_F(CudaBackendTest, DeviceBufferIsMoveOnlyAndTracked) {
  static_assert(!std::is_copy_constructible_v<DeviceBuffer<float>>);
  static_assert(!std::is_copy_assignable_v<DeviceBuffer<float>>);
  static_assert(std::is_nothrow_move_constructible_v<DeviceBuffer<float>>);
  const size_t before = be_->memory_stats().current_bytes;
  {
    DeviceBuffer<double> a(*be_, 1000, "a");
    EXPECT_EQ(be_->memory_stats().current_bytes, before + 8000);
    DeviceBuffer<double> b = std::move(a);
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(b.size(), 1000u);
    EXPECT_EQ(be_->memory_stats().current_bytes, before + 8000);
    be_->fill(b.view(10, 100), 1.5);
    EXPECT_DOUBLE_EQ(be_->sum_squares(MatrixView<const double>(b.view(10, 100))), 2.25 * 1000);
    EXPECT_THROW((void)b.view(11, 100), Error);
    DeviceBuffer<double> c(*be_, 0, "empty");
    EXPECT_TRUE(c.empty());
    c = std::move(b);
    EXPECT_EQ(c.size(), 1000u);
  }
  EXPECT_EQ(be_->memory_stats().current_bytes, before);
}

TEST_F(CudaBackendTest, RepeatedAllocationsKeepAccountingFlat) {
  const size_t before = be_->memory_stats().current_bytes;
  be_->reset_peak_memory();
  for (int i = 0; i < 20; ++i) {
    DeviceBuffer<std::byte> chunk(*be_, size_t{256} << 20, "reuse");
    be_->fill(MatrixView<float>(reinterpret_cast<float*>(chunk.data()), 1, 1024, 1024), float(i));
  }
  be_->synchronize();
  EXPECT_EQ(be_->memory_stats().current_bytes, before);
  EXPECT_EQ(be_->memory_stats().peak_bytes, before + (size_t{256} << 20));
}

TEST_F(CudaBackendTest, KernelRejectsMalformedViews) {
  auto m = be_->make<float>(4, 8, "m");
  const MatrixView<float> bad(m.data(), 4, 8, 4);  // ld < cols
  try {
    be_->fill(bad, 1.0f);
    FAIL() << "ld < cols accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "fill")) << e.what();
  }
}

TEST_F(CudaBackendTest, ElementwiseAtScaleMatchesCpuExactly) {
  auto& cpu = test::cpu_backend();
  const int64_t rows = 2100, cols = 3100;
  const auto host = test::random_normal(rows, cols, 41);
  const auto other = test::random_normal(rows, cols, 42);
  const auto vr = test::random_normal(2000, 1, 43);
  const auto vc = test::random_normal(1, 3000, 44);
  auto run = [&](Backend& be) {
    auto a = be.upload(host.cview(), "a");
    auto b = be.upload(other.cview(), "b");
    auto dr = be.upload(vr.cview(), "vr");
    auto dc = be.upload(vc.cview(), "vc");
    const MatrixView<float> blk = a.view().block(50, 60, 2000, 3000);
    be.axpby(0.75f, b.cview().block(7, 9, 2000, 3000), -1.25f, blk);
    be.mul_rows(blk, dr.cview());
    be.mul_cols(blk, dc.cview());
    be.scale(blk, 3.0f);
    be.add_diagonal(blk, 0.5f);
    auto t = be.make<float>(3000, 2000, "t");
    be.transpose(MatrixView<const float>(blk), t.view());
    auto d = be.make<double>(3000, 2000, "d");
    be.convert(t.cview(), d.view());
    be.scale(d.view(), 1.0 / 3.0);
    auto back = be.make<float>(3000, 2000, "back");
    be.convert(d.cview(), back.view());
    return std::make_pair(be.download(a), be.download(back));
  };
  const auto [ga, gb] = run(*be_);
  const auto [ca, cb] = run(cpu);
  for (int64_t i = 0; i < ga.size(); ++i) ASSERT_EQ(ga.data()[i], ca.data()[i]) << "a at " << i;
  for (int64_t i = 0; i < gb.size(); ++i) ASSERT_EQ(gb.data()[i], cb.data()[i]) << "back at " << i;
}

TEST_F(CudaBackendTest, ReductionsAreAccurateAndDeterministic) {
  const int64_t rows = 4096, cols = 4099;
  auto a = be_->make<float>(rows, cols, "a");
  auto b = be_->make<float>(rows, cols, "b");
  be_->fill_normal(a.view(), Rng(1).stream({7}).key());
  be_->fill_normal(b.view(), Rng(2).stream({7}).key());
  const auto ha = be_->download(a);
  const auto hb = be_->download(b);
  double ss = 0, dt = 0, ss_blk = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      ss += double(ha(i, j)) * ha(i, j);
      dt += double(ha(i, j)) * hb(i, j);
      if (i >= 3 && i < 3003 && j >= 5 && j < 4005) ss_blk += double(ha(i, j)) * ha(i, j);
    }
  const double g1 = be_->sum_squares(a.cview());
  const double g2 = be_->sum_squares(a.cview());
  EXPECT_EQ(g1, g2) << "reduction order must not depend on timing";
  EXPECT_NEAR(g1, ss, 1e-11 * ss);
  EXPECT_NEAR(be_->dot(a.cview(), b.cview()), dt, 1e-11 * ss);
  EXPECT_EQ(be_->dot(a.cview(), b.cview()), be_->dot(a.cview(), b.cview()));
  EXPECT_NEAR(be_->sum_squares(a.cview().block(3, 5, 3000, 4000)), ss_blk, 1e-11 * ss_blk);
  EXPECT_TRUE(be_->all_finite(a.cview()));
  be_->fill(a.view().block(4000, 17, 1, 1), std::numeric_limits<float>::infinity());
  EXPECT_FALSE(be_->all_finite(a.cview()));
  EXPECT_TRUE(be_->all_finite(a.cview().block(0, 0, 4000, cols)));
  auto d = be_->make<double>(300, 300, "d");
  be_->fill(d.view(), 1.0);
  be_->fill(d.view().block(299, 299, 1, 1), std::numeric_limits<double>::quiet_NaN());
  EXPECT_FALSE(be_->all_finite(d.cview()));
}

TEST_F(CudaBackendTest, FillNormalAtScaleMatchesCpu) {
  auto& cpu = test::cpu_backend();
  const RngKey key = Rng(11).stream({1, 2, 3}).key();
  auto g = be_->make<float>(1024, 1000, "g");
  be_->fill_normal(g.view(), key);
  auto c = cpu.make<float>(1024, 1000, "c");
  cpu.fill_normal(c.view(), key);
  const auto hg = be_->download(g);
  const auto hc = cpu.download(c);
  // Box-Muller runs in double with CUDA's and glibc's log/cos, which may differ in the last bits of
  // the double; after rounding to float the values agree unless a double lands within a few ulps
  // of a float rounding boundary (~1e-8 per value). So: at most one value in 1e5 may differ, and
  // then by one float ulp. The small bit-for-bit case is in test_backend_ops.
  int64_t mismatches = 0;
  for (int64_t i = 0; i < hg.size(); ++i) {
    const float a = hg.data()[i], b = hc.data()[i];
    if (a == b) continue;
    ++mismatches;
    EXPECT_EQ(std::nextafter(a, b), b) << "value " << i << " differs by more than one ulp: " << a << " vs " << b;
  }
  EXPECT_LE(mismatches, hg.size() / 100000) << mismatches << " of " << hg.size() << " values differ";
}

TEST_F(CudaBackendTest, GramMirrorIsExactlySymmetricAtOddSizes) {
  for (int64_t n : {1, 31, 33, 1000}) {
    auto x = be_->make<float>(77, n, "x");
    be_->fill_normal(x.view(), Rng(3).stream({static_cast<uint64_t>(n)}).key());
    auto h = be_->make<double>(n, n, "h");
    be_->fill(h.view(), 0.0);
    be_->gram_accumulate(x.cview(), h.view());
    const auto hh = be_->download(h);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < i; ++j) ASSERT_EQ(hh(i, j), hh(j, i)) << n << ": " << i << "," << j;
  }
}

TEST_F(CudaBackendTest, UploadFromHostMemoryIsCompleteWhenItReturns) {
  // The host buffer is reused right after upload(): the device must hold the first contents.
  std::vector<float> host(1 << 22, 1.0f);
  auto m = be_->make<float>(1 << 11, 1 << 11, "m");
  be_->upload(MatrixView<const float>(host.data(), 1 << 11, 1 << 11), m.view());
  std::fill(host.begin(), host.end(), 5.0f);
  EXPECT_DOUBLE_EQ(be_->sum_squares(m.cview()), double(1 << 22));
}

TEST(CudaBackendDeathTest, StickyErrorIsFatal) {
  CALDERA_REQUIRE_BACKEND(BackendKind::kCuda);
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: CUDA does not survive fork()
  EXPECT_DEATH(
      {
        CudaBackend be{BackendOptions{}};
        // An unmapped device address: the kernel faults with cudaErrorIllegalAddress.
        be.fill(MatrixView<float>(reinterpret_cast<float*>(uintptr_t{1} << 12), 64, 1024, 1024), 1.0f);
        be.synchronize();
      },
      "unusable");
}

}  // namespace
}  // namespace caldera::linalg
