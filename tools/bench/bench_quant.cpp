// bench_quant: throughput of the quantization primitives on the CPU reference backend and on CUDA
// side by side, printed as one markdown table (DESIGN §7).
//
//   bench_quant [--reps 3] [--warmup 1] [--had-sizes 4096,11008,14336,28672] [--cpu-had-rows 256]
//               [--cuda-had-rows 8192] [--cpu-encode-rows 256] [--cuda-encode-rows 8192]
//               [--ldlq-m 4096] [--ldlq-n 11008] [--tune 10] [--cpu-ldlq-rows 256]
//               [--cpu-threads N] [--no-cpu] [--no-cuda] [--no-ldlq]
//
// Rows of the table:
//   e8p-encode {2,3,4}-bit   exact nearest-codeword encoding (E8P12, RVQ3B, RVQ4B) of every
//                            8-vector of an rows × 4096 standard normal matrix (·1.03); 8-vectors/s
//   hadamard n               hadU (with a sign vector) on rows × n: rows/s and GB/s (read + write)
//   block-ldl n              block LDL of the synthetic Hessian (Cholesky + 8×8 blocks), seconds
//   ldlq m×n, tune T         LDLQ with E8P12 (initial pass + T tune sweeps), seconds
// Synthetic inputs: W standard normal ·1.03 (the work does not depend on its spectrum); the
// Hessian is B diag(d) Bᵀ + ridge with B n×1024 standard normal and d_i = (i+1)^-1.5 (a decaying
// spectrum of correlated channels), normalised to mean diagonal 1, ridge 0.01 (spec §6.5).
// Rates are the median of --reps timed runs after --warmup runs; CUDA is timed up to synchronize().
// The CPU runs LDLQ on the first --cpu-ldlq-rows rows of W and scales the time by m / rows (LDLQ
// is linear in m: rows are independent and every GEMM has m rows); the cell says so.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "linalg/backend.h"
#include "quant/hadamard.h"
#include "quant/lattice.h"
#include "quant/ldl.h"
#include "quant/ldlq.h"
#include "bench_common.h"

namespace caldera::bench {
namespace {

using linalg::Backend;
using linalg::BackendKind;
using linalg::Matrix;
using linalg::Op;

struct Options {
  int reps = 3;
  int warmup = 1;
  std::vector<int64_t> had_sizes{4096, 11008, 14336, 28672};
  int64_t cpu_had_rows = 256;
  int64_t cuda_had_rows = 8192;
  int64_t cpu_encode_rows = 256;
  int64_t cuda_encode_rows = 8192;
  int64_t ldlq_m = 4096;
  int64_t ldlq_n = 11008;
  int tune = 10;
  int64_t cpu_ldlq_rows = 256;
  int cpu_threads = 0;
  bool run_cpu = true;
  bool run_cuda = true;
  bool run_ldlq = true;
};

constexpr std::string_view kUsage =
    "usage: bench_quant [--reps R] [--warmup W] [--had-sizes N,N,...] [--cpu-had-rows R] [--cuda-had-rows R]\n"
    "                   [--cpu-encode-rows R] [--cuda-encode-rows R] [--ldlq-m M] [--ldlq-n N] [--tune T]\n"
    "                   [--cpu-ldlq-rows R] [--cpu-threads K] [--no-cpu] [--no-cuda] [--no-ldlq]\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      CALDERA_CHECK_AS(ConfigError, i + 1 < argc, arg, ": missing value");
      return argv[++i];
    };
    auto integer = [&](int64_t min_value) { return parse_int(arg, value(), min_value); };
    if (arg == "--reps") o.reps = static_cast<int>(integer(1));
    else if (arg == "--warmup") o.warmup = static_cast<int>(integer(0));
    else if (arg == "--had-sizes") {
      o.had_sizes.clear();
      std::istringstream in{std::string(value())};
      for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) o.had_sizes.push_back(parse_int("--had-sizes", item, 1));
    } else if (arg == "--cpu-had-rows") o.cpu_had_rows = integer(1);
    else if (arg == "--cuda-had-rows") o.cuda_had_rows = integer(1);
    else if (arg == "--cpu-encode-rows") o.cpu_encode_rows = integer(1);
    else if (arg == "--cuda-encode-rows") o.cuda_encode_rows = integer(1);
    else if (arg == "--ldlq-m") o.ldlq_m = integer(1);
    else if (arg == "--ldlq-n") o.ldlq_n = integer(8);
    else if (arg == "--tune") o.tune = static_cast<int>(integer(0));
    else if (arg == "--cpu-ldlq-rows") o.cpu_ldlq_rows = integer(1);
    else if (arg == "--cpu-threads") o.cpu_threads = static_cast<int>(integer(0));
    else if (arg == "--no-cpu") o.run_cpu = false;
    else if (arg == "--no-cuda") o.run_cuda = false;
    else if (arg == "--no-ldlq") o.run_ldlq = false;
    else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      raise<ConfigError>("unknown option '", arg, "'\n", kUsage);
    }
  }
  CALDERA_CHECK_AS(ConfigError, o.ldlq_n % 8 == 0, "--ldlq-n must be a multiple of 8, got ", o.ldlq_n);
  return o;
}

