// Options shared by the subcommands that work on a workdir (hessians, compress, export, run, plan):
// the run's inputs and resume behaviour, and the method options (algo::method_option_names()).
#pragma once

#include "algo/method_factory.h"
#include "cli/subcommand.h"
#include "pipeline/session.h"

namespace caldera::cli {

/// --model, --calib, --workdir, --seq-len, --max-calib-seqs, --micro-batch, --vocab-chunk, --seed,
/// --resume, --force-unlock, --snapshot-interval.
void add_session_options(po::options_description& options);
/// Every option of algo::method_option_names() (values as text; unset options keep the method's
/// defaults).
void add_method_options(po::options_description& options);

/// The session options from the parsed values (reads SLURM_JOB_ID for the workdir lock). Throws
/// ConfigError listing every invalid value.
pipeline::SessionOptions session_options_from(const po::variables_map& values, const CliContext& context);
/// --method first (default caldera), then every other method option given; validated.
algo::MethodConfig method_config_from(const po::variables_map& values);

}  // namespace caldera::cli
