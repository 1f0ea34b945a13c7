// caldera-dist: see `caldera-dist --help` and README.md.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/app.h"
#include "core/error.h"
#include "core/log.h"

int main(int argc, char** argv) {
  using namespace caldera;
  cli::CliContext context;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return cli::run_app(args, context, cli::make_subcommands());
  } catch (const std::exception& e) {
    log_error(e.what());
    return cli::kExitFailure;
  }
}