double median_seconds(Backend& be, const Options& o, const std::function<void()>& reset,
                      const std::function<void()>& run) {
  return bench::median_seconds(be, o.warmup, o.reps, reset, run);
}

Matrix<float> normal_matrix(Backend& be, int64_t rows, int64_t cols, float scale, uint64_t seed) {
  auto m = be.make<float>(rows, cols, "bench input");
  be.fill_normal(m.view(), Rng(seed).stream({static_cast<uint64_t>(RngPurpose::kTestData)}).key());
  if (scale != 1.0f) be.scale(m.view(), scale);
  return m;
}

/// B diag(d) Bᵀ / tr · n + 0.01 I, B n×k standard normal, d_i = (i+1)^-1.5.
Matrix<float> synthetic_hessian(Backend& be, int64_t n) {
  const int64_t k = std::min<int64_t>(1024, n);
  auto b = normal_matrix(be, n, k, 1.0f, 77);
  HostMatrix<float> d(1, k);
  for (int64_t i = 0; i < k; ++i) d(0, i) = static_cast<float>(std::pow(static_cast<double>(i + 1), -0.75));
  auto dd = be.upload(d.cview(), "decay");
  be.mul_cols(b.view(), dd.cview());
  auto h = be.make<float>(n, n, "bench H");
  be.gemm(Op::kNoTrans, Op::kTrans, 1.0f, b.cview(), b.cview(), 0.0f, h.view());
  auto diag = be.make<float>(1, n, "diag");
  be.diagonal(h.cview(), diag.view());
  const auto hd = be.download(diag);
  double tr = 0;
  for (int64_t i = 0; i < n; ++i) tr += hd(0, i);
  be.scale(h.view(), static_cast<float>(static_cast<double>(n) / tr));
  be.add_diagonal(h.view(), 0.01f);
  return h;
}

struct Cell {
  double value = -1;  ///< the measured quantity (a rate or seconds); < 0 when absent
  std::string note;   ///< reason for no value, or a remark appended to it
};

std::string number(double v) {
  char text[48];
  if (v >= 1e6)
    std::snprintf(text, sizeof text, "%.3g", v);
  else
    std::snprintf(text, sizeof text, v < 0.01 ? "%.5f" : v < 1 ? "%.4f" : v < 100 ? "%.2f" : "%.0f", v);
  return text;
}

std::string show(const Cell& c) { return c.value >= 0 ? number(c.value) + (c.note.empty() ? "" : " " + c.note) : c.note; }

Cell guarded(Backend* be, const char* what, const std::function<Cell(Backend&)>& f) {
  if (be == nullptr) return {-1, "n/a"};
  try {
    return f(*be);
  } catch (const std::exception& e) {
    std::cerr << "bench_quant: " << what << " on " << be->description() << ": " << e.what() << "\n";
    return {-1, "error"};
  }
}

