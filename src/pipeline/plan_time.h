// Throughput figures behind `caldera-dist plan`'s time estimates: time = operations of each kind
// (algo::WorkEstimate, bytes of I/O and communication) / the target's throughput for that kind.
//
// GPU profiles hold the H100 figures measured for this project (/work/shared/notes/h100-facts.md:
// SGEMM 53 TFLOP/s at n = 8192-14336, ssyevd 1.76 s at n = 14336, spotrf 0.030 s at n = 14336,
// device-to-device copy 3 TB/s) and state every other figure as an assumption; the A100 and H200
// profiles scale them by the vendors' peak ratios. A CPU profile is measured on this machine when
// plan runs (small GEMM, Gram, eigensolve, lattice rounding and copy on the CPU backend), so a CPU
// plan assumes the target CPU is this one. I/O and network figures are assumptions for a shared
// cluster file system and an InfiniBand fabric; they are printed with every plan.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "algo/estimate.h"
#include "linalg/backend.h"

namespace caldera::pipeline {

/// [--gpu] the GPU model a CUDA plan is for.
enum class GpuModel : uint8_t { kH100, kA100, kH200 };
std::string_view to_string(GpuModel gpu) noexcept;
/// "h100" | "a100" | "h200"; throws ConfigError naming --gpu otherwise.
GpuModel parse_gpu_model(std::string_view text);
/// Memory of one GPU of that model as the CUDA runtime reports it (H100 80GB HBM3: 79.6 GiB,
/// A100 80GB: 80 GiB, H200: 140.4 GiB).
int64_t gpu_memory_bytes(GpuModel gpu) noexcept;

/// Rates of one rank of the target machine. Every field is per second and per rank.
struct ThroughputProfile {
  std::string name;                   ///< "h100", "a100", "h200" or "cpu (measured here)"
  double fp32_flops = 0;              ///< GEMM-like fp32 flops
  double fp64_flops = 0;              ///< GEMM-like fp64 flops (SYRK of the Gram matrices)
  double eigh_f64_n3 = 0;             ///< n³ per second of an fp64 eigendecomposition with eigenvectors
  double eigh_f32_n3 = 0;             ///< same in fp32
  double cholesky_n3 = 0;             ///< n³ per second of an fp32 Cholesky factorisation
  double rounded_weights = 0;         ///< weights rounded by lattice / grid kernels
  double memory_bytes = 0;            ///< bytes of elementwise work (device memory bandwidth)
  double host_link_bytes = 0;         ///< host <-> device copies (PCIe; the backend's memory on CPU)
  double read_bytes = 0;              ///< file system reads (model shards, Hessians, task files)
  double write_bytes = 0;             ///< file system writes (Hessians, checkpoints, snapshots, output)
  double network_bytes = 0;           ///< reduction traffic over ranks (NCCL / MPI)
  /// One line per figure with its value and where it comes from (measured / assumed).
  std::vector<std::string> sources;

  /// Seconds for `work` at these rates.
  [[nodiscard]] double seconds(const algo::WorkEstimate& work) const;
};

/// The profile of a GPU model (see the file comment for the sources of each figure).
ThroughputProfile gpu_profile(GpuModel gpu);

/// Measures a CPU profile on `backend` (a CPU backend; about a second of work): fp32 GEMM, fp64
/// Gram, fp64 eigendecomposition, Cholesky, lattice rounding and copies; file and network rates are
/// assumptions. Throws Error if the backend is not a CPU backend.
ThroughputProfile measure_cpu_profile(linalg::Backend& backend);

}  // namespace caldera::pipeline
