// MPI internals of comm/: the checked-call macro and access to an MpiCommunicator's MPI_Comm.
// Included only by comm/ sources and comm's tests (MPI headers stay in comm, DESIGN §5).
#pragma once

// Only MPI's C API is used: skip the deprecated C++ bindings (compile time, warnings).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <source_location>

#include "comm/mpi_communicator.h"

namespace caldera::comm {

struct MpiCommunicator::Impl {
  MPI_Comm comm = MPI_COMM_NULL;  ///< duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN
};

/// The communicator's MPI_Comm (a duplicate of MPI_COMM_WORLD, errors returned, not fatal).
[[nodiscard]] inline MPI_Comm native_comm(const MpiCommunicator& comm) noexcept { return comm.impl().comm; }

namespace detail {

/// Throws CommError: "<call> failed on world rank R (<file>:<line>): <MPI error class>: <string>".
[[noreturn]] void throw_mpi_error(int code, const char* call, const std::source_location& loc);

inline void mpi_check(int code, const char* call, const std::source_location& loc) {
  if (code != MPI_SUCCESS) [[unlikely]]
    throw_mpi_error(code, call, loc);
}

}  // namespace detail
}  // namespace caldera::comm

/// Checks an MPI call's return code (the communicator must use MPI_ERRORS_RETURN) and throws
/// caldera::CommError naming the call and MPI's error string when it is not MPI_SUCCESS.
#define CALDERA_MPI_CHECK(call) ::caldera::comm::detail::mpi_check((call), #call, std::source_location::current())
