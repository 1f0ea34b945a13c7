// caldera-dist: see `caldera-dist --help` and README.md.
//
// Failure policy (DESIGN §4, style C3): an exception on any rank of a multi-rank job ends the whole
// job at once through MPI_Abort, with the rank, host and cause on stderr, so no rank waits forever
// in a collective. A single process prints the error and exits with 1 (or 2 for bad options).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "cli/app.h"
#include "comm/communicator.h"
#include "comm/launch.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "core/log.h"

namespace {

std::optional<std::string_view> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string_view(v);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace caldera;
  comm::MpiSession session(argc, argv);
  std::unique_ptr<comm::Communicator> world = comm::make_communicator();
  set_log_rank(world->rank(), world->size());
  set_fatal_handler([&world](std::string_view message) { world->abort(cli::kExitFailure, message); });

  // srun without PMIx starts N independent singletons (DESIGN §4).
  auto ntasks = env("SLURM_STEP_NUM_TASKS");
  if (!ntasks) ntasks = env("SLURM_NTASKS");
  if (auto problem = comm::check_launch(world->size(), ntasks)) {
    if (world->rank() == 0) std::fprintf(stderr, "caldera-dist: error: %s\n", problem->c_str());
    return cli::kExitUsage;
  }

  cli::CliContext context;
  context.comm = world.get();
  context.rank = world->rank();
  context.world_size = world->size();
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return cli::run_app(args, context, cli::make_subcommands());
  } catch (const ConfigError& e) {
    world->abort(cli::kExitUsage, e.what());
  } catch (const std::exception& e) {
    if (world->size() > 1) world->abort(cli::kExitFailure, e.what());
    log_error(e.what());
    return cli::kExitFailure;
  }
}
