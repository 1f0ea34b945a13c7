// bench_linalg: times the heavy Backend operations on the CPU reference backend and on CUDA side
// by side, and prints one markdown table (DESIGN §7: benchmarks are programs that print ratios
// measured in one run).
//
//   bench_linalg [--sizes 4096,11008,14336] [--ops gemm-f32,gram-f64,...] [--reps 3] [--warmup 1]
//                [--tokens 2048] [--svd-rows 4096] [--cpu-max-n 4096] [--cpu-threads N]
//                [--no-cpu] [--no-cuda]
//
// Operations (n is the size given by --sizes; inputs are synthetic, generated with fill_normal):
//   gemm-f32, gemm-f64          C = A B, all n×n
//   gram-f64                    h += xᵀx, x tokens×n fp32 (--tokens), h n×n fp64 (the Hessian pass)
//   gram-f32                    the same with an fp32 h
//   cholesky-f64, cholesky-f32  n×n SPD (R + Rᵀ + n·I, R standard normal)
//   eigh-f64, eigh-f32          n×n symmetric (R + Rᵀ), eigenvectors included
//   svd-f32, svd-f64            thin SVD of an rows×n matrix, rows = min(n, --svd-rows): a Llama
//                               weight shape such as 4096×11008
// Each cell is the median of --reps timed runs after --warmup untimed ones; inputs are restored
// before every run (untimed); CUDA runs are timed up to synchronize(). The CPU side is skipped for
// n > --cpu-max-n (CPU eigh at 14336 takes minutes); such cells say so. Without a CUDA device (or
// build) the CUDA column reads "n/a".
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "linalg/backend.h"
#include "bench_common.h"

namespace caldera::bench {
namespace {

using linalg::Backend;
using linalg::BackendKind;
using linalg::Matrix;
using linalg::Op;

struct Options {
  std::vector<int64_t> sizes{4096, 11008, 14336};
  std::vector<std::string> ops{"gemm-f32", "gemm-f64", "gram-f64", "cholesky-f64", "eigh-f64", "eigh-f32", "svd-f32"};
  int reps = 3;
  int warmup = 1;
  int64_t tokens = 2048;
  int64_t svd_rows = 4096;
  int64_t cpu_max_n = 4096;
  int cpu_threads = 0;  // 0: all hardware threads
  bool run_cpu = true;
  bool run_cuda = true;
};

constexpr std::string_view kAllOps[] = {"gemm-f32",     "gemm-f64", "gram-f64", "gram-f32", "cholesky-f64",
                                        "cholesky-f32", "eigh-f64", "eigh-f32", "svd-f32",  "svd-f64"};

constexpr std::string_view kUsage =
    "usage: bench_linalg [--sizes N,N,...] [--ops OP,OP,...] [--reps R] [--warmup W] [--tokens T]\n"
    "                    [--svd-rows M] [--cpu-max-n N] [--cpu-threads K] [--no-cpu] [--no-cuda]\n"
    "ops: gemm-f32 gemm-f64 gram-f64 gram-f32 cholesky-f64 cholesky-f32 eigh-f64 eigh-f32 svd-f32 svd-f64\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      CALDERA_CHECK_AS(ConfigError, i + 1 < argc, arg, ": missing value");
      return argv[++i];
    };
    if (arg == "--sizes") {
      o.sizes.clear();
      for (const auto& s : split_commas(value())) o.sizes.push_back(parse_int("--sizes", s, 1));
    } else if (arg == "--ops") {
      o.ops = split_commas(value());
      for (const auto& op : o.ops)
        CALDERA_CHECK_AS(ConfigError, std::find(std::begin(kAllOps), std::end(kAllOps), op) != std::end(kAllOps),
                         "--ops: unknown operation '", op, "'\n", kUsage);
    } else if (arg == "--reps") {
      o.reps = static_cast<int>(parse_int(arg, value(), 1));
    } else if (arg == "--warmup") {
      o.warmup = static_cast<int>(parse_int(arg, value(), 0));
    } else if (arg == "--tokens") {
      o.tokens = parse_int(arg, value(), 1);
    } else if (arg == "--svd-rows") {
      o.svd_rows = parse_int(arg, value(), 1);
    } else if (arg == "--cpu-max-n") {
      o.cpu_max_n = parse_int(arg, value(), 0);
    } else if (arg == "--cpu-threads") {
      o.cpu_threads = static_cast<int>(parse_int(arg, value(), 0));
    } else if (arg == "--no-cpu") {
      o.run_cpu = false;
    } else if (arg == "--no-cuda") {
      o.run_cuda = false;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      raise<ConfigError>("unknown option '", arg, "'\n", kUsage);
    }
  }
  CALDERA_CHECK_AS(ConfigError, !o.sizes.empty() && !o.ops.empty(), "--sizes and --ops must not be empty");
  return o;
}

