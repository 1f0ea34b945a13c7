#include "cli/options.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace caldera::cli {
namespace {

/// po::error -> ConfigError with the offending option named by Boost.
[[noreturn]] void rethrow_as_config_error(const po::error& e, const std::string& where) {
  raise<ConfigError>(where, e.what());
}

bool any_subcommand_knows(const std::string& key, const std::vector<std::unique_ptr<Subcommand>>& all) {
  for (const auto& s : all) {
    auto desc = subcommand_options(*s);
    if (desc.find_nothrow(key, false) != nullptr) return true;
  }
  return false;
}

}  // namespace

po::options_description common_options() {
  po::options_description d("Common options");
  d.add_options()
    ("help,h", "show this help and exit")
    ("config", po::value<std::vector<std::string>>()->composing(),
     "INI file of `option = value` lines (repeatable; a later file overrides an earlier one; the command line "
     "overrides both)")
    ("json", po::bool_switch()->default_value(false),
     "print a one-line JSON summary of the result as the last line on stdout")
    ("log-level", po::value<std::string>()->default_value("info"), "debug | info | warn | error (stderr)")
    ("backend", po::value<std::string>()->default_value("auto"),
     "compute backend: cpu | cuda | auto (cuda when a GPU is visible, else cpu)")
    ("threads", po::value<int>()->default_value(0), "CPU threads for BLAS/OpenMP per rank (0: library default)");
  return d;
}

po::options_description subcommand_options(const Subcommand& sub) {
  po::options_description own(std::string(sub.name()) + " options");
  sub.add_options(own);
  po::options_description all;
  all.add(own).add(common_options());
  return all;
}

ParsedCommand parse_command(const Subcommand& sub, const std::vector<std::string>& args,
                            const std::vector<std::unique_ptr<Subcommand>>& all) {
  const po::options_description desc = subcommand_options(sub);
  const std::string where = detail::concat("caldera-dist ", sub.name(), ": ");
  ParsedCommand out;
  try {
    auto cmdline = po::command_line_parser(args).options(desc).run();
    po::store(cmdline, out.values);
  } catch (const po::error& e) {
    rethrow_as_config_error(e, where);
  }
  out.help = out.values.count("help") > 0;
  if (out.values.count("config")) out.config_files = out.values["config"].as<std::vector<std::string>>();

  // Later files first, so that (first-stored-wins) a later file overrides an earlier one.
  for (auto it = out.config_files.rbegin(); it != out.config_files.rend(); ++it) {
    const std::string& path = *it;
    std::ifstream in(path);
    if (!in) raise<ConfigError>(where, "--config ", path, ": cannot open the file");
    po::parsed_options parsed(&desc);
    try {
      parsed = po::parse_config_file(in, desc, /*allow_unregistered=*/true);
    } catch (const po::error& e) {
      rethrow_as_config_error(e, detail::concat(where, "--config ", path, ": "));
    }
    std::vector<po::option> kept;
    for (auto& opt : parsed.options) {
      if (opt.string_key == "config")
        raise<ConfigError>(where, "--config ", path, ": a config file cannot include another (`config` key)");
      if (!opt.unregistered) {
        kept.push_back(opt);
        continue;
      }
      if (!any_subcommand_knows(opt.string_key, all))
        raise<ConfigError>(where, "--config ", path, ": unknown option '", opt.string_key,
                           "' (no subcommand accepts it; see caldera-dist <subcommand> --help)");
    }
    parsed.options = std::move(kept);
    try {
      po::store(parsed, out.values);
    } catch (const po::error& e) {
      rethrow_as_config_error(e, detail::concat(where, "--config ", path, ": "));
    }
  }
  try {
    po::notify(out.values);
  } catch (const po::error& e) {
    rethrow_as_config_error(e, where);
  }
  return out;
}

std::string subcommand_help(const Subcommand& sub) {
  std::ostringstream os;
  os << "usage: caldera-dist " << sub.name() << " [options]\n\n" << sub.summary() << "\n\n"
     << subcommand_options(sub) << "\n";
  return os.str();
}

std::string main_help(const std::vector<std::unique_ptr<Subcommand>>& all) {
  std::ostringstream os;
  os << "usage: caldera-dist <subcommand> [options]   (caldera-dist <subcommand> --help for its options)\n\n"
        "Compresses Llama-family models with CALDERA, QuIP#, SpQR, GPTQ, RTN, ASVD and SVD-LLM, on one\n"
        "machine or across a SLURM cluster (srun --mpi=pmix caldera-dist ...).\n\nSubcommands:\n";
  for (const auto& s : all) {
    os << "  " << s->name();
    for (size_t i = s->name().size(); i < 12; ++i) os << ' ';
    os << s->summary() << "\n";
  }
  os << "\nExit codes: 0 success, 1 runtime error, 2 bad options, 75 stopped at a safe point on\n"
        "SIGUSR1/SIGTERM (rerun the same command to resume).\n";
  return os.str();
}

io::JsonValue resolved_options_json(const po::variables_map& values) {
  io::JsonValue out = io::JsonValue::object();
  for (const auto& [key, v] : values) {
    if (key == "help") continue;
    const boost::any& a = v.value();
    io::JsonValue j;
    if (a.type() == typeid(std::string)) j = boost::any_cast<std::string>(a);
    else if (a.type() == typeid(int)) j = boost::any_cast<int>(a);
    else if (a.type() == typeid(int64_t)) j = boost::any_cast<int64_t>(a);
    else if (a.type() == typeid(uint64_t)) j = boost::any_cast<uint64_t>(a);
    else if (a.type() == typeid(double)) j = boost::any_cast<double>(a);
    else if (a.type() == typeid(bool)) j = boost::any_cast<bool>(a);
    else if (a.type() == typeid(std::vector<std::string>)) {
      j = io::JsonValue::array();
      for (const auto& s : boost::any_cast<std::vector<std::string>>(a)) j.push_back(s);
    } else {
      j = "<unprintable>";
    }
    out.set(key, std::move(j));
  }
  return out;
}

void CliContext::emit_json(const io::JsonValue& summary) const {
  if (!json || rank != 0) return;
  std::fputs((summary.dump() + "\n").c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace caldera::cli
