// The list of subcommands, in `caldera-dist --help` order. Each lives in its own cmd_<name>.cpp.
#include "cli/subcommand.h"

namespace caldera::cli {

std::vector<std::unique_ptr<Subcommand>> make_subcommands() {
  std::vector<std::unique_ptr<Subcommand>> all;
  return all;
}

}  // namespace caldera::cli
