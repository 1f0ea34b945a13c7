// `caldera-dist plan` (DESIGN §1): per-rank memory and time of every phase of a run, and the
// refusal of a run that cannot fit, computed from the model's config.json, the number of
// calibration sequences, the run's options and the target cluster's shape, without loading any
// weight, so that it works on a login node for a 70B model that is not there.
//
// Memory model (pipeline/plan_memory.cpp): each phase's allocations are replayed in program order
// on an algo::MemoryTally (hessian_phase / forward for phase 1, compress_phase + Method::estimate
// for phase 2, export for phase 3), per rank with that rank's share of the work, giving three
// peaks per rank and phase:
//   backend   bytes allocated through linalg::Backend (GPU memory on CUDA, host memory on CPU);
//   host      host bytes outside the backend (weights read as fp32, Hessians in fp64, reduction
//             staging, activation snapshots, task tensors, LAPACK workspaces on the CPU);
//   combined  the peak of both at one time (what a CPU rank needs of host memory).
// What a rank needs: on CUDA, GPU = backend + kCudaContextBytes; host = process baseline +
// resident inputs (calibration tokens) + the phase's host memory, which is its work (host; combined
// on the CPU backend) + the allocator's slack (allocator_slack_bytes) + kRuntimeBufferBytes.
// A node needs the sum over its ranks (block placement: ranks 0..R-1 on node 0, as srun places
// them). A phase fits when every rank's GPU need and every node's host need is at most
// (1 - kPlanMemoryMargin) of the capacity.
//
// The measured counterpart is pipeline/plan_probe.h (phase_memory events); the integration test
// tests/integration/test_e2e_plan_memory.py checks the backend and host predictions of every
// phase and rank within 25 % on minillama-tiny (and minillama-small with CALDERA_SMALL_MODEL).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "algo/method.h"
#include "comm/communicator.h"
#include "io/json_value.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "model/llama_config.h"
#include "pipeline/plan_time.h"

namespace caldera::pipeline {

/// Fraction of GPU and node memory kept free: allocator fragmentation, library workspaces that
/// vary between versions, other processes on the node.
inline constexpr double kPlanMemoryMargin = 0.10;
/// GPU memory outside the backend's pool per rank: CUDA context, kernel images, cuBLAS/cuSOLVER
/// handles (about 0.5-0.7 GiB measured by nvidia-smi on H100 for such processes; rounded up).
inline constexpr int64_t kCudaContextBytes = int64_t{1} << 30;
/// Host memory of a rank before any phase: libraries (and on CUDA the runtime's host allocations).
inline constexpr int64_t kCpuProcessBaselineBytes = int64_t{64} << 20;
inline constexpr int64_t kCudaProcessBaselineBytes = int64_t{1} << 30;
/// Added to the CPU backend's baseline when the binary has CUDA compiled in: the resident pages of
/// cuBLAS, cuSOLVER, NCCL and the CUDA runtime, mapped even when no GPU is used (a CUDA build
/// running --backend cpu on minillama-tiny peaks at 245-271 MiB resident, a CPU-only build at
/// 52-78 MiB).
inline constexpr int64_t kCudaLibrariesHostBytes = int64_t{256} << 20;
/// The host baseline of a rank on `backend` for this build (see the constants above).
int64_t process_baseline_bytes(linalg::BackendKind backend);
/// Host memory a phase touches besides its buffers and the allocator's slack: OpenBLAS's packing
/// buffer (1.3 MiB touched in phase 1 on minillama-tiny), HDF5's chunk and metadata caches (0.8-1.3
/// MiB, heaptrack), MPI's buffers; fitted with kAllocatorSlackFraction to the phase_memory
/// measurements. Library code pages are part of the process baseline (see plan_probe.h).
inline constexpr int64_t kRuntimeBufferBytes = int64_t{1} << 20;
/// The heap keeps the holes between live blocks resident: glibc serves blocks below its mmap
/// threshold (which rises up to 32 MiB as large blocks are freed) from the heap, whose freed pages
/// stay until trimmed, so the resident set exceeds the bytes live at the peak. On minillama-tiny and
/// -small (every phase; CALDERA, QuIP#, RTN; 1 and 2 ranks) the live heap peak (heaptrack) equals the
/// replayed peak within 2 %, and the resident set adds 5-50 % to it, depending on the allocation
/// history (which blocks the threshold sends to the heap): phase 1 on rank 0 of minillama-tiny grows
/// by 44-57 MiB from run to run for 37-39 MiB live. Larger blocks are mapped and unmapped whole, so
/// the slack is capped (an assumption: not measured on models above 28 M parameters).
inline constexpr double kAllocatorSlackFraction = 0.25;
inline constexpr int64_t kAllocatorSlackCapBytes = int64_t{64} << 20;
/// The allocator's slack over a phase's live host peak of `work_bytes`.
int64_t allocator_slack_bytes(int64_t work_bytes) noexcept;

enum class PlanPhase : uint8_t { kHessians, kCompress, kExport };
inline constexpr std::array<PlanPhase, 3> kAllPlanPhases = {PlanPhase::kHessians, PlanPhase::kCompress,
                                                            PlanPhase::kExport};
/// "hessians" | "compress" | "export" (the subcommand and the phase_memory event names).
std::string_view to_string(PlanPhase phase) noexcept;

/// The machine a plan is for.
struct PlanTarget {
  linalg::BackendKind backend = linalg::BackendKind::kCpu;
  int nodes = 1;
  int ranks_per_node = 1;              ///< = GPUs per node on CUDA
  int64_t gpu_memory_bytes = 0;        ///< per GPU (CUDA only)
  int64_t host_memory_bytes = 0;       ///< per node
  std::string gpu_name;                ///< e.g. "h100" (CUDA only; for messages)
  ThroughputProfile throughput;
  int world_size() const noexcept { return nodes * ranks_per_node; }
};

struct PlanInputs {
  model::LlamaConfig config;
  int64_t weight_bytes = 2;            ///< bytes per weight in the checkpoint (bf16/fp16: 2, fp32: 4)
  int64_t calib_sequences = 0;         ///< sequences phase 1 uses (after --max-calib-seqs)
  model::ForwardOptions forward;       ///< seq_len, micro_batch_seqs
  double snapshot_interval_s = 300;    ///< --snapshot-interval (0: a snapshot after every layer)
  const algo::Method* method = nullptr;  ///< not owned; must outlive the plan
  int64_t max_shard_bytes = int64_t{2} << 30;
  PlanTarget target;
  /// Throws ConfigError listing every invalid value (naming the options).
  void validate() const;
};

/// One buffer (or group of buffers) at a peak, for the breakdown the text report prints.
struct MemoryLine {
  std::string label;
  int64_t bytes = 0;
};

/// One rank in one phase.
struct RankPhase {
  int64_t backend_bytes = 0;   ///< peak backend memory of the phase's work
  int64_t host_bytes = 0;      ///< peak host memory of the phase's work outside the backend
  int64_t combined_bytes = 0;  ///< peak of backend + host at one time
  double seconds = 0;          ///< this rank's time in the phase
  bool active = true;          ///< false: the rank only waits (phase 3 on ranks > 0)
};

struct PhasePlan {
  PlanPhase phase = PlanPhase::kHessians;
  std::vector<RankPhase> ranks;           ///< one per rank of the target world
  std::vector<MemoryLine> breakdown;      ///< what rank 0 holds at its backend peak (host peak on CPU)
  std::vector<std::pair<std::string, double>> seconds_by_part;  ///< the slowest rank: compute, I/O, reduction
  double seconds = 0;                     ///< the phase's duration (its slowest rank)
  std::vector<std::string> notes;         ///< e.g. which unit is the largest, which method model
};

struct Plan {
  PlanInputs inputs;
  std::array<PhasePlan, 3> phases;
  int64_t host_resident_bytes = 0;  ///< per rank before any phase: calibration tokens held by the session
  int64_t host_baseline_bytes = 0;  ///< per rank: the process (kCpu/kCudaProcessBaselineBytes)
  std::vector<std::string> assumptions;

