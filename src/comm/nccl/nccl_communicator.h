// Device collectives over NCCL (DESIGN §4, style C11, ecosystem notes §3.4), compiled only when
// CALDERA_WITH_NCCL. No CUDA or NCCL type appears here: the stream is passed as `void*`
// (a cudaStream_t) and device buffers as spans of device memory.
//
// Bootstrap: rank 0's ncclUniqueId is broadcast over the MpiCommunicator (as nccl-tests do) and
// every rank joins with ncclCommInitRankConfig in non-blocking mode, so initialisation is also
// covered by the timeout.
// Hang protection: every call waits until its work is done, polling cudaStreamQuery and
// ncclCommGetAsyncError; an NCCL or CUDA error, or the timeout, makes the communicator call
// ncclCommAbort and throw CommError (ncclCommDestroy is never called on an error path, it can block
// forever). An aborted communicator throws CommError on every later call.
// NCCL needs one distinct GPU per rank: check comm::nccl_usable() (comm/launch.h) first and use the
// MPI host collectives otherwise (two ranks on one GPU cannot form a communicator).
// Determinism: NCCL's sums depend on the algorithm, channels and topology NCCL picks; results are
// reproducible for the same world size, GPUs and NCCL settings only (NCCL_ALGO, NCCL_NVLS_ENABLE).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>

#include "comm/mpi_communicator.h"

namespace caldera::comm {

struct NcclOptions {
  /// Longest wait for one operation (initialisation or a collective) before the communicator is
  /// aborted. A 70B down_proj Hessian (28672², fp64, 6.6 GB) reduces in seconds on NVLink; the
  /// default leaves room for slow fabrics and a straggling rank.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  /// Sleep between two polls of the stream and of NCCL's asynchronous error.
  std::chrono::microseconds poll_interval{200};
  /// Throws ConfigError unless timeout > 0 and poll_interval > 0.
  void validate() const;
};

class NcclCommunicator {
 public:
  /// Collective over the ranks of `mpi` (all call it, in the same order). The calling thread's
  /// current CUDA device is this rank's device: select it (by node-local rank) before, as the CUDA
  /// backend does. `cuda_stream` is a cudaStream_t (nullptr: the legacy default stream) that must
  /// outlive this object; every operation is enqueued on it and waited for. Throws CommError on
  /// every rank when the unique id cannot be made or any rank fails to initialise, ConfigError for
  /// invalid options.
  NcclCommunicator(MpiCommunicator& mpi, void* cuda_stream, const NcclOptions& options = {});
  /// Finalises then destroys the NCCL communicator; aborts it instead if finalising fails or times
  /// out. Never throws.
  ~NcclCommunicator();
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  [[nodiscard]] int rank() const noexcept;
  [[nodiscard]] int size() const noexcept;
  /// CUDA device ordinal the communicator was created on.
  [[nodiscard]] int device() const noexcept;
  /// True after an error or timeout aborted the communicator.
  [[nodiscard]] bool aborted() const noexcept;

  /// In-place sum over ranks of a device buffer (device memory of this rank's GPU). All ranks pass
  /// the same length. Returns when the result is in `device_data` (the stream has drained).
  void allreduce_sum(std::span<float> device_data);
  void allreduce_sum(std::span<double> device_data);
  /// In-place sum over ranks written on `root` only (ncclReduce); other ranks' buffers are inputs
  /// and stay unchanged. Throws CommError when root is outside [0, size()).
  void reduce_sum(std::span<float> device_data, int root);
  void reduce_sum(std::span<double> device_data, int root);

  /// Version of the NCCL library linked at run time, e.g. "2.28.3".
  [[nodiscard]] static std::string library_version();

  struct Impl;

 private:
  static void finalize_and_destroy(Impl& m);
  std::unique_ptr<Impl> impl_;
};

}  // namespace caldera::comm
