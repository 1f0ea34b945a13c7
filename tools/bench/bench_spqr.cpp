// bench_spqr: per-matrix time of GPTQ and SpQR at Llama shapes on the CPU backend and on CUDA side
// by side, printed as one markdown table (DESIGN §7: benchmarks are programs).
//
//   bench_spqr [--shapes 4096x4096,11008x4096,4096x11008] [--methods gptq-4bit-g128,spqr-near-lossless]
//              [--tokens 4096] [--cpu-max-mn 16777216] [--cpu-threads N] [--no-cpu] [--no-cuda]
//
// Inputs are SYNTHETIC (no 7B model here): W (m×n) standard normal with log-normal row scales and
// 0.1 % entries multiplied by 8 (heavy tails, so SpQR finds outliers); X (tokens×n) standard
// normal with log-normal column scales plus a shared rank-1 component (correlated channels);
// Σxxᵀ = XᵀX accumulated in fp64 on the fastest backend. Each method runs once per backend (the
// whole per-matrix call: Hessian preparation, GPTQ passes incl. SpQR's τ search); the columns
// split that time into Hessian preparation, the host column loop and the backend part (panel
// transfers + lazy-update GEMMs). The CPU side is skipped for m·n > --cpu-max-mn.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "algo/gptq.h"
#include "algo/spqr.h"
#include "core/timer.h"
#include "linalg/backend.h"
#include "bench_common.h"

namespace caldera::bench {
namespace {

using linalg::BackendKind;

struct Options {
  std::vector<std::pair<int64_t, int64_t>> shapes{{4096, 4096}, {11008, 4096}, {4096, 11008}};
  std::vector<std::string> methods{"gptq-4bit-g128", "spqr-near-lossless", "spqr-3bit"};
  int64_t tokens = 4096;
  int64_t cpu_max_mn = int64_t{4096} * 4096;
  int cpu_threads = 0;
  bool run_cpu = true;
  bool run_cuda = true;
};

constexpr std::string_view kUsage =
    "usage: bench_spqr [--shapes MxN,...] [--methods NAME,...] [--tokens T] [--cpu-max-mn K]\n"
    "                  [--cpu-threads N] [--no-cpu] [--no-cuda]\n"
    "methods: gptq-4bit-g128 gptq-3bit-g128 spqr-near-lossless spqr-3bit (the presets in configs/)\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) raise<ConfigError>(a, " needs a value\n", kUsage);
      return argv[++i];
    };
    if (a == "--shapes") {
      o.shapes.clear();
      for (const auto& s : split_commas(value())) {
        const auto x = s.find('x');
        if (x == std::string::npos) raise<ConfigError>("--shapes: expected MxN, got '", s, "'");
        o.shapes.emplace_back(std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1)));
      }
    } else if (a == "--methods") {
      o.methods = split_commas(value());
    } else if (a == "--tokens") {
      o.tokens = std::stoll(value());
    } else if (a == "--cpu-max-mn") {
      o.cpu_max_mn = std::stoll(value());
    } else if (a == "--cpu-threads") {
      o.cpu_threads = std::stoi(value());
    } else if (a == "--no-cpu") {
      o.run_cpu = false;
    } else if (a == "--no-cuda") {
      o.run_cuda = false;
    } else {
      raise<ConfigError>("unknown option '", a, "'\n", kUsage);
    }
  }
  return o;
}

/// The presets of configs/ (same values; the bench does not read INI files).
struct Preset {
  bool spqr = false;
  algo::GptqParams gptq;
  algo::SpqrParams spqr_params;
};
Preset preset(const std::string& name) {
  Preset p;
  if (name == "gptq-4bit-g128" || name == "gptq-3bit-g128") {
    p.gptq.bits = name == "gptq-4bit-g128" ? 4 : 3;
    p.gptq.group_size = 128;
    p.gptq.percdamp = 0.01;
    return p;
  }
  p.spqr = true;
  algo::SpqrParams& s = p.spqr_params;
  s.percdamp = 1.0;
  s.outlier_threshold = 0.2;
  s.outlier_max_rate = 0.01;
  if (name == "spqr-near-lossless") {
    s.bits = 4, s.stat_bits = 3, s.group_size = 16, s.stat_group_size = 16;
  } else if (name == "spqr-3bit") {
    s.bits = 3, s.stat_bits = 3, s.group_size = 8, s.stat_group_size = 64;
  } else {
    raise<ConfigError>("unknown method '", name, "'\n", kUsage);
  }
  return p;
}

struct Cell {
  bool ran = false;
  double total_s = 0, hessian_s = 0, host_s = 0, backend_s = 0, rel_error = 0, bits = 0, outlier_rate = 0, tau = 0;
  int runs = 1;
};

Cell run(linalg::Backend& be, const Preset& p, const HostMatrix<float>& w, const algo::InputStats& stats) {
  Cell c;
  Stopwatch sw;
  HostMatrix<float> w_hat;
  if (p.spqr) {
    algo::SpqrResult r = algo::spqr_quantize_matrix(be, w.cview(), stats, p.spqr_params);
    c.hessian_s = r.hessian_s, c.host_s = r.loop.host_s, c.backend_s = r.loop.backend_s;
    c.bits = algo::spqr_storage_bits(r.encoding.format, w.rows(), w.cols(), r.encoding.outliers());
    c.outlier_rate = r.outlier_rate();
    c.tau = r.tau;
    c.runs = r.runs;
    w_hat = std::move(r.w_hat);
  } else {
    algo::GptqResult r = algo::gptq_quantize_matrix(be, w.cview(), stats, p.gptq);
    c.hessian_s = r.hessian_s, c.host_s = r.loop.host_s, c.backend_s = r.loop.backend_s;
    c.bits = algo::gptq_storage_bits(p.gptq.bits, w.rows(), w.cols(), r.encoding.group_size);
    w_hat = std::move(r.w_hat);
  }
  c.total_s = sw.elapsed_s();
  c.bits /= static_cast<double>(w.size());
  c.rel_error = algo::hessian_relative_error(be, w.cview(), w_hat.cview(), stats);
  c.ran = true;
  return c;
}

