#include "comm/launch.h"

#include <charconv>

#include "comm/communicator.h"
#include "core/error.h"

namespace caldera::comm {

std::optional<std::string> check_launch(int world_size, std::optional<std::string_view> slurm_ntasks) {
  if (!slurm_ntasks) return std::nullopt;
  std::string_view text = *slurm_ntasks;
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) text.remove_suffix(1);
  long long n_tasks = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n_tasks);
  if (ec != std::errc() || end != text.data() + text.size() || n_tasks < 1) return std::nullopt;
  if (n_tasks > 1 && world_size == 1)
    return detail::concat("srun started ", n_tasks,
                          " tasks but MPI sees a world of 1: launch with `srun --mpi=pmix` (or set MpiDefault=pmix)");
  return std::nullopt;
}

bool nccl_usable(int ranks_per_node, int gpus_per_node) noexcept {
  return ranks_per_node >= 1 && gpus_per_node >= ranks_per_node;
}

bool nccl_usable(Communicator& world, int visible_gpus) {
  return world.all(nccl_usable(world.local_size(), visible_gpus));
}

}  // namespace caldera::comm
