// caldera_errors: per-matrix spec §1.3 errors of several method configurations on a real model,
// from the phase-1 Hessian files (`caldera-dist hessians`). Prints a markdown table (one row per
// matrix, one column per configuration) and the summary rows: mean error over the matrices,
// average bits per weight (parameter-weighted, each method's own accounting) and time.
//
//   caldera_errors --model DIR --workdir DIR [--layers 0-7] [--matrices q_proj,down_proj,...]
//                  [--backend cpu|cuda] [--threads N]
//                  --method LABEL:key=value,key=value ... [--method ...] [--seed S]
//
// Keys are the method options of algo::method_option_names() (the CLI's names without dashes), e.g.
//   --method rtn:method=rtn,bits-q=2,group-size=64
//   --method quip:method=quip
//   --method cal16:method=caldera,rank=64,bits-lr=16,iters=3
// Each matrix gets the RNG stream Rng(seed).stream({layer, matrix index}) as the pipeline does.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "algo/method_factory.h"
#include "core/error.h"
#include "core/timer.h"
#include "io/hessian_file.h"
#include "linalg/backend.h"
#include "pipeline/hf_weight_source.h"
#include "bench_common.h"

namespace caldera::bench {
namespace {

struct Spec {
  std::string label;
  algo::MethodConfig config;
  std::unique_ptr<algo::Method> method;
  double bits = 0, params = 0, error_sum = 0, seconds = 0;
  int count = 0;
  /// Σ over matrices of the best complete error up to the end of outer iteration t (index t−1).
  std::vector<double> best_by_iter;
};

struct Options {
  std::filesystem::path model, workdir;
  int64_t first_layer = 0, last_layer = -1;
  linalg::BackendKind backend = linalg::BackendKind::kCpu;
  int threads = 0;
  uint64_t seed = 0;
  std::vector<std::string> matrices;  ///< module-name suffixes to keep (empty: all seven)
  std::vector<Spec> specs;
};

constexpr std::string_view kUsage =
    "usage: caldera_errors --model DIR --workdir DIR [--layers A-B] [--matrices q_proj,...] [--backend cpu|cuda]\n"
    "                      [--threads N]\n"
    "                      [--seed S] --method LABEL:key=value,... [--method ...]\n";

Spec parse_spec(const std::string& text) {
  Spec s;
  const auto colon = text.find(':');
  s.label = text.substr(0, colon);
  if (colon != std::string::npos) {
    std::istringstream in(text.substr(colon + 1));
    std::string kv;
    std::vector<std::pair<std::string, std::string>> pairs;
    while (std::getline(in, kv, ',')) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) raise<ConfigError>("--method ", text, ": expected key=value, got '", kv, "'");
      pairs.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    for (const auto& [k, v] : pairs)  // "method" first: it resets the parameters
      if (k == "method") algo::apply_method_option(s.config, k, v);
    for (const auto& [k, v] : pairs)
      if (k != "method") algo::apply_method_option(s.config, k, v);
  }
  s.method = algo::make_method(s.config);
  return s;
}

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) raise<ConfigError>(argv[i], ": missing value\n", kUsage);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--model") {
      o.model = value(i);
    } else if (a == "--workdir") {
      o.workdir = value(i);
    } else if (a == "--layers") {
      const std::string v = value(i);
      const auto dash = v.find('-');
      o.first_layer = std::stoll(v.substr(0, dash));
      o.last_layer = dash == std::string::npos ? o.first_layer : std::stoll(v.substr(dash + 1));
    } else if (a == "--matrices") {
      std::istringstream in(value(i));
      std::string item;
      while (std::getline(in, item, ',')) o.matrices.push_back(item);
    } else if (a == "--backend") {
      o.backend = linalg::parse_backend_kind(value(i));
    } else if (a == "--threads") {
      o.threads = std::stoi(value(i));
    } else if (a == "--seed") {
      o.seed = std::stoull(value(i));
    } else if (a == "--method") {
      o.specs.push_back(parse_spec(value(i)));
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      raise<ConfigError>("unknown option '", a, "'\n", kUsage);
    }
  }
  if (o.model.empty() || o.workdir.empty() || o.specs.empty()) raise<ConfigError>(kUsage);
  return o;
}

