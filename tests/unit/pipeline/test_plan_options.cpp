// `caldera-dist plan` options: plan accepts every option of `run` (a user plans with the run's
// arguments), the jobs/ recipes parse for both plan and run, and plan_inputs_from validates model,
// calibration and options (config.json alone; the token file or --calib-seqs) and reads the target.
#include <gtest/gtest.h>

#include "cli/cmd_plan.h"
#include "cli/options.h"
#include "comm/self_communicator.h"
#include "test_util.h"

namespace caldera::cli {
namespace {

std::filesystem::path repo_root() { return test::data_dir().parent_path().parent_path(); }

const Subcommand& find(const std::vector<std::unique_ptr<Subcommand>>& all, std::string_view name) {
  for (const auto& s : all)
    if (s->name() == name) return *s;
  throw std::runtime_error("no subcommand " + std::string(name));
}

struct Cli {
  std::vector<std::unique_ptr<Subcommand>> all = make_subcommands();
  comm::SelfCommunicator self;
  CliContext context;
  Cli() { context.comm = &self; }
  PlanSetup setup(std::vector<std::string> args) {
    const ParsedCommand parsed = parse_command(find(all, "plan"), args, all);
    return plan_inputs_from(parsed.values, context);
  }
};

TEST(PlanOptions, PlanAcceptsEveryOptionOfRun) {
  Cli cli;
  const auto run = subcommand_options(find(cli.all, "run"));
  const auto plan = subcommand_options(find(cli.all, "plan"));
  ASSERT_FALSE(run.options().empty());
  for (const auto& opt : run.options())
    EXPECT_NE(plan.find_nothrow(opt->long_name(), false), nullptr) << "plan lacks --" << opt->long_name();
}

TEST(PlanOptions, RecipesParseForPlanAndRun) {
  Cli cli;
  for (const char* recipe : {"jobs/llama-2-7b.ini", "jobs/llama-2-70b.ini", "jobs/llama-3-8b.ini"}) {
    SCOPED_TRACE(recipe);
    const std::string path = (repo_root() / recipe).string();
    const ParsedCommand plan = parse_command(find(cli.all, "plan"), {"--config", path}, cli.all);
    EXPECT_EQ(plan.values["seq-len"].as<int64_t>(), 4096);
    EXPECT_EQ(plan.values["rank"].as<std::string>(), "256");
    EXPECT_EQ(plan.values["gpu"].as<std::string>(), "h100");
    const ParsedCommand run = parse_command(find(cli.all, "run"), {"--config", path}, cli.all);
    EXPECT_EQ(run.values["iters"].as<std::string>(), "20");
    EXPECT_EQ(run.values.count("nodes"), 0u);  // plan-only keys are ignored by run
  }
}

TEST(PlanOptions, SeventyBRecipeFromConfigOnly) {
  Cli cli;
  const std::string model = (repo_root() / "jobs/models/llama-2-70b").string();
  const PlanSetup s = cli.setup({"--config", (repo_root() / "jobs/llama-2-70b.ini").string(), "--model", model});
  EXPECT_EQ(s.inputs.config.num_hidden_layers, 80);
  EXPECT_EQ(s.inputs.calib_sequences, 6144);
  EXPECT_EQ(s.inputs.forward.seq_len, 4096);
  EXPECT_EQ(s.inputs.target.backend, linalg::BackendKind::kCuda);
  EXPECT_EQ(s.inputs.target.world_size(), 64);
  EXPECT_EQ(s.inputs.target.gpu_memory_bytes, pipeline::gpu_memory_bytes(pipeline::GpuModel::kH100));
  EXPECT_EQ(s.inputs.target.host_memory_bytes, int64_t{2048} << 30);
  EXPECT_EQ(s.inputs.weight_bytes, 2);  // float16 in config.json
  ASSERT_EQ(s.notes.size(), 2u);
  EXPECT_NE(s.notes[0].find("only config.json"), std::string::npos);
  EXPECT_NE(s.notes[1].find("--calib-seqs"), std::string::npos);
  EXPECT_FALSE(pipeline::plan_refusal(pipeline::make_plan(s.inputs)).has_value());
  // The same recipe on one node cannot run.
  const PlanSetup one = cli.setup({"--config", (repo_root() / "jobs/llama-2-70b.ini").string(), "--model", model,
                                   "--nodes", "1"});
  EXPECT_TRUE(pipeline::plan_refusal(pipeline::make_plan(one.inputs)).has_value());
}

TEST(PlanOptions, CalibrationFileWinsAndIsValidated) {
  Cli cli;
  const std::string model = test::tiny_model_dir().string();
  const std::string calib = (test::data_dir() / "calib.u32").string();
  const PlanSetup s = cli.setup({"--model", model, "--calib", calib, "--seq-len", "512", "--max-calib-seqs", "16",
                                 "--calib-seqs", "99", "--backend", "cpu", "--rank", "32"});
  EXPECT_EQ(s.inputs.calib_sequences, 16);
  EXPECT_EQ(s.inputs.target.backend, linalg::BackendKind::kCpu);
  EXPECT_GT(s.inputs.target.throughput.fp32_flops, 0.0);
  bool noted = false;
  for (const auto& n : s.notes) noted |= n.find("--calib-seqs 99 ignored") != std::string::npos;
  EXPECT_TRUE(noted);
  // The token file must hold whole sequences of --seq-len (131072 uint32 = 256 x 512, not x 500).
  EXPECT_THROW(cli.setup({"--model", model, "--calib", calib, "--seq-len", "500", "--backend", "cpu"}), Error);
}

TEST(PlanOptions, SequencesLongerThanTheModelsContextAreNoted) {
  Cli cli;
  const std::string model = (repo_root() / "jobs/models/llama-2-7b").string();
  const PlanSetup s = cli.setup({"--model", model, "--calib-seqs", "8", "--gpu", "h100", "--seq-len", "8192"});
  bool noted = false;
  for (const auto& n : s.notes) noted |= n.find("max_position_embeddings 4096") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(PlanOptions, MissingOrBadInputsAreNamed) {
  Cli cli;
  const std::string model = (repo_root() / "jobs/models/llama-2-7b").string();
  auto message = [&](std::vector<std::string> args) -> std::string {
    try {
      (void)cli.setup(std::move(args));
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message({"--model", model, "--gpu", "h100"}).find("--calib-seqs N"), std::string::npos);
  EXPECT_NE(message({"--model", model, "--calib", "/nonexistent.u32", "--gpu", "h100"}).find("does not exist"),
            std::string::npos);
  EXPECT_NE(message({"--model", model, "--calib-seqs", "8", "--gpu", "b200"}).find("--gpu"), std::string::npos);
  EXPECT_NE(message({"--model", model, "--calib-seqs", "8", "--gpu", "h100", "--nodes", "0"}).find("--nodes"),
            std::string::npos);
  EXPECT_NE(message({"--model", model, "--calib-seqs", "8", "--gpu", "h100", "--seq-len", "0"}).find("--seq-len"),
            std::string::npos);
  EXPECT_NE(message({"--calib-seqs", "8"}).find("--model"), std::string::npos);
}

}  // namespace
}  // namespace caldera::cli
