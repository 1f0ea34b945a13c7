#include <gtest/gtest.h>

#include <fstream>

#include "cli/app.h"
#include "cli/options.h"
#include "comm/self_communicator.h"
#include "core/error.h"
#include "test_util.h"

namespace caldera::cli {
namespace {

// A subcommand used only to exercise the framework.
class Probe : public Subcommand {
 public:
  std::string_view name() const override { return "probe"; }
  std::string_view summary() const override { return "test subcommand"; }
  void add_options(po::options_description& o) const override {
    o.add_options()("rank", po::value<int>()->default_value(64), "rank")("method", po::value<std::string>(), "m");
  }
  int run(const po::variables_map& v, CliContext& ctx) const override {
    last_rank = v["rank"].as<int>();
    io::JsonValue j = io::JsonValue::object();
    j.set("rank", last_rank);
    ctx.emit_json(j);
    return 0;
  }
  static inline int last_rank = 0;
};
class Other : public Subcommand {
 public:
  std::string_view name() const override { return "other"; }
  std::string_view summary() const override { return "x"; }
  void add_options(po::options_description& o) const override { o.add_options()("seq-len", po::value<int>(), "s"); }
  int run(const po::variables_map&, CliContext&) const override { return 0; }
};

std::vector<std::unique_ptr<Subcommand>> subs() {
  std::vector<std::unique_ptr<Subcommand>> v;
  v.push_back(std::make_unique<Probe>());
  v.push_back(std::make_unique<Other>());
  return v;
}

std::string write_file(const std::string& name, const std::string& text) {
  static const auto dir = test::make_temp_dir("cli-options");
  const auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(Options, CommandLineOverridesLaterFileOverridesEarlierFileOverridesDefault) {
  auto all = subs();
  const auto a = write_file("a.ini", "# preset\nrank = 16\nmethod = rtn\n");
  const auto b = write_file("b.ini", "rank = 32\n");
  auto p = parse_command(*all[0], {"--config", a, "--config", b}, all);
  EXPECT_EQ(p.values["rank"].as<int>(), 32);
  EXPECT_EQ(p.values["method"].as<std::string>(), "rtn");
  p = parse_command(*all[0], {"--config", a, "--config", b, "--rank", "48"}, all);
  EXPECT_EQ(p.values["rank"].as<int>(), 48);
  p = parse_command(*all[0], {}, all);
  EXPECT_EQ(p.values["rank"].as<int>(), 64);
}

TEST(Options, UnknownKeyInIniIsAnErrorNamingFileAndKey) {
  auto all = subs();
  const auto bad = write_file("bad.ini", "rnak = 16\n");
  try {
    parse_command(*all[0], {"--config", bad}, all);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rnak"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.ini"), std::string::npos) << e.what();
  }
  // A key another subcommand knows is ignored.
  const auto shared = write_file("shared.ini", "seq-len = 512\nrank = 8\n");
  EXPECT_EQ(parse_command(*all[0], {"--config", shared}, all).values["rank"].as<int>(), 8);
}

TEST(Options, BadValuesAndUnknownFlagsAreConfigErrors) {
  auto all = subs();
  EXPECT_THROW(parse_command(*all[0], {"--rank", "many"}, all), ConfigError);
  EXPECT_THROW(parse_command(*all[0], {"--frobnicate"}, all), ConfigError);
  EXPECT_THROW(parse_command(*all[0], {"--config", "/nonexistent/x.ini"}, all), ConfigError);
}

TEST(App, DispatchesHelpAndUsageErrors) {
  auto all = subs();
  comm::SelfCommunicator self;
  CliContext ctx;
  ctx.comm = &self;
  EXPECT_EQ(run_app({"probe", "--rank", "5"}, ctx, all), kExitOk);
  EXPECT_EQ(Probe::last_rank, 5);
  EXPECT_EQ(run_app({"nosuch"}, ctx, all), kExitUsage);
  EXPECT_EQ(run_app({"probe", "--rank", "x"}, ctx, all), kExitUsage);
  EXPECT_EQ(run_app({"probe", "--help"}, ctx, all), kExitOk);
  EXPECT_EQ(run_app({}, ctx, all), kExitUsage);
  const auto json = resolved_options_json(parse_command(*all[0], {"--rank", "7"}, all).values);
  EXPECT_EQ(json.at("rank").as_int(), 7);
  EXPECT_EQ(json.at("backend").as_string(), "auto");
}

}  // namespace
}  // namespace caldera::cli
