// NcclCommunicator: MPI bootstrap, non-blocking NCCL communicator, polled waits with abort.
// Follows the non-blocking pattern of NCCL's "Fault Tolerance" documentation: an NCCL call may
// return ncclInProgress; ncclCommGetAsyncError is polled until it leaves ncclInProgress before any
// further use, and an error or timeout is answered with ncclCommAbort.
#include "comm/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <thread>
#include <type_traits>

#include "core/error.h"
#include "core/log.h"

namespace caldera::comm {

void NcclOptions::validate() const {
  CALDERA_CHECK_AS(ConfigError, timeout.count() > 0, "NCCL option timeout: expected > 0 ms, got ", timeout.count());
  CALDERA_CHECK_AS(ConfigError, poll_interval.count() > 0, "NCCL option poll_interval: expected > 0 us, got ",
                   poll_interval.count());
}

namespace {
enum class WaitFor : uint8_t { kNccl, kNcclAndStream };
}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  NcclOptions options;
  int rank = 0;
  int size = 1;
  int device = 0;
  bool aborted = false;
  std::string where;  ///< "rank R on HOST, cuda:D" for messages

  /// Aborts the communicator (once) and throws CommError "<what> on <where>: <reason>".
  [[noreturn]] void fail(std::string_view what, const std::string& reason) {
    abort_comm();
    raise<CommError>("NCCL ", what, " on ", where, ": ", reason, "; the NCCL communicator was aborted");
  }

  void abort_comm() noexcept {
    if (comm != nullptr && !aborted) ncclCommAbort(comm);
    aborted = true;
    comm = nullptr;
  }

  std::string nccl_error(ncclResult_t r) const {
    std::string text = ncclGetErrorString(r);
    const char* last = ncclGetLastError(comm);
    if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
    return text;
  }

  void require_usable(std::string_view what) const {
    CALDERA_CHECK_AS(CommError, !aborted && comm != nullptr, "NCCL ", what, " on ", where,
                     ": the communicator was aborted after an earlier error or timeout");
  }

  /// Result of an enqueueing NCCL call: ncclSuccess and ncclInProgress are fine, anything else fails.
  void check_enqueue(ncclResult_t r, std::string_view what) {
    if (r != ncclSuccess && r != ncclInProgress) fail(what, nccl_error(r));
  }

  /// Polls until NCCL has left ncclInProgress and (kNcclAndStream) the stream is idle. Fails on
  /// an asynchronous NCCL error, a CUDA error or the timeout.
  void wait(std::string_view what, WaitFor until) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + options.timeout;
    for (;;) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t q = ncclCommGetAsyncError(comm, &state);
      if (q != ncclSuccess) fail(what, "ncclCommGetAsyncError failed: " + nccl_error(q));
      if (state != ncclSuccess && state != ncclInProgress) fail(what, "asynchronous error: " + nccl_error(state));
      if (state == ncclSuccess) {
        if (until == WaitFor::kNccl) return;
        const cudaError_t s = cudaStreamQuery(stream);
        if (s == cudaSuccess) return;
        if (s != cudaErrorNotReady)
          fail(what, std::string("CUDA error on the stream: ") + cudaGetErrorName(s) + ": " + cudaGetErrorString(s));
      }
      if (std::chrono::steady_clock::now() >= deadline)
        fail(what, detail::concat("timed out after ", options.timeout.count(), " ms (",
                                  state == ncclInProgress ? "NCCL still in progress" : "stream not drained",
                                  "); another rank may have failed or never joined"));
      std::this_thread::sleep_for(options.poll_interval);
    }
  }

  void set_device(std::string_view what) {
    const cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) fail(what, std::string("cudaSetDevice failed: ") + cudaGetErrorString(e));
  }

  template <class T>
  void collective(std::span<T> data, int root, std::string_view what) {
    require_usable(what);
    CALDERA_CHECK_AS(CommError, root >= -1 && root < size, "NCCL ", what, " on ", where, ": root rank ", root,
                     " is outside [0, ", size, ")");
    if (data.empty()) return;
    set_device(what);
    constexpr ncclDataType_t type = std::is_same_v<T, double> ? ncclFloat64 : ncclFloat32;
    void* buf = static_cast<void*>(data.data());
    const ncclResult_t r = root < 0 ? ncclAllReduce(buf, buf, data.size(), type, ncclSum, comm, stream)
                                    : ncclReduce(buf, buf, data.size(), type, ncclSum, root, comm, stream);
    check_enqueue(r, what);
    wait(what, WaitFor::kNcclAndStream);
  }
};

