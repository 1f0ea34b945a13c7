// The compute backend a subcommand runs on, from the common options --backend and --threads.
#pragma once

#include <memory>

#include "cli/subcommand.h"
#include "linalg/backend.h"

namespace caldera::cli {

/// --backend cpu | cuda | auto (cuda when a GPU is visible, else cpu) and --threads; the GPU is
/// picked by node-local rank. Throws ConfigError naming --backend for an unknown or unavailable
/// backend, or --threads when negative.
std::unique_ptr<linalg::Backend> make_backend_from_options(const po::variables_map& values, const CliContext& context);

}  // namespace caldera::cli
