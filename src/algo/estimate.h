// Resource estimates for `caldera-dist plan` (DESIGN §1: per-rank memory and time per phase).
//
// Memory is estimated by replaying a computation's allocations in program order on a MemoryTally:
// every buffer the code allocates is a Hold with the same lifetime (a scope in the estimate mirrors
// a scope in the code), so the tally's high-water marks are the code's. Two spaces are tracked,
// the backend's memory (GPU memory on CUDA) and host memory outside the backend (HostMatrix,
// std::vector, LAPACK workspaces), and also their sum at each moment: on the CPU backend both are
// host memory, and what a CPU rank needs is the peak of the sum, not the sum of the peaks.
//
// Work is counted in operations by kind (WorkEstimate) so that the planner can divide by the
// throughput of each kind on the target machine (pipeline/plan_time.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "linalg/backend.h"

namespace caldera::algo {

/// Where a tallied allocation lives.
enum class MemorySpace : uint8_t {
  kBackend,  ///< allocated through linalg::Backend (device memory on CUDA, host memory on CPU)
  kHost,     ///< host memory outside the backend
};

/// High-water marks of a tally, in bytes.
struct MemoryPeaks {
  int64_t backend = 0;   ///< peak of backend memory
  int64_t host = 0;      ///< peak of host memory outside the backend
  int64_t combined = 0;  ///< peak of backend + host at the same moment (a CPU backend's host need)
};

/// Replays allocations to find peaks (see the file comment). Not thread-safe; a Hold must not
/// outlive its tally.
class MemoryTally {
 public:
  /// A live allocation, released when destroyed or by release(). Move-only.
  class Hold {
   public:
    Hold() = default;
    Hold(Hold&& other) noexcept { swap(other); }
    Hold& operator=(Hold&& other) noexcept {
      Hold tmp(std::move(other));
      swap(tmp);
      return *this;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() { release(); }
    /// Frees the allocation now (idempotent).
    void release() noexcept;
    int64_t bytes() const noexcept { return bytes_; }

   private:
    friend class MemoryTally;
    Hold(MemoryTally* tally, int64_t id, int64_t bytes) noexcept : tally_(tally), id_(id), bytes_(bytes) {}
    void swap(Hold& o) noexcept {
      std::swap(tally_, o.tally_);
      std::swap(id_, o.id_);
      std::swap(bytes_, o.bytes_);
    }
    MemoryTally* tally_ = nullptr;
    int64_t id_ = 0;
    int64_t bytes_ = 0;
  };

  /// What was live at a peak: (label, bytes) merged by label, largest first.
  using Breakdown = std::vector<std::pair<std::string, int64_t>>;

  MemoryTally() = default;
  MemoryTally(const MemoryTally&) = delete;
  MemoryTally& operator=(const MemoryTally&) = delete;

  /// Allocates `bytes` (>= 0; Error otherwise) in `space` until the Hold is released. `label`
  /// names it in breakdowns.
  [[nodiscard]] Hold hold(MemorySpace space, int64_t bytes, std::string label = {});
  /// A rows×cols matrix of `elem_bytes`-sized entries in backend memory.
  [[nodiscard]] Hold backend(int64_t rows, int64_t cols, int64_t elem_bytes, std::string label = {}) {
    return hold(MemorySpace::kBackend, rows * cols * elem_bytes, std::move(label));
  }
  /// A rows×cols matrix of `elem_bytes`-sized entries in host memory.
  [[nodiscard]] Hold host(int64_t rows, int64_t cols, int64_t elem_bytes, std::string label = {}) {
    return hold(MemorySpace::kHost, rows * cols * elem_bytes, std::move(label));
  }
  /// A short-lived allocation: raises the peaks as if allocated and freed at once.
  void touch(MemorySpace space, int64_t bytes, std::string label = {}) { (void)hold(space, bytes, std::move(label)); }
  /// Accounts for a nested computation run now (e.g. Method::estimate): its peaks, measured from
  /// zero, on top of the current usage; `label` names it in breakdowns.
  void nest(const MemoryPeaks& inner, const std::string& label);