// CALDERA's history holds REL_ERR after every sub-step: [LR, Q] per outer iteration for rank > 0
// (the LR-only state of iteration 1 is not a candidate, spec §1.2), [Q] for rank 0 and RTN.
void accumulate_best_by_iter(Spec& s, const std::vector<double>& h) {
  const bool two_steps = s.config.method == algo::MethodKind::kCaldera && s.config.caldera.rank > 0;
  const size_t per_iter = two_steps ? 2 : 1;
  const size_t iters = h.size() / per_iter;
  if (s.best_by_iter.size() < iters) s.best_by_iter.resize(iters, 0.0);
  double best = 1e300;
  for (size_t t = 0; t < iters; ++t) {
    for (size_t j = t * per_iter; j < (t + 1) * per_iter; ++j)
      if (!(two_steps && j == 0)) best = std::min(best, h[j]);
    s.best_by_iter[t] += best;
  }
}

int run(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto backend = linalg::make_backend(o.backend, linalg::BackendOptions{-1, 0, o.threads});
  const pipeline::HfWeightSource source(o.model);
  const auto& cfg = source.config();
  const int64_t last = o.last_layer < 0 ? cfg.num_hidden_layers - 1 : o.last_layer;
  std::printf("## caldera_errors: %s, layers %lld-%lld, backend %s\n\n| matrix |", o.model.string().c_str(),
              static_cast<long long>(o.first_layer), static_cast<long long>(last), backend->description().c_str());
  for (const auto& s : o.specs) std::printf(" %s |", s.label.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < o.specs.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (int64_t layer = o.first_layer; layer <= last; ++layer) {
    const auto weights = source.load_layer(layer);
    const auto path = io::hessian_file_path(o.workdir, layer);
    for (const model::LinearKind kind : model::kAllLinearKinds) {
      const std::string module(model::hf_module_name(kind));
      if (!o.matrices.empty() && std::none_of(o.matrices.begin(), o.matrices.end(), [&](const std::string& m) {
            return module.size() >= m.size() && module.compare(module.size() - m.size(), m.size(), m) == 0;
          }))
        continue;
      const auto sum = io::read_hessian_input(path, model::hessian_input(kind));
      algo::InputStats stats;
      stats.sum_xxt = sum.sum;
      stats.sum_x = sum.mu_sum;
      stats.count = sum.count;
      const HostMatrix<float>& w = weights[kind];
      const auto matrix_index = static_cast<uint64_t>(kind);
      const algo::UnitId unit{static_cast<int>(layer), std::string(model::hf_module_name(kind)),
                              static_cast<int>(matrix_index)};
      std::printf("| %s |", unit.name().c_str());
      for (auto& s : o.specs) {
        const algo::MethodContext ctx{*backend, Rng(o.seed).stream({static_cast<uint64_t>(layer), matrix_index}), unit,
                                      nullptr, {}, {}};
        Stopwatch sw;
        const auto out = s.method->compress(ctx, w.cview(), stats);
        s.seconds += sw.elapsed_s();
        s.error_sum += out.metrics.rel_error;
        accumulate_best_by_iter(s, out.metrics.error_history);
        s.bits += out.metrics.bits;
        s.params += static_cast<double>(w.rows()) * static_cast<double>(w.cols());
        ++s.count;
        std::printf(" %.4f |", out.metrics.rel_error);
        std::fflush(stdout);
      }
      std::printf("\n");
    }
  }
  std::printf("| **mean error** |");
  for (const auto& s : o.specs) std::printf(" **%.4f** |", s.error_sum / s.count);
  size_t max_iters = 0;
  for (const auto& s : o.specs) max_iters = std::max(max_iters, s.best_by_iter.size());
  for (size_t t = 1; t < max_iters; ++t) {
    std::printf("\n| mean error after outer iteration %zu |", t);
    for (const auto& s : o.specs)
      if (t <= s.best_by_iter.size()) std::printf(" %.4f |", s.best_by_iter[t - 1] / s.count);
      else std::printf(" |");
  }
  std::printf("\n| avg bits |");
  for (const auto& s : o.specs) std::printf(" %.3f |", s.bits / s.params);
  std::printf("\n| seconds |");
  for (const auto& s : o.specs) std::printf(" %.1f |", s.seconds);
  std::printf("\n\nConfigurations:\n");
  for (const auto& s : o.specs) {
    std::printf("- %s: %s", s.label.c_str(), s.method->name().c_str());
    for (const auto& [k, v] : s.method->parameters()) std::printf(" %s=%s", k.c_str(), v.c_str());
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace caldera::bench

int main(int argc, char** argv) {
  return caldera::bench::guarded_main("caldera_errors", [&] { return caldera::bench::run(argc, argv); });
}
