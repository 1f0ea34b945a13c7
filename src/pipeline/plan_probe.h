// Measured memory of a phase on this rank, for the check of `caldera-dist plan`'s predictions
// (tests/integration/test_plan_memory.cpp) and for `caldera-dist inspect`. The session logs one
// `phase_memory` event per phase into logs/rank-NNNN.jsonl (pipeline/session.cpp).
//
// What is measured (and what plan predicts, pipeline/plan.h):
//  - backend: Backend::memory_stats().peak_bytes over the phase (reset_peak_memory() at its start):
//    every byte the phase allocates through the backend (GPU memory on CUDA, host memory on CPU).
//  - host: growth of the resident set during the phase, VmHWM at the end minus VmRSS at the start,
//    with VmHWM reset at the start by writing "5" to /proc/self/clear_refs (Linux >= 4.0). It
//    includes the backend's memory on the CPU backend, allocator slack and library buffers, and
//    excludes what was resident before the phase (libraries, the calibration tokens).
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
  /// Growth of the resident set during the phase (rss_peak - rss_start, at least 0).
  int64_t host_growth_bytes() const noexcept { return rss_peak_bytes > rss_start_bytes ? rss_peak_bytes - rss_start_bytes : 0; }
};

/// {"phase", "backend_start_bytes", "backend_peak_bytes", "rss_start_bytes", "rss_peak_bytes",
/// "host_growth_bytes", "peak_reset"}.
io::JsonValue to_json(const PhaseMemory& memory);

/// Starts measuring at construction (resets the backend's peak and VmHWM); finish() reads the
/// peaks. Not thread-safe; one probe at a time per process (VmHWM is process-wide).
class PhaseMemoryProbe {
 public:
  PhaseMemoryProbe(linalg::Backend& backend, std::string phase);
  PhaseMemory finish() const;

 private:
  linalg::Backend& backend_;
  PhaseMemory start_;
};

}  // namespace caldera::pipeline
