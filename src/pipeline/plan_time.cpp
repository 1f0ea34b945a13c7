#include "pipeline/plan_time.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "core/error.h"
#include "core/timer.h"
#include "quant/lattice.h"

namespace caldera::pipeline {
namespace {

std::string line(const char* what, double value, const char* unit, const char* source) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-28s %10.3g %-8s %s", what, value, unit, source);
  return buf;
}

/// Repeats `f` until at least `min_s` seconds passed (at least twice; the first call warms up);
/// returns seconds per call.
double time_per_call(const std::function<void()>& f, double min_s) {
  f();
  Stopwatch watch;
  int calls = 0;
  do {
    f();
    ++calls;
  } while (watch.elapsed_s() < min_s || calls < 2);
  return watch.elapsed_s() / calls;
}

}  // namespace

std::string_view to_string(GpuModel gpu) noexcept {
  switch (gpu) {
    case GpuModel::kH100: return "h100";
    case GpuModel::kA100: return "a100";
    case GpuModel::kH200: return "h200";
  }
  return "?";
}

GpuModel parse_gpu_model(std::string_view text) {
  for (GpuModel g : {GpuModel::kH100, GpuModel::kA100, GpuModel::kH200})
    if (text == to_string(g)) return g;
  raise<ConfigError>("--gpu: expected h100, a100 or h200, got '", text, "'");
}

int64_t gpu_memory_bytes(GpuModel gpu) noexcept {
  switch (gpu) {
    case GpuModel::kH100: return int64_t{81559} << 20;   // H100 80GB HBM3 (cudaMemGetInfo total)
    case GpuModel::kA100: return int64_t{81920} << 20;   // A100-SXM4-80GB
    case GpuModel::kH200: return int64_t{143771} << 20;  // H200 141GB HBM3e
  }
  return 0;
}

double ThroughputProfile::seconds(const algo::WorkEstimate& w) const {
  auto part = [](double amount, double rate) { return amount > 0 && rate > 0 ? amount / rate : 0.0; };
  return part(w.gemm_flops, fp32_flops) + part(w.fp64_flops, fp64_flops) + part(w.eigh_f64_n3, eigh_f64_n3) +
         part(w.eigh_f32_n3, eigh_f32_n3) + part(w.cholesky_n3, cholesky_n3) +
         part(w.rounded_weights, rounded_weights) + part(w.memory_bytes, memory_bytes);
}

ThroughputProfile gpu_profile(GpuModel gpu) {
  // H100 SXM baseline; A100 and H200 relative to it (vendor peak ratios: A100 FP32 19.5 vs 67
  // TFLOP/s, FP64 tensor 19.5 vs 67, HBM 2.0 vs 3.35 TB/s; H200 = H100 compute, HBM 4.8 TB/s).
  const double compute = gpu == GpuModel::kA100 ? 19.5 / 67.0 : 1.0;
  const double hbm = gpu == GpuModel::kA100 ? 2.0 / 3.35 : (gpu == GpuModel::kH200 ? 4.8 / 3.35 : 1.0);
  const char* scaled = gpu == GpuModel::kH100 ? "" : (gpu == GpuModel::kA100 ? " x A100/H100 peak ratio" : " (same chip as H100)");
  ThroughputProfile p;
  p.name = std::string(to_string(gpu));
  p.fp32_flops = 53e12 * compute;
  p.fp64_flops = 50e12 * compute;
  p.eigh_f32_n3 = 14336.0 * 14336.0 * 14336.0 / 1.760 * compute;
  p.eigh_f64_n3 = p.eigh_f32_n3 / 2.0;
  p.cholesky_n3 = 14336.0 * 14336.0 * 14336.0 / 0.030 * compute;
  p.rounded_weights = 1e10 * compute;
  p.memory_bytes = 3e12 * hbm;
  p.host_link_bytes = gpu == GpuModel::kA100 ? 12.5e9 : 25e9;
  p.read_bytes = 2e9;
  p.write_bytes = 1e9;
  p.network_bytes = 20e9;
  const std::string m = std::string("measured on an H100 for this project") + scaled;
  p.sources = {
      line("fp32 GEMM", p.fp32_flops, "flop/s", (m + ": SGEMM n = 8192-14336").c_str()),
      line("fp64 GEMM/SYRK", p.fp64_flops, "flop/s",
           (std::string("assumed: 75% of the H100 FP64 tensor-core peak (67 TFLOP/s)") + scaled).c_str()),
      line("fp32 eigh (n^3/s)", p.eigh_f32_n3, "n^3/s", (m + ": ssyevd 1.76 s at n = 14336").c_str()),
      line("fp64 eigh (n^3/s)", p.eigh_f64_n3, "n^3/s", "assumed: half the fp32 rate"),
      line("Cholesky (n^3/s)", p.cholesky_n3, "n^3/s", (m + ": spotrf 0.030 s at n = 14336").c_str()),
      line("lattice rounding", p.rounded_weights, "weight/s",
           (std::string("assumed: 512 fp64 candidate scores per 8 weights at 30% of FP64 peak") + scaled).c_str()),
      line("device memory", p.memory_bytes, "B/s",
           (gpu == GpuModel::kH100 ? m + ": D2D copy 3 TB/s" : std::string("H100 D2D copy x HBM bandwidth ratio")).c_str()),
      line("host <-> device", p.host_link_bytes, "B/s", "assumed: pageable PCIe copies"),
      line("file system read", p.read_bytes, "B/s", "assumed per rank: shared parallel file system"),
      line("file system write", p.write_bytes, "B/s", "assumed per rank: shared parallel file system"),
      line("reduction network", p.network_bytes, "B/s", "assumed per rank: NCCL over NVLink + 400 Gb/s InfiniBand"),
  };
  return p;
}

