#include "comm/mpi_communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "comm/mpi_detail.h"
#include "comm/self_communicator.h"
#include "core/log.h"

namespace caldera::comm {

namespace detail {

void throw_mpi_error(int code, const char* call, const std::source_location& loc) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof text, "error code %d", code);
  int error_class = code;
  MPI_Error_class(code, &error_class);
  char class_text[MPI_MAX_ERROR_STRING] = {};
  if (MPI_Error_string(error_class, class_text, &len) != MPI_SUCCESS)
    std::snprintf(class_text, sizeof class_text, "class %d", error_class);
  int world_rank = -1;
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  std::string file = loc.file_name();
  if (auto pos = file.rfind("/src/"); pos != std::string::npos) file = file.substr(pos + 1);
  std::string what = call;
  if (auto paren = what.find('('); paren != std::string::npos) what.resize(paren);
  raise<CommError>(what, " failed on world rank ", world_rank, " (", file, ":", loc.line(), "): ", class_text,
                   std::strcmp(class_text, text) == 0 ? "" : std::string(": ") + text);
}

}  // namespace detail

namespace {

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  raise<CommError>("unknown reduce op ", static_cast<int>(op));
}

/// Calls fn(offset, count) for consecutive chunks [offset, offset + count) covering [0, total),
/// each count <= max_chunk (and < 2^31, checked by CommOptions::validate()).
template <class Fn>
void for_each_chunk(int64_t total, int64_t max_chunk, Fn&& fn) {
  for (int64_t offset = 0; offset < total; offset += max_chunk) fn(offset, std::min(max_chunk, total - offset));
}

}  // namespace

// ---- MpiSession ----------------------------------------------------------------------------------

MpiSession::MpiSession() { init(nullptr, nullptr); }

MpiSession::MpiSession(int& argc, char**& argv) { init(&argc, &argv); }

void MpiSession::init(int* argc, char*** argv) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  CALDERA_CHECK_AS(CommError, !finalized, "MpiSession: MPI was already finalised in this process; it cannot be "
                                          "initialised again");
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    MPI_Query_thread(&provided);
  } else {
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    CALDERA_CHECK_AS(CommError, rc == MPI_SUCCESS, "MPI_Init_thread failed with code ", rc);
    owns_mpi_ = true;
  }
  CALDERA_CHECK_AS(CommError, provided >= MPI_THREAD_FUNNELED,
                   "MpiSession: expected MPI thread support MPI_THREAD_FUNNELED (", MPI_THREAD_FUNNELED,
                   ") or higher, MPI provides level ", provided);
}

