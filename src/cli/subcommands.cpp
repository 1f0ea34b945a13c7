// The list of subcommands, in `caldera-dist --help` order. Each lives in its own cmd_<name>.cpp.
#include "cli/subcommand.h"

namespace caldera::cli {

std::unique_ptr<Subcommand> make_run_command();       // cmd_run.cpp
std::unique_ptr<Subcommand> make_hessians_command();  // cmd_hessians.cpp
std::unique_ptr<Subcommand> make_compress_command();  // cmd_compress.cpp
std::unique_ptr<Subcommand> make_export_command();    // cmd_export.cpp
std::unique_ptr<Subcommand> make_eval_command();      // cmd_eval.cpp
std::unique_ptr<Subcommand> make_plan_command();      // cmd_plan.cpp
std::unique_ptr<Subcommand> make_inspect_command();   // cmd_inspect.cpp

std::vector<std::unique_ptr<Subcommand>> make_subcommands() {
  std::vector<std::unique_ptr<Subcommand>> all;
  all.push_back(make_plan_command());
  all.push_back(make_run_command());
  all.push_back(make_hessians_command());
  all.push_back(make_compress_command());
  all.push_back(make_export_command());
  all.push_back(make_eval_command());
  all.push_back(make_inspect_command());
  return all;
}

}  // namespace caldera::cli