NcclCommunicator::NcclCommunicator(MpiCommunicator& mpi, void* cuda_stream, const NcclOptions& options)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  Impl& m = *impl_;
  m.options = options;
  m.stream = static_cast<cudaStream_t>(cuda_stream);
  m.rank = mpi.rank();
  m.size = mpi.size();
  const cudaError_t dev_rc = cudaGetDevice(&m.device);
  m.where = detail::concat("rank ", m.rank, " on ", mpi.host_name(), ", cuda:", m.device);

  // Rank 0 makes the id and tells everyone whether that worked, so a failure throws on all ranks.
  struct Bootstrap {
    int32_t ok = 0;
    ncclUniqueId id;
  } boot{};
  std::string root_error;
  if (m.rank == 0) {
    const ncclResult_t r = ncclGetUniqueId(&boot.id);
    boot.ok = r == ncclSuccess ? 1 : 0;
    if (r != ncclSuccess) root_error = ncclGetErrorString(r);
  }
  mpi.broadcast(std::as_writable_bytes(std::span<Bootstrap>(&boot, 1)), 0);
  mpi.barrier();  // as nccl-tests: all ranks hold the id before any joins
  CALDERA_CHECK_AS(CommError, boot.ok == 1, "NCCL bootstrap on ", m.where, ": rank 0 could not create the unique id",
                   root_error.empty() ? "" : ": ", root_error);

  std::string local_error;
  if (dev_rc != cudaSuccess) {
    local_error = std::string("cudaGetDevice failed: ") + cudaGetErrorString(dev_rc);
  } else {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&m.comm, m.size, boot.id, m.rank, &config);
    try {
      m.check_enqueue(r, "ncclCommInitRankConfig");
      m.wait("ncclCommInitRankConfig", WaitFor::kNccl);
    } catch (const CommError& e) {
      local_error = e.what();  // already aborted; agree with the other ranks before throwing
    }
  }
  // NCCL work is finished or aborted on this rank, so blocking in MPI is safe here.
  const bool all_ok = mpi.all(local_error.empty());
  if (!all_ok) {
    m.abort_comm();
    raise<CommError>(local_error.empty() ? detail::concat("NCCL initialisation failed on another rank; ", m.where,
                                                          " aborted its communicator")
                                         : local_error);
  }
  log_debug("NCCL ", library_version(), " communicator: ", m.where, ", ", m.size, " ranks");
}

NcclCommunicator::~NcclCommunicator() {
  Impl& m = *impl_;
  if (m.comm == nullptr || m.aborted) return;
  try {
    finalize_and_destroy(m);
  } catch (...) {
    m.abort_comm();  // never throw from a destructor; an unusable communicator is aborted instead
  }
}

void NcclCommunicator::finalize_and_destroy(Impl& m) {
  if (cudaSetDevice(m.device) != cudaSuccess) {
    m.abort_comm();
    return;
  }
  const ncclResult_t r = ncclCommFinalize(m.comm);
  if (r != ncclSuccess && r != ncclInProgress) {
    m.abort_comm();
    return;
  }
  try {
    m.wait("ncclCommFinalize", WaitFor::kNccl);
  } catch (const CommError& e) {
    log_warn(e.what());  // wait() has aborted the communicator
    return;
  }
  ncclCommDestroy(m.comm);
  m.comm = nullptr;
}

int NcclCommunicator::rank() const noexcept { return impl_->rank; }
int NcclCommunicator::size() const noexcept { return impl_->size; }
int NcclCommunicator::device() const noexcept { return impl_->device; }
bool NcclCommunicator::aborted() const noexcept { return impl_->aborted; }

void NcclCommunicator::allreduce_sum(std::span<float> device_data) { impl_->collective(device_data, -1, "allreduce"); }
void NcclCommunicator::allreduce_sum(std::span<double> device_data) { impl_->collective(device_data, -1, "allreduce"); }

void NcclCommunicator::reduce_sum(std::span<float> device_data, int root) {
  CALDERA_CHECK_AS(CommError, root >= 0, "NCCL reduce on ", impl_->where, ": root rank ", root, " is negative");
  impl_->collective(device_data, root, "reduce");
}
void NcclCommunicator::reduce_sum(std::span<double> device_data, int root) {
  CALDERA_CHECK_AS(CommError, root >= 0, "NCCL reduce on ", impl_->where, ": root rank ", root, " is negative");
  impl_->collective(device_data, root, "reduce");
}

std::string NcclCommunicator::library_version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  // NCCL >= 2.9 encodes MAJOR * 10000 + MINOR * 100 + PATCH.
  return detail::concat(code / 10000, ".", (code / 100) % 100, ".", code % 100);
}

}  // namespace caldera::comm