MpiSession::~MpiSession() {
  if (!owns_mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

bool MpiSession::active() noexcept {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

// ---- MpiCommunicator -----------------------------------------------------------------------------

MpiCommunicator::MpiCommunicator(const CommOptions& options) : impl_(std::make_unique<Impl>()), options_(options) {
  options_.validate();
  CALDERA_CHECK_AS(CommError, MpiSession::active(),
                   "MpiCommunicator: MPI is not initialised (create an MpiSession first) or already finalised");
  CALDERA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm));
  CALDERA_MPI_CHECK(MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN));
  CALDERA_MPI_CHECK(MPI_Comm_rank(impl_->comm, &rank_));
  CALDERA_MPI_CHECK(MPI_Comm_size(impl_->comm, &size_));

  MPI_Comm node = MPI_COMM_NULL;
  CALDERA_MPI_CHECK(MPI_Comm_split_type(impl_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  const int rank_rc = MPI_Comm_rank(node, &local_rank_);
  const int size_rc = MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  CALDERA_MPI_CHECK(rank_rc);
  CALDERA_MPI_CHECK(size_rc);

  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  CALDERA_MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_name_.assign(name, static_cast<size_t>(std::max(len, 0)));
  if (host_name_.empty()) host_name_ = local_host_name();
}

MpiCommunicator::~MpiCommunicator() {
  if (impl_ && impl_->comm != MPI_COMM_NULL && MpiSession::active()) MPI_Comm_free(&impl_->comm);
}

void MpiCommunicator::barrier() { CALDERA_MPI_CHECK(MPI_Barrier(impl_->comm)); }

void MpiCommunicator::abort(int exit_code, std::string_view message) noexcept {
  std::fprintf(stderr, "caldera: rank %d of %d on %s aborts the job (exit code %d): %.*s\n", rank_, size_,
               host_name_.c_str(), exit_code, static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::fflush(stdout);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return in practice; this keeps [[noreturn]] honest.
}

void MpiCommunicator::do_allreduce(void* data, int64_t count, Elem elem, ReduceOp op) {
  const int64_t esz = elem_bytes(elem);
  MPI_Datatype type = MPI_DOUBLE;
  switch (elem) {
    case Elem::kF64: type = MPI_DOUBLE; break;
    case Elem::kF32: type = MPI_FLOAT; break;
    case Elem::kI64: type = MPI_INT64_T; break;
  }
  const MPI_Op mop = mpi_op(op);
  auto* base = static_cast<std::byte*>(data);
  for_each_chunk(count, options_.max_chunk_elements, [&](int64_t offset, int64_t n) {
    CALDERA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, base + offset * esz, static_cast<int>(n), type, mop, impl_->comm));
  });
}

void MpiCommunicator::do_reduce_sum(double* data, int64_t count, int root) {
  for_each_chunk(count, options_.max_chunk_elements, [&](int64_t offset, int64_t n) {
    if (rank_ == root)
      CALDERA_MPI_CHECK(
          MPI_Reduce(MPI_IN_PLACE, data + offset, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, root, impl_->comm));
    else
      CALDERA_MPI_CHECK(
          MPI_Reduce(data + offset, nullptr, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, root, impl_->comm));
  });
}

void MpiCommunicator::do_broadcast(void* data, int64_t n_bytes, int root) {
  auto* base = static_cast<std::byte*>(data);
  for_each_chunk(n_bytes, options_.max_chunk_elements, [&](int64_t offset, int64_t n) {
    CALDERA_MPI_CHECK(MPI_Bcast(base + offset, static_cast<int>(n), MPI_BYTE, root, impl_->comm));
  });
}

void MpiCommunicator::do_allgather(const void* mine, int64_t n_bytes, void* out) {
  if (n_bytes == 0) return;
  const auto* src = static_cast<const std::byte*>(mine);
  auto* dst = static_cast<std::byte*>(out);
  if (n_bytes * size_ <= options_.max_chunk_elements) {
    CALDERA_MPI_CHECK(MPI_Allgather(src, static_cast<int>(n_bytes), MPI_BYTE, dst, static_cast<int>(n_bytes), MPI_BYTE,
                                    impl_->comm));
    return;
  }
  // Gather slices of every rank's bytes so that one call moves at most max_chunk_elements bytes
  // in total, then scatter each slice to its rank's place in `out`.
  const int64_t per_rank = std::max<int64_t>(1, options_.max_chunk_elements / size_);
  std::vector<std::byte> slice(static_cast<size_t>(per_rank * size_));
  for_each_chunk(n_bytes, per_rank, [&](int64_t offset, int64_t n) {
    CALDERA_MPI_CHECK(MPI_Allgather(src + offset, static_cast<int>(n), MPI_BYTE, slice.data(), static_cast<int>(n),
                                    MPI_BYTE, impl_->comm));
    for (int r = 0; r < size_; ++r)
      std::memcpy(dst + r * n_bytes + offset, slice.data() + r * n, static_cast<size_t>(n));
  });
}

void MpiCommunicator::do_allgatherv(const void* mine, std::span<const int64_t> sizes, void* out) {
  std::vector<int64_t> displs(sizes.size(), 0);
  for (size_t r = 1; r < sizes.size(); ++r) displs[r] = displs[r - 1] + sizes[r - 1];
  const int64_t total = displs.back() + sizes.back();
  auto* dst = static_cast<std::byte*>(out);
  if (total == 0) return;
  if (total <= options_.max_chunk_elements) {
    std::vector<int> counts_i(sizes.begin(), sizes.end());
    std::vector<int> displs_i(displs.begin(), displs.end());
    CALDERA_MPI_CHECK(MPI_Allgatherv(mine, counts_i[static_cast<size_t>(rank_)], MPI_BYTE, dst, counts_i.data(),
                                     displs_i.data(), MPI_BYTE, impl_->comm));
    return;
  }
  // Too large for int displacements: every rank broadcasts its blob in turn, chunked.
  const auto me = static_cast<size_t>(rank_);
  if (sizes[me] > 0) std::memcpy(dst + displs[me], mine, static_cast<size_t>(sizes[me]));
  for (int r = 0; r < size_; ++r) do_broadcast(dst + displs[static_cast<size_t>(r)], sizes[static_cast<size_t>(r)], r);
}

// ---- factory -------------------------------------------------------------------------------------

std::unique_ptr<Communicator> make_communicator(const CommOptions& options) {
  options.validate();
  if (MpiSession::active()) return std::make_unique<MpiCommunicator>(options);
  return std::make_unique<SelfCommunicator>();
}

}  // namespace caldera::comm
