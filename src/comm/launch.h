// Launch checks and the choice of device collectives: pure functions of what the CLI reads from the
// environment and the hardware (the library itself never reads environment variables, style C9).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace caldera::comm {

class Communicator;

/// Detects `srun` without PMIx (DESIGN §4): when SLURM started N > 1 tasks but MPI sees a world of
/// 1, every task would run alone and redo the whole job. Returns the message the CLI throws as
/// ConfigError:
///   "srun started N tasks but MPI sees a world of 1: launch with `srun --mpi=pmix` (or set
///    MpiDefault=pmix)"
/// and std::nullopt when the launch is consistent, when slurm_ntasks is absent (not under SLURM)
/// or when it is not a positive integer.
/// `slurm_ntasks` is the value of SLURM_STEP_NUM_TASKS when set, else of SLURM_NTASKS: inside an
/// srun step both give the step's task count, while in a batch script outside any step only
/// SLURM_NTASKS (the allocation's) is set, and a single process there is a legitimate launch that
/// this check would wrongly reject.
[[nodiscard]] std::optional<std::string> check_launch(int world_size, std::optional<std::string_view> slurm_ntasks);

/// Whether NCCL can serve device collectives on a node with `ranks_per_node` MPI ranks and
/// `gpus_per_node` GPUs visible to each rank: NCCL needs a distinct GPU per rank and refuses two
/// ranks on one device (measured on the H100 machine), so it is usable iff
/// 1 <= ranks_per_node <= gpus_per_node. Otherwise callers reduce through host buffers with the
/// MPI Communicator. With per-task GPU isolation (srun --gpus-per-task, one visible GPU per rank
/// but several ranks per node) this answers false, deliberately: NCCL is unreliable there
/// (ecosystem notes P8); the sbatch templates use --gpus-per-node so every rank sees all GPUs.
[[nodiscard]] bool nccl_usable(int ranks_per_node, int gpus_per_node) noexcept;

/// Collective form: true on every rank iff nccl_usable(world.local_size(), visible_gpus) holds on
/// every rank (nodes may differ). `visible_gpus`: devices this rank sees (cudaGetDeviceCount, from
/// the CUDA backend). Called by all ranks.
[[nodiscard]] bool nccl_usable(Communicator& world, int visible_gpus);

}  // namespace caldera::comm