  int64_t current(MemorySpace space) const noexcept {
    return space == MemorySpace::kBackend ? current_backend_ : current_host_;
  }
  const MemoryPeaks& peaks() const noexcept { return peaks_; }
  /// What was live when the backend, host or combined peak was last raised.
  const Breakdown& at_backend_peak() const noexcept { return at_backend_peak_; }
  const Breakdown& at_host_peak() const noexcept { return at_host_peak_; }
  const Breakdown& at_combined_peak() const noexcept { return at_combined_peak_; }

 private:
  struct Live {
    std::string label;
    MemorySpace space;
    int64_t bytes;
  };
  void add(int64_t id, const Live& live, int sign);
  Breakdown snapshot(int space_mask, const std::string& extra_label, int64_t extra_bytes) const;
  int64_t current_backend_ = 0;
  int64_t current_host_ = 0;
  int64_t next_id_ = 1;
  std::map<int64_t, Live> live_;
  MemoryPeaks peaks_;
  Breakdown at_backend_peak_, at_host_peak_, at_combined_peak_;
};

/// Operation counts of a computation, by the kind of throughput that bounds them.
struct WorkEstimate {
  double gemm_flops = 0;       ///< fp32 GEMM/SYRK/TRSM flops (cuBLAS SGEMM, OpenBLAS sgemm)
  double fp64_flops = 0;       ///< fp64 GEMM/SYRK/TRSM flops (Gram matrices, small solves)
  double eigh_f64_n3 = 0;      ///< Σ n³ over fp64 symmetric eigendecompositions with eigenvectors
  double eigh_f32_n3 = 0;      ///< Σ n³ over fp32 symmetric eigendecompositions with eigenvectors
  double cholesky_n3 = 0;      ///< Σ n³ over Cholesky factorisations
  double rounded_weights = 0;  ///< entries rounded by lattice or grid kernels (LDLQ panels, E8P, RTN)
  double memory_bytes = 0;     ///< bytes moved by elementwise work (copies, transposes, Hadamard, fixed-point sums)
  WorkEstimate& operator+=(const WorkEstimate& other);
  WorkEstimate scaled(double factor) const;
};

/// What compress() needs for one m×n matrix (Method::estimate).
struct UnitEstimate {
  /// Peaks of compress() measured from its start: what it allocates itself (backend and host),
  /// not the weight and the statistics the pipeline passes in.
  MemoryPeaks memory;
  WorkEstimate work;
  int64_t checkpoint_bytes = 0;  ///< size of one mid-unit checkpoint file (0: no checkpoints)
  int64_t checkpoints = 0;       ///< checkpoints written by one uninterrupted compress()
  int64_t result_bytes = 0;      ///< bytes of the finished unit's tensors
  /// False for Method's generic default (the method has no model of its own): plan says so.
  bool modeled = true;
};

/// Workspace of an eigendecomposition with eigenvectors of an n×n matrix of `elem_bytes` entries,
/// taken as LAPACK syevd's lwork (1 + 6n + 2n² elements): device memory from the backend's pool on
/// CUDA (cuSOLVER), host memory on the CPU backend (LAPACKE allocates it). Raises the tally's peaks.
void touch_eigh_workspace(MemoryTally& tally, linalg::BackendKind kind, int64_t n, int64_t elem_bytes);

/// Buffer that fp64 Gram accumulation of a rows×n fp32 input widens rows into: host memory of at
/// most 2^24 doubles on the CPU backend, device memory of at most 256 MiB on CUDA (linalg). Raises
/// the tally's peaks.
void touch_gram_widen(MemoryTally& tally, linalg::BackendKind kind, int64_t rows, int64_t n);

}  // namespace caldera::algo
