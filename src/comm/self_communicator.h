// A world of one process, without MPI (DESIGN §4: "a plain single process without either").
#pragma once

#include <string>

#include "comm/communicator.h"

namespace caldera::comm {

/// rank 0 of 1: every collective is a local copy or a no-op (a reduction over one rank is the
/// identity). Any root other than 0 throws CommError, as on a larger world.
class SelfCommunicator final : public Communicator {
 public:
  /// Reads the host name (gethostname); never communicates.
  SelfCommunicator();

  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  int local_rank() const noexcept override { return 0; }
  int local_size() const noexcept override { return 1; }
  const std::string& host_name() const noexcept override { return host_name_; }
  std::string_view kind_name() const noexcept override { return "self"; }
  void barrier() override {}
  /// Prints the message and ends the process with exit_code (std::_Exit: no destructors run).
  [[noreturn]] void abort(int exit_code, std::string_view message) noexcept override;

 private:
  void do_allreduce(void* data, int64_t count, Elem elem, ReduceOp op) override;
  void do_reduce_sum(double* data, int64_t count, int root) override;
  void do_broadcast(void* data, int64_t n_bytes, int root) override;
  void do_allgather(const void* mine, int64_t n_bytes, void* out) override;
  void do_allgatherv(const void* mine, std::span<const int64_t> sizes, void* out) override;

  std::string host_name_;
};

/// This machine's host name (gethostname), "unknown-host" when it cannot be read.
[[nodiscard]] std::string local_host_name();

}  // namespace caldera::comm