double median_seconds(Backend& be, const Options& o, const std::function<void()>& reset,
                      const std::function<void()>& run) {
  return bench::median_seconds(be, o.warmup, o.reps, reset, run);
}

/// rows×cols matrix of standard normal values (fp32 draws, widened for double).
template <class T>
Matrix<T> random_matrix(Backend& be, int64_t rows, int64_t cols, uint64_t seed) {
  auto f = be.make<float>(rows, cols, "bench input");
  be.fill_normal(f.view(), Rng(seed).stream({static_cast<uint64_t>(RngPurpose::kTestData)}).key());
  if constexpr (std::is_same_v<T, float>) {
    return f;
  } else {
    auto d = be.make<double>(rows, cols, "bench input");
    be.convert(f.cview(), d.view());
    return d;
  }
}

/// R + Rᵀ + shift·I for a standard normal R (symmetric; SPD for shift = n).
template <class T>
Matrix<T> symmetric_matrix(Backend& be, int64_t n, T shift, uint64_t seed) {
  auto r = random_matrix<T>(be, n, n, seed);
  auto s = be.make<T>(n, n, "bench symmetric");
  be.transpose(r.cview(), s.view());
  be.axpby(T(1), r.cview(), T(1), s.view());
  if (shift != T(0)) be.add_diagonal(s.view(), shift);
  return s;
}

template <class T>
double bench_gemm(Backend& be, int64_t n, const Options& o) {
  auto a = random_matrix<T>(be, n, n, 1), b = random_matrix<T>(be, n, n, 2);
  auto c = be.make<T>(n, n, "c");
  return median_seconds(
      be, o, [] {}, [&] { be.gemm(Op::kNoTrans, Op::kNoTrans, T(1), a.cview(), b.cview(), T(0), c.view()); });
}

template <class T>
double bench_gram(Backend& be, int64_t n, const Options& o) {
  auto x = random_matrix<float>(be, o.tokens, n, 3);
  auto h = be.make<T>(n, n, "h");
  return median_seconds(
      be, o, [&] { be.fill(h.view(), T(0)); }, [&] { be.gram_accumulate(x.cview(), h.view()); });
}

template <class T>
double bench_cholesky(Backend& be, int64_t n, const Options& o) {
  const auto spd = symmetric_matrix<T>(be, n, static_cast<T>(n), 4);
  auto work = be.make<T>(n, n, "work");
  return median_seconds(
      be, o, [&] { be.copy(spd.cview(), work.view()); }, [&] { be.cholesky(work.view()); });
}

template <class T>
double bench_eigh(Backend& be, int64_t n, const Options& o) {
  const auto sym = symmetric_matrix<T>(be, n, T(0), 5);
  auto work = be.make<T>(n, n, "work");
  auto w = be.make<T>(1, n, "w");
  return median_seconds(
      be, o, [&] { be.copy(sym.cview(), work.view()); }, [&] { be.eigh(work.view(), w.view()); });
}

template <class T>
double bench_svd(Backend& be, int64_t n, const Options& o) {
  const int64_t m = std::min(n, o.svd_rows), k = std::min(m, n);
  const auto a = random_matrix<T>(be, m, n, 6);
  auto u = be.make<T>(m, k, "u"), s = be.make<T>(1, k, "s"), vt = be.make<T>(k, n, "vt");
  return median_seconds(
      be, o, [] {}, [&] { be.svd(a.cview(), u.view(), s.view(), vt.view()); });
}