ThroughputProfile measure_cpu_profile(linalg::Backend& be) {
  CALDERA_CHECK(be.kind() == linalg::BackendKind::kCpu, "measure_cpu_profile needs the CPU backend");
  constexpr double kMinSeconds = 0.05;
  ThroughputProfile p;
  p.name = "cpu (measured here)";
  const Rng rng(20241122);
  {
    constexpr int64_t n = 384;
    auto a = be.make<float>(n, n, "plan bench a");
    auto b = be.make<float>(n, n, "plan bench b");
    auto c = be.make<float>(n, n, "plan bench c");
    be.fill_normal(a.view(), rng.stream({1}).key());
    be.fill_normal(b.view(), rng.stream({2}).key());
    const double s = time_per_call([&] { be.gemm(linalg::Op::kNoTrans, linalg::Op::kTrans, 1.0f, a.cview(), b.cview(), 0.0f, c.view()); },
                                   kMinSeconds);
    p.fp32_flops = 2.0 * n * n * n / s;
    // fp64 Gram of the same rows (what phase 1 and LR init do): rows·n² flops.
    auto g = be.make<double>(n, n, "plan bench gram");
    const double sg = time_per_call([&] { be.gram_accumulate(a.cview(), g.view()); }, kMinSeconds);
    p.fp64_flops = static_cast<double>(n) * n * n / sg;
    // Eigendecompositions and Cholesky of an SPD matrix.
    auto spd = be.make<double>(n, n, "plan bench spd");
    auto w = be.make<double>(1, n, "plan bench eigvals");
    auto spd32 = be.make<float>(n, n, "plan bench spd32");
    auto w32 = be.make<float>(1, n, "plan bench eigvals32");
    be.fill(g.view(), 0.0);
    be.gram_accumulate(a.cview(), g.view());
    be.add_diagonal(g.view(), static_cast<double>(n));
    const double se = time_per_call([&] { be.copy(g.cview(), spd.view()); be.eigh(spd.view(), w.view()); }, kMinSeconds);
    p.eigh_f64_n3 = static_cast<double>(n) * n * n / se;
    be.convert(g.cview(), spd32.view());
    auto chol = be.make<float>(n, n, "plan bench chol");
    const double se32 = time_per_call([&] { be.copy(spd32.cview(), chol.view()); be.eigh(chol.view(), w32.view()); }, kMinSeconds);
    p.eigh_f32_n3 = static_cast<double>(n) * n * n / se32;
    const double sc = time_per_call([&] { be.copy(spd32.cview(), chol.view()); be.cholesky(chol.view()); }, kMinSeconds);
    p.cholesky_n3 = static_cast<double>(n) * n * n / sc;
  }
  {
    auto x = be.make<float>(32, 1024, "plan bench lattice");
    be.fill_normal(x.view(), rng.stream({3}).key());
    const double s = time_per_call([&] { (void)quant::quant_factor(be, x.cview(), LatticeCodebook::kE8P12); }, kMinSeconds);
    p.rounded_weights = static_cast<double>(x.size()) / s;
  }
  {
    constexpr int64_t rows = 2048, cols = 2048;
    auto a = be.make<float>(rows, cols, "plan bench copy a");
    auto b = be.make<float>(rows, cols, "plan bench copy b");
    be.fill(a.view(), 1.0f);
    const double s = time_per_call([&] { be.copy(a.cview(), b.view()); }, kMinSeconds);
    p.memory_bytes = 2.0 * 4.0 * rows * cols / s;
    p.host_link_bytes = p.memory_bytes;
  }
  p.read_bytes = 1e9;
  p.write_bytes = 0.5e9;
  p.network_bytes = 5e9;
  const char* here = "measured here on the CPU backend";
  p.sources = {
      line("fp32 GEMM", p.fp32_flops, "flop/s", here),
      line("fp64 Gram (SYRK)", p.fp64_flops, "flop/s", here),
      line("fp32 eigh (n^3/s)", p.eigh_f32_n3, "n^3/s", here),
      line("fp64 eigh (n^3/s)", p.eigh_f64_n3, "n^3/s", here),
      line("Cholesky (n^3/s)", p.cholesky_n3, "n^3/s", here),
      line("lattice rounding", p.rounded_weights, "weight/s", here),
      line("memory", p.memory_bytes, "B/s", here),
      line("file system read", p.read_bytes, "B/s", "assumed per rank: local disk or NFS"),
      line("file system write", p.write_bytes, "B/s", "assumed per rank: local disk or NFS"),
      line("reduction network", p.network_bytes, "B/s", "assumed per rank: MPI over shared memory / Ethernet"),
  };
  return p;
}

}  // namespace caldera::pipeline
