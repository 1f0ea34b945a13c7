// Command-line and INI parsing shared by all subcommands (style C9: parsed once at the edge).
//
// Precedence: command line > --config files (a later file over an earlier one) > built-in default.
// INI files hold `key = value` lines whose keys are long option names (no sections); `#` starts a
// comment. A key that no subcommand knows is an error naming the file and key (typos never pass
// silently); a key known only to other subcommands is ignored, so one preset serves plan, run
// and compress.
#pragma once

#include <string>
#include <vector>

#include "cli/subcommand.h"

namespace caldera::cli {

/// Options every subcommand accepts: --help, --config, --json, --log-level, --backend, --threads.
po::options_description common_options();

/// The full option set of one subcommand (its own + common).
po::options_description subcommand_options(const Subcommand& sub);

struct ParsedCommand {
  po::variables_map values;
  bool help = false;
  std::vector<std::string> config_files;
};

/// Parses `args` (the words after the subcommand name) for `sub`; `all` is every subcommand (used
/// to tell a typo in an INI file from another subcommand's key). Throws ConfigError on unknown
/// options, bad values, unreadable or malformed INI files.
ParsedCommand parse_command(const Subcommand& sub, const std::vector<std::string>& args,
                            const std::vector<std::unique_ptr<Subcommand>>& all);

/// Text of `caldera-dist <sub> --help`.
std::string subcommand_help(const Subcommand& sub);
/// Text of `caldera-dist --help`.
std::string main_help(const std::vector<std::unique_ptr<Subcommand>>& all);

/// The resolved configuration (every option with its value and where it came from) as JSON, for
/// the log and the run record.
io::JsonValue resolved_options_json(const po::variables_map& values);

}  // namespace caldera::cli
