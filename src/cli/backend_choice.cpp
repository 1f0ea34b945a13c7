#include "cli/backend_choice.h"

#include <string>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/log.h"
#include "linalg/cpu/cpu_backend.h"

namespace caldera::cli {

std::unique_ptr<linalg::Backend> make_backend_from_options(const po::variables_map& values, const CliContext& context) {
  const std::string name = values["backend"].as<std::string>();
  linalg::BackendKind kind = linalg::BackendKind::kCpu;
  if (name == "auto") {
    kind = linalg::backend_available(linalg::BackendKind::kCuda) ? linalg::BackendKind::kCuda
                                                                 : linalg::BackendKind::kCpu;
  } else {
    kind = linalg::parse_backend_kind(name);
  }
  linalg::BackendOptions options;
  options.cpu_threads = values["threads"].as<int>();
  CALDERA_CHECK_AS(ConfigError, options.cpu_threads >= 0, "--threads must be >= 0, got ", options.cpu_threads);
  options.local_rank = context.comm != nullptr ? context.comm->local_rank() : 0;
  auto backend = linalg::make_backend(kind, options);
  log_info("backend: ", backend->description());
  if (kind == linalg::BackendKind::kCpu && options.local_rank == 0)
    if (const std::string advice = linalg::openblas_kernel_advice(); !advice.empty()) log_warn(advice);
  return backend;
}

}  // namespace caldera::cli
