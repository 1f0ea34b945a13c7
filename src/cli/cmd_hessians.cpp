// caldera-dist hessians: phase 1 alone — the calibration Hessians of every decoder layer
// (pipeline/hessian_phase.h), data-parallel over the job's ranks, into <workdir>/hessians/.
// Resumable like `run` (run.json, verified layer files, activation snapshots, exit 75 on
// SIGUSR1/SIGTERM). With --json the last stdout line is {"layers_collected":…, "layers_reused":…,
// "sequences":…, "tokens":…, "seq_len":…, "workdir":…, "backend":…, "world_size":…, "seconds":…}.
#include <cstdio>

#include "cli/backend_choice.h"
#include "cli/session_options.h"
#include "cli/subcommand.h"
#include "core/timer.h"

namespace caldera::cli {
namespace {

class HessiansCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "hessians"; }
  std::string_view summary() const override { return "phase 1: calibration Hessians of every decoder layer"; }
  void add_options(po::options_description& o) const override { add_session_options(o); }

  int run(const po::variables_map& values, CliContext& context) const override {
    const pipeline::SessionOptions options = session_options_from(values, context);
    auto backend = make_backend_from_options(values, context);
    pipeline::Session session(*context.comm, *backend, options, nullptr);
    pipeline::HessianPhaseReport r;
    if (!session.run_hessians(&r)) return kExitRequeue;

    io::JsonValue summary = io::JsonValue::object();
    summary.set("layers_collected", r.layers_collected);
    summary.set("layers_reused", r.layers_reused);
    summary.set("sequences", r.sequences);
    summary.set("tokens", r.tokens);
    summary.set("seq_len", options.forward.seq_len);
    summary.set("workdir", options.workdir.string());
    summary.set("backend", linalg::to_string(backend->kind()));
    summary.set("world_size", context.world_size);
    summary.set("seconds", r.seconds);
    if (!context.json && context.rank == 0)
      std::printf("hessians: %lld layers collected, %lld reused, %lld tokens, %.1f s\n",
                  static_cast<long long>(r.layers_collected), static_cast<long long>(r.layers_reused),
                  static_cast<long long>(r.tokens), r.seconds);
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_hessians_command() { return std::make_unique<HessiansCommand>(); }

}  // namespace caldera::cli
