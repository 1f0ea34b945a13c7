#include "cli/app.h"

#include <cstdio>

#include "caldera/config.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/log.h"

namespace caldera::cli {

int run_app(const std::vector<std::string>& args, CliContext& context,
            const std::vector<std::unique_ptr<Subcommand>>& subcommands) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (context.rank == 0) std::fputs(main_help(subcommands).c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") {
    if (context.rank == 0) std::printf("caldera-dist %s\n", CALDERA_VERSION);
    return kExitOk;
  }
  const Subcommand* sub = nullptr;
  for (const auto& s : subcommands)
    if (s->name() == args[0]) sub = s.get();
  if (sub == nullptr) {
    if (context.rank == 0)
      std::fprintf(stderr, "caldera-dist: unknown subcommand '%s'\n\n%s", args[0].c_str(), main_help(subcommands).c_str());
    return kExitUsage;
  }
  try {
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    ParsedCommand parsed = parse_command(*sub, rest, subcommands);
    if (parsed.help) {
      if (context.rank == 0) std::fputs(subcommand_help(*sub).c_str(), stdout);
      return kExitOk;
    }
    set_log_level(parse_log_level(parsed.values["log-level"].as<std::string>()));
    context.json = parsed.values["json"].as<bool>();
    log_debug("resolved options: ", resolved_options_json(parsed.values).dump());
    return sub->run(parsed.values, context);
  } catch (const ConfigError& e) {
    // With several ranks an error seen by some ranks only would leave the others waiting in a
    // collective: main() ends the whole job instead.
    if (context.world_size > 1) throw;
    std::fprintf(stderr, "caldera-dist %s: error: %s\n", sub->name().data(), e.what());
    return kExitUsage;
  }
}

}  // namespace caldera::cli
