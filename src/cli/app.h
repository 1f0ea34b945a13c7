// Entry logic of caldera-dist, separate from main() so tests can drive it.
#pragma once

#include <string>
#include <vector>

#include "cli/subcommand.h"

namespace caldera::cli {

/// Runs `caldera-dist <args...>` (args exclude the program name) within `context` and returns the
/// exit code. In a world of one, usage and configuration errors print a message and return
/// kExitUsage; every other error (and with several ranks every error) propagates to the caller,
/// which ends the whole job (main.cpp).
int run_app(const std::vector<std::string>& args, CliContext& context,
            const std::vector<std::unique_ptr<Subcommand>>& subcommands);

}  // namespace caldera::cli
