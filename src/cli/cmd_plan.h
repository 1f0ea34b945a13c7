// `caldera-dist plan` options -> pipeline::PlanInputs, shared by the plan subcommand and by `run`,
// which checks the same plan before starting (pipeline::check_plan_fits).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "algo/method.h"
#include "cli/subcommand.h"
#include "pipeline/plan.h"

namespace caldera::cli {

/// The options plan adds to run's: --nodes, --ranks-per-node, --gpu, --gpu-memory-gb,
/// --host-memory-gb, --calib-seqs (INI presets may carry them; run ignores them).
void add_plan_target_options(po::options_description& options);

/// What plan_inputs_from built, with what it noticed on the way.
struct PlanSetup {
  pipeline::PlanInputs inputs;
  std::unique_ptr<algo::Method> method;  ///< inputs.method points here
  std::vector<std::string> notes;        ///< e.g. "weights absent: only config.json was checked"
};

/// Validates model (config.json; the weights too when present), calibration (the token file when
/// it exists, else --calib-seqs with --seq-len) and method options, and builds the inputs of a plan
/// for the target the options describe, defaulting to the current job's world (nodes = distinct
/// hosts, ranks per node = the largest local rank count; collective) and this machine's memory.
/// A CPU target measures its throughput on this machine (about a second). Throws ConfigError
/// naming the option for every invalid value, IoError for unreadable files.
PlanSetup plan_inputs_from(const po::variables_map& values, const CliContext& context);

}  // namespace caldera::cli
