#include "pipeline/hessian_reduce.h"

#include "caldera/config.h"
#include "core/error.h"
#include "core/log.h"

#if CALDERA_WITH_NCCL
#include "comm/launch.h"
#include "comm/mpi_communicator.h"
#include "comm/nccl/nccl_communicator.h"
#include "linalg/cuda/cuda_backend.h"
#endif

namespace caldera::pipeline {
namespace {

/// Host path: download, pack the lower triangle (row-major lower order), MPI reduce, unpack.
class MpiHessianReducer final : public HessianReducer {
 public:
  MpiHessianReducer(linalg::Backend& backend, comm::Communicator& world) : backend_(backend), world_(world) {}
  std::string_view name() const noexcept override { return "mpi (host, packed lower triangle)"; }

  HostMatrix<double> reduce_symmetric(MatrixView<double> sum, int root) override {
    HostMatrix<double> full = backend_.download(MatrixView<const double>(sum));
    const int64_t n = full.rows();
    std::vector<double> packed(static_cast<size_t>(n * (n + 1) / 2));
    size_t k = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) packed[k++] = full(i, j);
    world_.reduce_sum(packed, root);
    if (world_.rank() != root) return {};
    k = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        full(i, j) = packed[k];
        full(j, i) = packed[k++];
      }
    return full;
  }

  std::vector<double> reduce_vector(MatrixView<double> v, int root) override {
    std::vector<double> host = backend_.download(MatrixView<const double>(v)).storage();
    world_.reduce_sum(host, root);
    if (world_.rank() != root) return {};
    return host;
  }

 private:
  linalg::Backend& backend_;
  comm::Communicator& world_;
};

#if CALDERA_WITH_NCCL
/// Device path: ncclReduce in place on the accumulators; only the root downloads. NCCL runs on the
/// legacy default stream after the backend's stream is synchronized, and the communicator waits for
/// completion, so the orderings on both sides are explicit.
class NcclHessianReducer final : public HessianReducer {
 public:
  NcclHessianReducer(linalg::Backend& backend, comm::MpiCommunicator& mpi)
      : backend_(backend), rank_(mpi.rank()), nccl_(mpi, nullptr) {}
  std::string_view name() const noexcept override { return "nccl (device)"; }

  HostMatrix<double> reduce_symmetric(MatrixView<double> sum, int root) override {
    CALDERA_CHECK(sum.contiguous(), "reduce_symmetric: the accumulator must be contiguous");
    backend_.synchronize();
    nccl_.reduce_sum(std::span<double>(sum.data, static_cast<size_t>(sum.size())), root);
    if (rank_ != root) return {};
    return backend_.download(MatrixView<const double>(sum));
  }

  std::vector<double> reduce_vector(MatrixView<double> v, int root) override {
    CALDERA_CHECK(v.contiguous(), "reduce_vector: the accumulator must be contiguous");
    backend_.synchronize();
    nccl_.reduce_sum(std::span<double>(v.data, static_cast<size_t>(v.size())), root);
    if (rank_ != root) return {};
    return backend_.download(MatrixView<const double>(v)).storage();
  }

 private:
  linalg::Backend& backend_;
  int rank_;
  comm::NcclCommunicator nccl_;
};
#endif

}  // namespace

std::unique_ptr<HessianReducer> make_hessian_reducer(linalg::Backend& backend, comm::Communicator& world) {
#if CALDERA_WITH_NCCL
  auto* mpi = dynamic_cast<comm::MpiCommunicator*>(&world);  // the same type on every rank
  if (backend.kind() == linalg::BackendKind::kCuda && mpi != nullptr) {
    // Collective decision: every rank evaluates nccl_usable over the whole world.
    if (comm::nccl_usable(world, linalg::cuda_device_count())) {
      backend.synchronize();  // makes the backend's device current in this thread before NCCL init
      log_info("hessians: reducing over ranks with NCCL");
      return std::make_unique<NcclHessianReducer>(backend, *mpi);
    }
    log_info("hessians: NCCL not usable here (ranks per node exceed GPUs per node); reducing through MPI");
  }
#endif
  return std::make_unique<MpiHessianReducer>(backend, world);
}

}  // namespace caldera::pipeline