std::string timing(const Cell& c) {
  if (!c.ran) return "n/a";
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%.2f (%.2f / %.2f / %.2f)", c.total_s, c.hessian_s, c.host_s, c.backend_s);
  return buf;
}

int main_impl(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::unique_ptr<linalg::Backend> cpu, cuda;
  if (o.run_cpu) {
    linalg::BackendOptions bo;
    bo.cpu_threads = o.cpu_threads;
    cpu = linalg::make_backend(BackendKind::kCpu, bo);
  }
  if (o.run_cuda && linalg::backend_available(BackendKind::kCuda)) cuda = linalg::make_backend(BackendKind::kCuda);
  std::unique_ptr<linalg::Backend> gen_cpu;
  if (!cuda && !cpu) gen_cpu = linalg::make_backend(BackendKind::kCpu);
  linalg::Backend& gen = cuda ? *cuda : (cpu ? *cpu : *gen_cpu);

  std::printf("| shape (m×n) | method | avg bits | outliers | τ (passes) | rel. error | CPU s (hessian / host / backend) | "
              "CUDA s (hessian / host / backend) | CUDA speedup |\n|---|---|---|---|---|---|---|---|---|\n");
  uint64_t seed = 1;
  for (const auto& [m, n] : o.shapes) {
    // Synthetic inputs (see the header comment), generated on `gen` and copied to the host.
    HostMatrix<float> w;
    {
      linalg::Matrix<float> wd = gen.make<float>(m, n, "w");
      gen.fill_normal(wd.view(), Rng(seed).stream({1}).key());
      w = gen.download(wd);
    }
    const Rng scales(seed + 7);
    for (int64_t i = 0; i < m; ++i) {
      const float rs = static_cast<float>(std::exp(0.3 * scales.normal(static_cast<uint64_t>(i))));
      for (int64_t j = 0; j < n; ++j) w(i, j) *= rs * (scales.uniform(static_cast<uint64_t>(i * n + j) + 1000003) < 0.001f ? 8.0f : 1.0f);
    }
    algo::InputStats stats;
    {
      linalg::Matrix<float> x = gen.make<float>(o.tokens, n, "x");
      gen.fill_normal(x.view(), Rng(seed).stream({2}).key());
      HostMatrix<float> col(1, n), shared(o.tokens, 1), v(1, n);
      for (int64_t j = 0; j < n; ++j) {
        col(0, j) = static_cast<float>(std::exp(0.5 * scales.normal(static_cast<uint64_t>(j) + 77777)));
        v(0, j) = static_cast<float>(scales.normal(static_cast<uint64_t>(j) + 99991));
      }
      for (int64_t t = 0; t < o.tokens; ++t) shared(t, 0) = static_cast<float>(scales.normal(static_cast<uint64_t>(t) + 555557));
      gen.mul_cols(x.view(), gen.upload(col.cview(), "col").cview());
      linalg::Matrix<float> sd = gen.upload(shared.cview(), "shared"), vd = gen.upload(v.cview(), "v");
      gen.gemm(linalg::Op::kNoTrans, linalg::Op::kNoTrans, 1.0f, sd.cview(), vd.cview(), 1.0f, x.view());
      linalg::Matrix<double> h = gen.make<double>(n, n, "h");
      gen.fill(h.view(), 0.0);
      gen.gram_accumulate(x.cview(), h.view());
      stats.sum_xxt = gen.download(h);
      stats.count = o.tokens;
      stats.n_sequences = std::max<int64_t>(1, o.tokens / 2048);
    }
    ++seed;
    for (const std::string& name : o.methods) {
      const Preset p = preset(name);
      Cell c_cpu, c_cuda;
      if (cpu && m * n <= o.cpu_max_mn) c_cpu = run(*cpu, p, w, stats);
      if (cuda) c_cuda = run(*cuda, p, w, stats);
      const Cell& any = c_cuda.ran ? c_cuda : c_cpu;
      char speed[32] = "n/a";
      if (c_cpu.ran && c_cuda.ran) std::snprintf(speed, sizeof(speed), "%.1fx", c_cpu.total_s / c_cuda.total_s);
      char tau[32] = "-";
      if (p.spqr) std::snprintf(tau, sizeof(tau), "%.3g (%d)", any.tau, any.runs);
      std::printf("| %lld×%lld | %s | %.3f | %.3f %% | %s | %.4f | %s | %s | %s |\n", static_cast<long long>(m),
                  static_cast<long long>(n), name.c_str(), any.bits, 100 * any.outlier_rate, tau, any.rel_error,
                  timing(c_cpu).c_str(), timing(c_cuda).c_str(), speed);
      std::fflush(stdout);
    }
  }
  std::printf("\nCPU: %s\nCUDA: %s\n", cpu ? cpu->description().c_str() : "not run",
              cuda ? cuda->description().c_str() : "not available");
  return 0;
}

}  // namespace
}  // namespace caldera::bench

int main(int argc, char** argv) {
  return caldera::bench::guarded_main("bench_spqr", [&] { return caldera::bench::main_impl(argc, argv); });
}