/// One row: | what | shape | CPU | CUDA | ratio |; `higher_is_better` decides the ratio's direction.
void print_row(const std::string& what, const std::string& shape, const Cell& c, const Cell& g, bool higher_is_better) {
  std::string ratio = "n/a";
  if (c.value > 0 && g.value > 0) ratio = number(higher_is_better ? g.value / c.value : c.value / g.value) + "×";
  std::cout << "| " << what << " | " << shape << " | " << show(c) << " | " << show(g) << " | " << ratio << " |\n"
            << std::flush;
}

Cell bench_encode(Backend& be, int64_t rows, LatticeCodebook cb, const Options& o) {
  const int64_t cols = 4096;
  auto x = normal_matrix(be, rows, cols, 1.03f, 11);
  auto xhat = be.make<float>(rows, cols, "xhat");
  auto codes = be.make<uint32_t>(rows, cols / 8, "codes");
  const double s = median_seconds(
      be, o, [] {},
      [&] { quant::lattice_quantize(be, x.cview(), cb, lattice_default_residual_scale(cb), xhat.view(), codes.view()); });
  return {static_cast<double>(rows * cols / 8) / s, ""};
}

struct HadRates {
  Cell rows_per_s, gb_per_s;
};

HadRates bench_hadamard(Backend& be, int64_t rows, int64_t n, const Options& o) {
  const auto f = quant::hadamard_factor(n);
  auto x = normal_matrix(be, rows, n, 1.0f, 12);
  const auto signs = Rng(3).signs(n);
  auto s = be.upload(MatrixView<const float>(signs.data(), 1, n), "signs");
  const double t = median_seconds(
      be, o, [] {}, [&] { be.quant().hadamard_rows(x.view(), f, Op::kTrans, s.cview(), {}); });
  return {{static_cast<double>(rows) / t, ""}, {2.0 * 4.0 * static_cast<double>(rows * n) / t / 1e9, ""}};
}

struct LdlqTimes {
  Cell block_ldl, initial, tuned;
};

