// caldera-dist inspect: what a work directory or a compressed output directory holds (DESIGN §1;
// pipeline/inspect.h): phase-1 layers, phase-2 units (done / in progress / missing) with their
// method, rel_error, bits and error history, per-rank busy time and measured memory from the logs,
// the phase-2 efficiency, average bits and mean error; for an output directory its
// quantization_config and the stored bits of every matrix. Reads only; with --verify every file is
// checked as a resume would. With --json the last stdout line is the whole summary.
#include <cstdio>

#include "cli/subcommand.h"
#include "core/error.h"
#include "pipeline/inspect.h"

namespace caldera::cli {
namespace {

class InspectCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "inspect"; }
  std::string_view summary() const override {
    return "summary of a workdir or compressed model: per-matrix bits, errors, status";
  }
  void add_options(po::options_description& o) const override {
    o.add_options()
      ("workdir", po::value<std::string>(), "work directory (with run.json) or a model / output directory (with config.json)")
      ("verify", po::bool_switch()->default_value(false),
       "read every Hessian and unit file with its checksums, as a resume does (slower)");
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    CALDERA_CHECK_AS(ConfigError, values.count("workdir"), "--workdir is required");
    const auto verify = values["verify"].as<bool>() ? pipeline::Verify::kFull : pipeline::Verify::kMetadata;
    if (context.rank != 0) return kExitOk;  // reads only: one rank is enough
    const pipeline::Inspection r = pipeline::inspect(values["workdir"].as<std::string>(), verify);
    if (context.json) {
      context.emit_json(r.workdir ? pipeline::to_json(*r.workdir) : pipeline::to_json(*r.output));
    } else {
      std::fputs((r.workdir ? pipeline::to_text(*r.workdir) : pipeline::to_text(*r.output)).c_str(), stdout);
    }
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_inspect_command() { return std::make_unique<InspectCommand>(); }

}  // namespace caldera::cli
