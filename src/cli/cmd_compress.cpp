// caldera-dist compress: phase 2 alone — every linear matrix of every layer with the chosen method,
// units balanced over ranks, finished units skipped, mid-unit checkpoints (needs phase 1's files).
// With --json the last stdout line is {"units", "units_computed", "units_reused", "busy_s" (per
// rank), "makespan_s", "efficiency", "predicted_efficiency", "method", "world_size", "seconds"}.
#include <cstdio>

#include "cli/backend_choice.h"
#include "cli/run_summary.h"
#include "cli/session_options.h"
#include "cli/subcommand.h"
#include "pipeline/method_setup.h"
#include "core/timer.h"

namespace caldera::cli {
namespace {

class CompressCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "compress"; }
  std::string_view summary() const override { return "phase 2: compress every linear matrix (needs phase 1)"; }
  void add_options(po::options_description& o) const override {
    add_session_options(o);
    add_method_options(o);
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    Stopwatch watch;
    const pipeline::SessionOptions options = session_options_from(values, context);
    const algo::MethodConfig method_config = method_config_from(values);
    pipeline::PreparedMethod prepared = pipeline::prepare_method_before_phase1(method_config);
    auto backend = make_backend_from_options(values, context);
    pipeline::Session session(*context.comm, *backend, options, prepared.method.get());
    // Rank allocation of a low-rank method (needs phase 1).
    if (!pipeline::finish_method_after_phase1(session, method_config, prepared)) return kExitRequeue;
    const algo::Method* method = prepared.method.get();
    pipeline::CompressPhaseReport r;
    if (!session.run_compress(&r)) return kExitRequeue;
    io::JsonValue summary = compress_summary(r);
    summary.set("method", method->name());
    summary.set("world_size", context.world_size);
    summary.set("seconds", watch.elapsed_s());
    if (!context.json && context.rank == 0)
      std::printf("compress: %lld units (%lld computed, %lld reused), makespan %.1f s, efficiency %.0f%%\n",
                  static_cast<long long>(r.units_total), static_cast<long long>(r.units_computed),
                  static_cast<long long>(r.units_reused), r.makespan_s, 100.0 * r.efficiency);
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_compress_command() { return std::make_unique<CompressCommand>(); }

}  // namespace caldera::cli
