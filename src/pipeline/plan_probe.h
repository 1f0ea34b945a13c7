// Measured memory of a phase on this rank, for the check of `caldera-dist plan`'s predictions
// (tests/integration/test_e2e_plan_memory.py) and for `caldera-dist inspect`. The session logs one
// `phase_memory` event per phase into logs/rank-NNNN.jsonl (pipeline/session.cpp).
//
// What is measured (and what plan predicts, pipeline/plan.h):
//  - backend: Backend::memory_stats().peak_bytes over the phase (reset_peak_memory() at its start):
//    every byte the phase allocates through the backend (GPU memory on CUDA, host memory on CPU).
//  - host: growth of the resident set during the phase, VmHWM at the end minus VmRSS at the start,
//    with VmHWM reset at the start by writing "5" to /proc/self/clear_refs (Linux >= 4.0). It
//    includes the backend's memory on the CPU backend, allocator slack and library buffers, and
//    excludes what was resident before the phase (libraries, the calibration tokens). Free heap
//    memory is handed back to the kernel at the start (malloc_trim), else the phase would reuse
//    pages the previous phase freed but the allocator kept, and its growth would hide most of what
//    it allocates (phase 2 after phase 1 on minillama-tiny: 12 MiB of growth for a 28 MiB peak).
//  - library pages: the growth of the private file mappings (the binary and the shared libraries'
//    code and read-only data, first touched by the phase; /proc/self/smaps, start and end). plan
//    counts those in the process baseline (kCpuProcessBaselineBytes), not in the phase: which
//    phase touches a library first depends on the subcommand and on the rank (rank 0 writes the
//    Hessian files in phase 1, the others first read HDF5 in phase 2). host_work_bytes = host growth
//    - library pages is what plan's host_phase_bytes predicts.
#pragma once

#include <cstdint>
#include <string>

#include "io/json_value.h"
#include "linalg/backend.h"

namespace caldera::pipeline {

/// The process's resident set from /proc/self/status (bytes; 0 where unavailable).
struct ProcessMemory {
  int64_t rss_bytes = 0;  ///< VmRSS
  int64_t hwm_bytes = 0;  ///< VmHWM, the peak resident set since process start or the last reset
};
ProcessMemory read_process_memory() noexcept;
/// Resident bytes of the process's private file mappings (executable, shared libraries, their
/// read-only data; /proc/self/smaps); 0 where unavailable.
int64_t read_library_rss() noexcept;
/// Resets VmHWM to the current VmRSS; false when the kernel refuses (then VmHWM keeps counting from
/// process start).
bool reset_peak_rss() noexcept;

struct PhaseMemory {
  std::string phase;
  int64_t backend_start_bytes = 0;  ///< held by the backend when the phase started
  int64_t backend_peak_bytes = 0;   ///< peak held by the backend during the phase
  int64_t rss_start_bytes = 0;      ///< VmRSS when the phase started
  int64_t rss_peak_bytes = 0;       ///< VmHWM when the phase ended
  bool peak_reset = false;          ///< VmHWM was reset at the start (else it may predate the phase)
  int64_t library_start_bytes = 0;  ///< resident pages of private file mappings at the start
  int64_t library_end_bytes = 0;    ///< ... and at the end (such pages stay until the process ends)
  /// Growth of the resident set during the phase (rss_peak - rss_start, at least 0).
  int64_t host_growth_bytes() const noexcept { return rss_peak_bytes > rss_start_bytes ? rss_peak_bytes - rss_start_bytes : 0; }
  /// Library pages the phase touched first (library_end - library_start, at least 0).
  int64_t library_growth_bytes() const noexcept {
    return library_end_bytes > library_start_bytes ? library_end_bytes - library_start_bytes : 0;
  }
  /// What the phase's own work added to the resident set: host growth less library pages.
  int64_t host_work_bytes() const noexcept {
    const int64_t w = host_growth_bytes() - library_growth_bytes();
    return w > 0 ? w : 0;
  }
};

/// {"phase", "backend_start_bytes", "backend_peak_bytes", "rss_start_bytes", "rss_peak_bytes",
/// "host_growth_bytes", "library_growth_bytes", "host_work_bytes", "peak_reset"}.
io::JsonValue to_json(const PhaseMemory& memory);

/// Starts measuring at construction (returns free heap memory to the kernel, resets the backend's
/// peak and VmHWM); finish() reads the peaks. Not thread-safe; one probe at a time per process (VmHWM is process-wide).
class PhaseMemoryProbe {
 public:
  PhaseMemoryProbe(linalg::Backend& backend, std::string phase);
  PhaseMemory finish() const;

 private:
  linalg::Backend& backend_;
  PhaseMemory start_;
};

}  // namespace caldera::pipeline
