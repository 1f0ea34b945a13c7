// A small MPI program for the slurm tests (and for checking a cluster by hand): joins the world
// through the same path as caldera-dist (MpiSession, make_communicator, check_launch), sums
// rank + 1 over all ranks and gathers the host names. Prints on rank 0:
//   caldera-probe: world=N sum=S expected=E hosts=h1,h2,...
// and, on every rank, "caldera-probe: rank R of N on HOST". Exit 0 when sum == N(N+1)/2, 3 when
// check_launch rejects the launch (message on stderr), 1 on any other error.
//
// `--no-mpi` skips MPI initialisation, so every task sees a world of one (SelfCommunicator): what
// Open MPI 5 does under `srun --mpi=none` (singletons; Open MPI 4.1 aborts in MPI_Init instead),
// used to check that check_launch catches such a launch with the real SLURM environment.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <memory>
#include <string>
#include <string_view>

#include "comm/communicator.h"
#include "comm/launch.h"
#include "comm/mpi_communicator.h"

namespace {

std::optional<std::string_view> env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::optional<std::string_view>(v) : std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace caldera::comm;
  try {
    const bool use_mpi = !(argc > 1 && std::string_view(argv[1]) == "--no-mpi");
    std::unique_ptr<MpiSession> session;
    if (use_mpi) session = std::make_unique<MpiSession>(argc, argv);
    auto comm = make_communicator();
    // As the CLI does: the step's task count, else the allocation's (see comm/launch.h).
    const auto ntasks = env("SLURM_STEP_NUM_TASKS") ? env("SLURM_STEP_NUM_TASKS") : env("SLURM_NTASKS");
    if (const auto problem = check_launch(comm->size(), ntasks)) {
      std::fprintf(stderr, "caldera-probe: %s\n", problem->c_str());
      return 3;
    }
    std::printf("caldera-probe: rank %d of %d on %s\n", comm->rank(), comm->size(), comm->host_name().c_str());
    std::fflush(stdout);
    const int64_t sum = comm->allreduce_value<int64_t>(comm->rank() + 1, ReduceOp::kSum);
    const int64_t expected = int64_t{comm->size()} * (comm->size() + 1) / 2;
    const auto hosts = comm->allgather_strings(comm->host_name());
    if (comm->rank() == 0) {
      std::string joined;
      for (const auto& h : hosts) joined += (joined.empty() ? "" : ",") + h;
      std::printf("caldera-probe: world=%d sum=%lld expected=%lld hosts=%s\n", comm->size(),
                  static_cast<long long>(sum), static_cast<long long>(expected), joined.c_str());
      std::fflush(stdout);
    }
    return sum == expected ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "caldera-probe: error: %s\n", e.what());
    return 1;
  }
}
