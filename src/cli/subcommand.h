// Subcommands of caldera-dist (DESIGN §1): each declares its options (Boost.Program_options) and
// runs from the parsed values. The list is explicit (subcommands.cpp), no static registration.
#pragma once

#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "io/json_value.h"

namespace caldera::cli {

namespace po = boost::program_options;

/// Exit codes of the tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   ///< runtime error (I/O, numerics, communication)
inline constexpr int kExitUsage = 2;     ///< bad command line or configuration
inline constexpr int kExitRequeue = 75;  ///< stopped at a safe point on SIGUSR1/SIGTERM; resubmit to continue

/// What a subcommand gets besides its options: the process's place in the job and the output sink.
struct CliContext {
  /// The job's communicator (an MPI world, or a world of one); never null while a subcommand runs.
  comm::Communicator* comm = nullptr;
  int rank = 0;
  int world_size = 1;
  /// Set by --json: print the summary object as the last stdout line (rank 0 only).
  bool json = false;

  /// Prints `summary` as one line on stdout when --json was given (rank 0 only); otherwise nothing.
  void emit_json(const io::JsonValue& summary) const;
};

class Subcommand {
 public:
  virtual ~Subcommand() = default;
  virtual std::string_view name() const = 0;
  /// One line for `caldera-dist --help`.
  virtual std::string_view summary() const = 0;
  /// Adds the subcommand's own options (the common ones are added by the framework).
  virtual void add_options(po::options_description& options) const = 0;
  /// Runs; returns the process exit code. Throws ConfigError for invalid option values.
  virtual int run(const po::variables_map& values, CliContext& context) const = 0;
};

/// Every subcommand, in the order `--help` lists them.
std::vector<std::unique_ptr<Subcommand>> make_subcommands();

}  // namespace caldera::cli