  const PhasePlan& phase(PlanPhase p) const { return phases[static_cast<size_t>(p)]; }
  /// GPU memory rank `rank` needs in `phase` (backend peak + CUDA context); 0 on the CPU backend.
  int64_t gpu_need(PlanPhase phase, int rank) const;
  /// Host memory the phase's work adds to rank `rank`'s resident set: its live peak (host; combined
  /// on the CPU backend) + allocator slack + kRuntimeBufferBytes; 0 for a rank that only waits.
  /// What phase_memory's host_work_bytes measures.
  int64_t host_phase_bytes(PlanPhase phase, int rank) const;
  /// Host memory rank `rank` needs in `phase`: baseline + resident + host_phase_bytes.
  int64_t host_need(PlanPhase phase, int rank) const;
  /// Sum of host_need over the ranks of node `node`.
  int64_t node_host_need(PlanPhase phase, int node) const;
  /// (1 - kPlanMemoryMargin) of the GPU's memory (0 on CPU) and of a node's memory.
  int64_t gpu_usable_bytes() const;
  int64_t host_usable_bytes() const;
  double total_seconds() const;
};

/// The plan of `inputs` (validated first: ConfigError). Pure: no I/O, no communication.
Plan make_plan(const PlanInputs& inputs);

/// Why the plan cannot run — each phase that does not fit, on which rank or node, how much it
/// needs against what is usable, and what to change (more ranks, fewer calibration sequences, a
/// smaller --micro-batch, a bigger GPU, fewer ranks per node) — or std::nullopt when it fits.
std::optional<std::string> plan_refusal(const Plan& plan);

/// Throws ConfigError with plan_refusal's text when the plan does not fit (what `run` calls before
/// starting; the CLI exits with code 2).
void check_plan_fits(const Plan& plan);

/// The whole table: inputs, target, per phase and rank the three peaks, the needs and the time,
/// the usable memory, assumptions and the refusal (null when it fits).
io::JsonValue plan_to_json(const Plan& plan);
/// The table for people (what `caldera-dist plan` prints).
std::string plan_to_text(const Plan& plan);

/// The current job as a target: the world's node and rank counts (collective: gathers host names),
/// the backend's device memory (CUDA) and this machine's memory (/proc/meminfo MemTotal) per node,
/// `throughput` as given.
PlanTarget current_target(comm::Communicator& world, const linalg::Backend& backend, ThroughputProfile throughput);

/// This machine's memory (MemTotal of /proc/meminfo); 0 when unknown.
int64_t machine_memory_bytes() noexcept;

/// "1.23 GiB", "512 MiB", "12 KiB", "100 B".
std::string format_bytes(int64_t bytes);

}  // namespace caldera::pipeline
