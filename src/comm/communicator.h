// Host-side collective communication behind one interface (DESIGN §4, style C11).
//
// Every collective below is called by all ranks of the communicator, in the same order, with
// matching arguments (same op, same root, same element count where stated). Buffers are host
// memory owned by the caller; nothing is retained after a call returns. Calls are blocking and
// are made from the thread that created the communicator (MPI_THREAD_FUNNELED).
//
// Errors: a violated precondition that every rank detects alike (root out of range, sizes that
// differ across ranks where they must match) throws CommError on every rank; a failing MPI call
// throws CommError naming the call and MPI's error string. A rank that throws while the others
// wait in a collective leaves them waiting: the CLI's top-level handler calls abort() (DESIGN §4).
//
// Implementations: MpiCommunicator (comm/mpi_communicator.h) and SelfCommunicator
// (comm/self_communicator.h, a world of one without MPI). make_communicator() picks one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace caldera::comm {

/// Reduction applied element-wise by allreduce.
enum class ReduceOp : uint8_t { kSum, kMax, kMin };
std::string_view to_string(ReduceOp op) noexcept;

/// Largest element count one MPI call receives by default: 2^26 (512 MiB of fp64). MPI counts are
/// `int` (< 2^31), and some reduce algorithms allocate a temporary as large as the message, so a
/// multi-GB Hessian goes in bounded pieces; per-call overhead is negligible at this size.
inline constexpr int64_t kDefaultMaxChunkElements = int64_t{1} << 26;

struct CommOptions {
  /// Collectives on longer buffers are split into calls of at most this many elements (bytes for
  /// byte collectives). Must be in [1, 2^31 - 1]; tests force small values to exercise chunking.
  int64_t max_chunk_elements = kDefaultMaxChunkElements;
  /// Throws ConfigError naming the field when a value is out of range.
  void validate() const;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  // ---- topology (local, no communication) -----------------------------------------------------
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  /// Rank among the processes sharing this node (MPI_COMM_TYPE_SHARED), used to pick the GPU.
  virtual int local_rank() const noexcept = 0;
  virtual int local_size() const noexcept = 0;
  virtual const std::string& host_name() const noexcept = 0;
  /// "mpi" or "self", for logs.
  virtual std::string_view kind_name() const noexcept = 0;

  // ---- collectives -----------------------------------------------------------------------------
  /// Blocks until every rank has called barrier().
  virtual void barrier() = 0;

  /// In-place element-wise reduction over ranks: afterwards every rank holds op(data of all
  /// ranks). All ranks pass the same element count and op. Buffers of any length (chunked).
  void allreduce(std::span<double> data, ReduceOp op) { do_allreduce(data.data(), ssize(data), Elem::kF64, op); }
  void allreduce(std::span<float> data, ReduceOp op) { do_allreduce(data.data(), ssize(data), Elem::kF32, op); }
  void allreduce(std::span<int64_t> data, ReduceOp op) { do_allreduce(data.data(), ssize(data), Elem::kI64, op); }
  /// Scalar convenience: returns op over ranks of `value` (T: double, float or int64_t).
  template <class T>
  [[nodiscard]] T allreduce_value(T value, ReduceOp op) {
    allreduce(std::span<T>(&value, 1), op);
    return value;
  }

  /// Sum of `data` over ranks, written in place on `root` only; other ranks' buffers are inputs
  /// and stay unchanged. Meant for fp64 Hessian sums of several GB: the MPI calls are chunked.
  /// For a fixed world size, data and chunk size the result is the same on every call.
  void reduce_sum(std::span<double> data, int root);

  /// Copies root's bytes into every rank's `data`; all ranks pass the same size.
  void broadcast(std::span<std::byte> data, int root);
  /// Root's string replaces `value` on every rank (length sent first; sizes may differ before).
  void broadcast(std::string& value, int root);
  /// Root's vector replaces `values` on every rank (T trivially copyable; lengths may differ).
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void broadcast(std::vector<T>& values, int root) {
    check_root(root, "broadcast");
    int64_t n = static_cast<int64_t>(values.size());
    do_broadcast(&n, sizeof n, root);
    values.resize(static_cast<size_t>(n));
    do_broadcast(values.data(), n * static_cast<int64_t>(sizeof(T)), root);
  }

  /// Fixed-size allgather: every rank passes `mine` of the same byte size s; returns size() * s
  /// bytes, rank r's contribution at [r * s, (r + 1) * s). Throws CommError on every rank when
  /// the sizes differ across ranks.
  [[nodiscard]] std::vector<std::byte> allgather(std::span<const std::byte> mine);
  /// One trivially copyable value per rank, indexed by rank.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  [[nodiscard]] std::vector<T> allgather_value(const T& value) {
    const auto bytes = allgather(std::as_bytes(std::span<const T>(&value, 1)));
    std::vector<T> out(static_cast<size_t>(size()));
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  /// Variable-size allgather: each rank passes any number of bytes; returns every rank's blob,
  /// indexed by rank (e.g. per-rank JSON status).
  [[nodiscard]] std::vector<std::vector<std::byte>> allgatherv(std::span<const std::byte> mine);
  [[nodiscard]] std::vector<std::string> allgather_strings(std::string_view mine);

  /// Agreement on a flag (stop requests, validation results): true when any / all ranks pass true.
  [[nodiscard]] bool any(bool flag);
  [[nodiscard]] bool all(bool flag);

  /// Ends the whole job (every rank) with `exit_code` after printing `message` with this rank and
  /// host on stderr. For unrecoverable errors only; never returns.
  [[noreturn]] virtual void abort(int exit_code, std::string_view message) noexcept = 0;

 protected:
  Communicator() = default;

  enum class Elem : uint8_t { kF64, kF32, kI64 };
  static int64_t elem_bytes(Elem elem) noexcept;

  // Hooks the implementations provide. Arguments are validated by the public functions above
  // (root in range, sizes consistent); counts are element counts of any size (>= 0).
  virtual void do_allreduce(void* data, int64_t count, Elem elem, ReduceOp op) = 0;
  virtual void do_reduce_sum(double* data, int64_t count, int root) = 0;
  virtual void do_broadcast(void* data, int64_t n_bytes, int root) = 0;
  /// `out` holds size() * n_bytes; rank r's bytes land at out + r * n_bytes.
  virtual void do_allgather(const void* mine, int64_t n_bytes, void* out) = 0;
  /// sizes[r] bytes from rank r land at out + sum(sizes[0..r)); sizes are the same on all ranks.
  virtual void do_allgatherv(const void* mine, std::span<const int64_t> sizes, void* out) = 0;

  /// Throws CommError when root is outside [0, size()).
  void check_root(int root, std::string_view what) const;

 private:
  template <class T>
  static int64_t ssize(std::span<T> s) noexcept {
    return static_cast<int64_t>(s.size());
  }
};

/// The communicator for this process: an MpiCommunicator over MPI_COMM_WORLD when MPI is
/// initialised and not finalised (an MpiSession is alive), else a SelfCommunicator. Throws
/// ConfigError for invalid options and CommError when MPI setup fails. The returned object must
/// be destroyed before the MpiSession.
[[nodiscard]] std::unique_ptr<Communicator> make_communicator(const CommOptions& options = {});

}  // namespace caldera::comm
