// Sums of the phase-1 accumulators over ranks onto the writer rank (DESIGN §4: NCCL on GPUs, MPI
// on CPUs). The one place that decides between them (style C6: the #if lives in the .cpp factory).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "core/matrix.h"
#include "linalg/backend.h"

namespace caldera::pipeline {

class HessianReducer {
 public:
  virtual ~HessianReducer() = default;
  /// "mpi (host, packed lower triangle)" or "nccl (device)", for logs.
  virtual std::string_view name() const noexcept = 0;

  /// Σ over ranks of the symmetric n×n fp64 matrix `sum` (backend memory, contiguous). Returns the
  /// full symmetric result on `root` and an empty matrix elsewhere. `sum` may be overwritten (the
  /// NCCL path reduces in place). Collective: every rank calls it with the same n and root.
  virtual HostMatrix<double> reduce_symmetric(MatrixView<double> sum, int root) = 0;
  /// Σ over ranks of the fp64 vector `v` (backend memory, 1×n contiguous); on `root` only, empty
  /// elsewhere. `v` may be overwritten.
  virtual std::vector<double> reduce_vector(MatrixView<double> v, int root) = 0;
};

/// NCCL (device buffers, no host staging on non-root ranks) when the backend is CUDA, the build has
/// NCCL, the world is an MPI world (mpiexec/srun, any size; a world of one then exercises the same
/// path) and comm::nccl_usable holds (a distinct GPU per rank on every node); otherwise MPI reduce
/// of host copies with the lower triangle packed (half the traffic). Collective (every rank of `world` calls it). Both paths are deterministic for
/// a fixed world size; they differ from each other only in summation order.
std::unique_ptr<HessianReducer> make_hessian_reducer(linalg::Backend& backend, comm::Communicator& world);

}  // namespace caldera::pipeline