LdlqTimes bench_ldlq(Backend& be, int64_t rows, const Options& o) {
  const int64_t n = o.ldlq_n;
  auto h = synthetic_hessian(be, n);
  auto w = normal_matrix(be, rows, n, 1.03f, 13);
  be.synchronize();
  LdlqTimes t;
  Stopwatch watch;
  const quant::BlockLdl ldl = quant::block_ldl(be, h.cview());
  be.synchronize();
  t.block_ldl.value = watch.elapsed_s();
  const auto q = quant::LdlqQuantizer::lattice(LatticeCodebook::kE8P12);
  const double scale = static_cast<double>(o.ldlq_m) / static_cast<double>(rows);
  const std::string note = rows == o.ldlq_m ? "" : detail::concat("(from ", rows, " rows ×", number(scale), ")");
  Options once = o;
  once.reps = 1;
  once.warmup = 0;
  t.initial = {median_seconds(be, once, [] {}, [&] { (void)quant::ldlq(be, w.cview(), h.cview(), ldl, q, 0); }) * scale,
               note};
  t.tuned = {
      median_seconds(be, once, [] {}, [&] { (void)quant::ldlq(be, w.cview(), h.cview(), ldl, q, o.tune); }) * scale,
      note};
  return t;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("model name")) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  linalg::BackendOptions cpu_options;
  cpu_options.cpu_threads = o.cpu_threads > 0 ? o.cpu_threads
                                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unique_ptr<Backend> cpu = o.run_cpu ? linalg::make_backend(BackendKind::kCpu, cpu_options) : nullptr;
  std::unique_ptr<Backend> cuda;
  if (o.run_cuda && linalg::backend_available(BackendKind::kCuda)) cuda = linalg::make_backend(BackendKind::kCuda);

  std::cout << "## bench_quant: CPU vs CUDA\n\n"
            << "- CPU: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " hardware threads"
            << (cpu ? "; backend " + cpu->description() : std::string("; not run (--no-cpu)")) << "\n"
            << "- GPU: " << (cuda ? cuda->description() : std::string("none (CUDA not built, no device, or --no-cuda)"))
            << "\n- median of " << o.reps << " timed run(s) after " << o.warmup
            << " warm-up run(s) (LDLQ: one run); CUDA timed up to synchronize(); synthetic inputs (see "
               "tools/bench/bench_quant.cpp)\n\n"
            << "| operation | shape | CPU | CUDA | CUDA/CPU |\n|---|---|---:|---:|---:|\n"
            << std::flush;

  const struct {
    LatticeCodebook cb;
    const char* name;
  } codebooks[] = {{LatticeCodebook::kE8P12, "e8p-encode 2-bit (8-vectors/s)"},
                   {LatticeCodebook::kE8P12RVQ3B, "e8p-encode 3-bit RVQ (8-vectors/s)"},
                   {LatticeCodebook::kE8P12RVQ4B, "e8p-encode 4-bit RVQ (8-vectors/s)"}};
  for (const auto& c : codebooks) {
    const Cell cc = guarded(cpu.get(), c.name, [&](Backend& be) { return bench_encode(be, o.cpu_encode_rows, c.cb, o); });
    const Cell gc = guarded(cuda.get(), c.name, [&](Backend& be) { return bench_encode(be, o.cuda_encode_rows, c.cb, o); });
    print_row(c.name, detail::concat("CPU ", o.cpu_encode_rows, "×4096, CUDA ", o.cuda_encode_rows, "×4096"), cc, gc,
              true);
  }
  for (const int64_t n : o.had_sizes) {
    HadRates hc{{-1, "n/a"}, {-1, "n/a"}}, hg{{-1, "n/a"}, {-1, "n/a"}};
    if (cpu) {
      hc.rows_per_s = guarded(cpu.get(), "hadamard", [&](Backend& be) {
        hc = bench_hadamard(be, o.cpu_had_rows, n, o);
        return hc.rows_per_s;
      });
      if (hc.rows_per_s.value < 0) hc.gb_per_s = hc.rows_per_s;
    }
    if (cuda) {
      hg.rows_per_s = guarded(cuda.get(), "hadamard", [&](Backend& be) {
        hg = bench_hadamard(be, o.cuda_had_rows, n, o);
        return hg.rows_per_s;
      });
      if (hg.rows_per_s.value < 0) hg.gb_per_s = hg.rows_per_s;
    }
    const auto f = quant::hadamard_factor(n);
    const std::string shape = detail::concat("n = ", n, " (K = ", f.k, ", p = ", f.p, ")");
    print_row("hadamard hadUt + signs (rows/s)", shape, hc.rows_per_s, hg.rows_per_s, true);
    print_row("hadamard hadUt + signs (GB/s)", shape, hc.gb_per_s, hg.gb_per_s, true);
  }
  if (o.run_ldlq) {
    LdlqTimes lc{{-1, "n/a"}, {-1, "n/a"}, {-1, "n/a"}}, lg = lc;
    if (cpu)
      lc.block_ldl = guarded(cpu.get(), "ldlq", [&](Backend& be) {
        lc = bench_ldlq(be, std::min(o.cpu_ldlq_rows, o.ldlq_m), o);
        return lc.block_ldl;
      });
    if (cuda)
      lg.block_ldl = guarded(cuda.get(), "ldlq", [&](Backend& be) {
        lg = bench_ldlq(be, o.ldlq_m, o);
        return lg.block_ldl;
      });
    const std::string shape = detail::concat(o.ldlq_m, "×", o.ldlq_n);
    print_row("block LDL of H (s)", detail::concat("n = ", o.ldlq_n), lc.block_ldl, lg.block_ldl, false);
    print_row("LDLQ E8P12, no tune sweep (s)", shape, lc.initial, lg.initial, false);
    print_row(detail::concat("LDLQ E8P12 + ", o.tune, " tune sweeps (s)"), shape, lc.tuned, lg.tuned, false);
  }
  return 0;
}

}  // namespace
}  // namespace caldera::bench

int main(int argc, char** argv) {
  return caldera::bench::guarded_main("bench_quant", [&] { return caldera::bench::run(argc, argv); });
}