double run_op(Backend& be, std::string_view op, int64_t n, const Options& o) {
  if (op == "gemm-f32") return bench_gemm<float>(be, n, o);
  if (op == "gemm-f64") return bench_gemm<double>(be, n, o);
  if (op == "gram-f64") return bench_gram<double>(be, n, o);
  if (op == "gram-f32") return bench_gram<float>(be, n, o);
  if (op == "cholesky-f64") return bench_cholesky<double>(be, n, o);
  if (op == "cholesky-f32") return bench_cholesky<float>(be, n, o);
  if (op == "eigh-f64") return bench_eigh<double>(be, n, o);
  if (op == "eigh-f32") return bench_eigh<float>(be, n, o);
  if (op == "svd-f32") return bench_svd<float>(be, n, o);
  if (op == "svd-f64") return bench_svd<double>(be, n, o);
  raise<ConfigError>("unknown operation '", op, "'");
}

std::string op_label(std::string_view op, int64_t n, const Options& o) {
  if (op.starts_with("gram")) return detail::concat(op, " (", o.tokens, " tokens × n)");
  if (op.starts_with("svd")) return detail::concat(op, " (", std::min(n, o.svd_rows), " × n)");
  if (op.starts_with("gemm")) return detail::concat(op, " (n × n × n)");
  return std::string(op);
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

std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, s < 0.01 ? "%.5f" : s < 1 ? "%.4f" : "%.2f", s);
  return text;
}

/// One timed cell: the median in seconds, or the reason there is none.
struct Cell {
  double seconds = -1;
  std::string note;
};

Cell measure(Backend* be, std::string_view op, int64_t n, const Options& o) {
  if (be == nullptr) return {-1, "n/a"};
  try {
    return {run_op(*be, op, n, o), ""};
  } catch (const std::exception& e) {
    std::cerr << "bench_linalg: " << op << " n=" << n << " on " << be->description() << ": " << e.what() << "\n";
    return {-1, "error"};
  }
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  linalg::BackendOptions cpu_options;
  cpu_options.cpu_threads = o.cpu_threads > 0 ? o.cpu_threads
                                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unique_ptr<Backend> cpu = o.run_cpu ? linalg::make_backend(BackendKind::kCpu, cpu_options) : nullptr;
  std::unique_ptr<Backend> cuda;
  if (o.run_cuda && linalg::backend_available(BackendKind::kCuda)) cuda = linalg::make_backend(BackendKind::kCuda);

  std::cout << "## bench_linalg: CPU vs CUDA\n\n"
            << "- CPU: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " hardware threads"
            << (cpu ? "; backend " + cpu->description() : std::string("; not run (--no-cpu)")) << "\n"
            << "- GPU: " << (cuda ? cuda->description() : std::string("none (CUDA not built, no device, or --no-cuda)"))
            << "\n"
            << "- median of " << o.reps << " timed run(s) after " << o.warmup
            << " warm-up run(s); CUDA timed up to synchronize(); CPU skipped for n > " << o.cpu_max_n
            << "; synthetic inputs (fill_normal)\n\n"
            << "| op | n | CPU s | CUDA s | CUDA/CPU speedup |\n|---|---:|---:|---:|---:|\n"
            << std::flush;
  for (const auto& op : o.ops)
    for (const int64_t n : o.sizes) {
      const Cell c = n > o.cpu_max_n && cpu ? Cell{-1, detail::concat("skipped (n > ", o.cpu_max_n, ")")}
                                            : measure(cpu.get(), op, n, o);
      const Cell g = measure(cuda.get(), op, n, o);
      const std::string speedup =
          c.seconds > 0 && g.seconds > 0 ? detail::concat(seconds(c.seconds / g.seconds), "×") : std::string("n/a");
      std::cout << "| " << op_label(op, n, o) << " | " << n << " | "
                << (c.seconds >= 0 ? seconds(c.seconds) : c.note) << " | "
                << (g.seconds >= 0 ? seconds(g.seconds) : g.note) << " | " << speedup << " |\n"
                << std::flush;
    }
  return 0;
}

}  // namespace
}  // namespace caldera::bench

int main(int argc, char** argv) {
  return caldera::bench::guarded_main("bench_linalg", [&] { return caldera::bench::run(argc, argv); });
}
