// Error model (style C2): typed exceptions raised through checked choke points.
//
// Every message says what was expected, what was found and where (tensor, file, layer).
// Library code never calls exit(); the CLI decides what an uncaught exception does (C3).
#pragma once

#include <functional>
#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace caldera {

/// Base of every error the project throws. Also used for violated preconditions (bad arguments).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// Invalid configuration or command-line value; the message names the option.
class ConfigError : public Error {
 public:
  using Error::Error;
};
/// File missing, unreadable, truncated or malformed; the message names the file (and tensor).
class IoError : public Error {
 public:
  using Error::Error;
};
/// Numerical failure: matrix not positive definite, non-finite values, failed convergence.
class NumericError : public Error {
 public:
  using Error::Error;
};
/// CUDA runtime error that leaves the device usable.
class CudaError : public Error {
 public:
  using Error::Error;
};
/// BLAS / LAPACK / cuBLAS / cuSOLVER failure other than a numerical one.
class BlasError : public Error {
 public:
  using Error::Error;
};
/// MPI or NCCL communication failure.
class CommError : public Error {
 public:
  using Error::Error;
};

namespace detail {

/// Streams every argument into one string: concat("n=", 3, " m=", 4.5).
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] void fail_check(const char* expr, const std::source_location& loc, const std::string& msg);

}  // namespace detail

/// Throws E with the concatenated message.
template <class E = Error, class... Args>
[[noreturn]] void raise(const Args&... args) {
  throw E(detail::concat(args...));
}

/// Handler for unrecoverable errors (sticky CUDA errors, a rank that must bring the job down).
/// The CLI installs one that logs and calls MPI_Abort; the default prints and calls std::abort.
using FatalHandler = std::function<void(std::string_view message)>;
void set_fatal_handler(FatalHandler handler);
[[noreturn]] void fatal(std::string_view message);

}  // namespace caldera

/// Precondition check: throws caldera::Error("<file>:<line>: check `cond` failed: <message>").
#define CALDERA_CHECK(cond, ...)                                                                   \
  do {                                                                                             \
    if (!(cond)) [[unlikely]]                                                                      \
      ::caldera::detail::fail_check(#cond, std::source_location::current(),                        \
                                    ::caldera::detail::concat(__VA_ARGS__));                       \
  } while (0)

/// Check that throws a specific exception type with only the given message (for user-facing errors).
#define CALDERA_CHECK_AS(ExceptionType, cond, ...)                                                 \
  do {                                                                                             \
    if (!(cond)) [[unlikely]]                                                                      \
      throw ExceptionType(::caldera::detail::concat(__VA_ARGS__));                                 \
  } while (0)
