// The list of subcommands, in `caldera-dist --help` order. Each lives in its own cmd_<name>.cpp.
#include "cli/subcommand.h"

namespace caldera::cli {

std::unique_ptr<Subcommand> make_hessians_command();  // cmd_hessians.cpp
std::unique_ptr<Subcommand> make_eval_command();      // cmd_eval.cpp

std::vector<std::unique_ptr<Subcommand>> make_subcommands() {
  std::vector<std::unique_ptr<Subcommand>> all;
  all.push_back(make_hessians_command());
  all.push_back(make_eval_command());
  return all;
}

}  // namespace caldera::cli
