// MPI implementation of Communicator and the MPI lifetime (DESIGN §4, style C11).
//
// This header does not include <mpi.h>, so code above comm/ can construct an MpiCommunicator
// without MPI types; comm/mpi_detail.h gives comm's own code (NCCL bootstrap) and the tests the
// underlying MPI_Comm.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace caldera::comm {

/// RAII owner of MPI's lifetime: MPI_Init_thread(MPI_THREAD_FUNNELED) on construction and
/// MPI_Finalize on destruction, only if this session was the one that initialised MPI (when MPI is
/// already initialised, e.g. by a test main, the session neither initialises nor finalises).
/// Communicators must be destroyed before the session that owns MPI. On an error path the CLI
/// calls Communicator::abort() instead of letting the destructor finalise.
class MpiSession {
 public:
  /// Throws CommError when MPI was already finalised, when MPI_Init_thread fails, or when MPI
  /// provides less than MPI_THREAD_FUNNELED.
  MpiSession();
  /// Same, passing the program's arguments to MPI_Init_thread (which may consume MPI options).
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  /// True when this session initialised MPI and will finalise it.
  [[nodiscard]] bool owns_mpi() const noexcept { return owns_mpi_; }
  /// True while MPI is initialised and not finalised (by any session or by other code).
  [[nodiscard]] static bool active() noexcept;

 private:
  void init(int* argc, char*** argv);
  bool owns_mpi_ = false;
};

/// Host collectives over a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN: every MPI call is
/// checked (CALDERA_MPI_CHECK) and a failure throws CommError naming the call and MPI's error
/// string. Buffers longer than options.max_chunk_elements are split into several MPI calls, so
/// counts stay below 2^31 for arrays of any size.
class MpiCommunicator final : public Communicator {
 public:
  /// Collective over MPI_COMM_WORLD (every rank constructs one, in the same order). Requires MPI
  /// to be initialised (an MpiSession); throws CommError otherwise or when an MPI call fails, and
  /// ConfigError when options are invalid.
  explicit MpiCommunicator(const CommOptions& options = {});
  /// Frees the duplicated communicators (skipped when MPI is already finalised). Not collective
  /// in practice with Open MPI; never throws.
  ~MpiCommunicator() override;

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  int local_rank() const noexcept override { return local_rank_; }
  int local_size() const noexcept override { return local_size_; }
  const std::string& host_name() const noexcept override { return host_name_; }
  std::string_view kind_name() const noexcept override { return "mpi"; }
  const CommOptions& options() const noexcept { return options_; }

  void barrier() override;
  /// Prints the message with rank and host on stderr, then MPI_Abort(MPI_COMM_WORLD, exit_code),
  /// which ends every rank of the job.
  [[noreturn]] void abort(int exit_code, std::string_view message) noexcept override;

  /// MPI handles, defined in comm/mpi_detail.h (only comm's code and tests include it).
  struct Impl;
  [[nodiscard]] const Impl& impl() const noexcept { return *impl_; }

 private:
  void do_allreduce(void* data, int64_t count, Elem elem, ReduceOp op) override;
  void do_reduce_sum(double* data, int64_t count, int root) override;
  void do_broadcast(void* data, int64_t n_bytes, int root) override;
  void do_allgather(const void* mine, int64_t n_bytes, void* out) override;
  void do_allgatherv(const void* mine, std::span<const int64_t> sizes, void* out) override;

  std::unique_ptr<Impl> impl_;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string host_name_;
};

}  // namespace caldera::comm
