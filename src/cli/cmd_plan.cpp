// caldera-dist plan: validates model, calibration and configuration, prints per-rank GPU and host
// memory and an estimated time for every phase, and refuses (exit code 2) a run that cannot fit,
// saying what to change (DESIGN §1; pipeline/plan.h). It takes exactly the options of `run` (so a
// user plans with the arguments of the run) plus the target cluster's shape, and works from a
// model directory holding only config.json and without the calibration file (--calib-seqs), e.g.
//   caldera-dist plan --config jobs/llama-2-70b.ini --model jobs/models/llama-2-70b --calib-seqs 6144
// With --json the last stdout line is the whole table (pipeline::plan_to_json).
#include "cli/cmd_plan.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "cli/session_options.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hf_config.h"
#include "io/hf_model.h"
#include "io/json_value.h"
#include "io/token_file.h"
#include "linalg/backend.h"

namespace fs = std::filesystem;

namespace caldera::cli {
namespace {

constexpr double kGiB = 1073741824.0;

bool has_weights(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") return true;
  return false;
}

/// Bytes per weight from config.json's torch_dtype / dtype (float32: 4; anything else: 2).
int64_t config_weight_bytes(const fs::path& config_json) {
  const io::JsonValue j = io::JsonValue::read_file(config_json);
  for (const char* key : {"torch_dtype", "dtype"})
    if (const io::JsonValue* v = j.find(key); v != nullptr && v->is_string())
      return v->as_string() == "float32" ? 4 : (v->as_string() == "float64" ? 8 : 2);
  return 2;
}

int64_t gib_option(const po::variables_map& v, const char* name) {
  const double gb = v[name].as<double>();
  CALDERA_CHECK_AS(ConfigError, gb > 0, "--", name, " must be positive, got ", gb);
  return static_cast<int64_t>(gb * kGiB);
}

std::optional<pipeline::GpuModel> gpu_model_of(const std::string& description) {
  if (description.find("H200") != std::string::npos) return pipeline::GpuModel::kH200;
  if (description.find("H100") != std::string::npos) return pipeline::GpuModel::kH100;
  if (description.find("A100") != std::string::npos) return pipeline::GpuModel::kA100;
  return std::nullopt;
}

}  // namespace

void add_plan_target_options(po::options_description& o) {
  o.add_options()
    ("nodes", po::value<int>(), "plan: nodes of the target job (default: the nodes of the current job)")
    ("ranks-per-node", po::value<int>(), "plan: ranks (= GPUs) per node of the target job (default: the current job's)")
    ("gpu", po::value<std::string>(), "plan: GPU model of the target, h100 | a100 | h200 (throughput figures; implies "
     "--backend cuda; default: the visible GPU, else h100)")
    ("gpu-memory-gb", po::value<double>(), "plan: memory per GPU, GiB (default: the GPU model's)")
    ("host-memory-gb", po::value<double>(), "plan: memory per node, GiB (default: this machine's)")
    ("calib-seqs", po::value<int64_t>(), "plan: calibration sequences of --seq-len tokens, when the --calib file is "
     "not here (the file wins when it exists)");
}

PlanSetup plan_inputs_from(const po::variables_map& v, const CliContext& context) {
  PlanSetup setup;
  pipeline::PlanInputs& in = setup.inputs;
  std::string problems;
  auto problem = [&](auto&&... parts) { problems += "\n  " + caldera::detail::concat(parts...); };

  // Model: config.json always; the weights when they are there.
  if (!v.count("model")) raise<ConfigError>("--model is required (a directory with config.json)");
  const fs::path model_dir = v["model"].as<std::string>();
  if (!fs::exists(model_dir / "config.json"))
    raise<ConfigError>("--model ", model_dir.string(), ": no config.json there");
  if (has_weights(model_dir)) {
    const io::HfModel model = io::HfModel::open(model_dir);
    in.config = model.config();
    in.weight_bytes = dtype_size(model.storage_dtype());
  } else {
    in.config = io::read_hf_config(model_dir / "config.json");
    in.weight_bytes = config_weight_bytes(model_dir / "config.json");
    setup.notes.push_back("no weights in " + model_dir.string() + ": only config.json was checked");
  }
  in.forward.seq_len = v["seq-len"].as<int64_t>();
  in.forward.micro_batch_seqs = v["micro-batch"].as<int64_t>();
  in.forward.vocab_chunk = v["vocab-chunk"].as<int64_t>();
  try {
    in.forward.validate();
    in.config.check_sequence_length(in.forward.seq_len);
  } catch (const ConfigError& e) {
    problem(e.what());
  }
  if (in.config.max_position_embeddings > 0 && in.forward.seq_len > in.config.max_position_embeddings)
    setup.notes.push_back(caldera::detail::concat("--seq-len ", in.forward.seq_len, " exceeds the model's max_position_embeddings ",
                                                  in.config.max_position_embeddings, " (RoPE positions beyond its training)"));
  in.snapshot_interval_s = v["snapshot-interval"].as<double>();
  if (!(in.snapshot_interval_s >= 0)) problem("--snapshot-interval must be >= 0, got ", in.snapshot_interval_s);
  if (v.count("max-shard-gb")) in.max_shard_bytes = gib_option(v, "max-shard-gb");

  // Calibration: the token file when it exists, else --calib-seqs.
  const int64_t max_seqs = v["max-calib-seqs"].as<int64_t>();
  if (max_seqs < 0) problem("--max-calib-seqs must be >= 0, got ", max_seqs);
  const std::optional<int64_t> described =
      v.count("calib-seqs") ? std::optional<int64_t>(v["calib-seqs"].as<int64_t>()) : std::nullopt;
  if (described && *described <= 0) problem("--calib-seqs must be positive, got ", *described);
  const std::string calib = v.count("calib") ? v["calib"].as<std::string>() : std::string();
  if (!calib.empty() && fs::exists(calib) && problems.empty()) {
    const io::TokenFile tokens = io::TokenFile::open(calib, in.forward.seq_len, in.config.vocab_size,
                                                     max_seqs > 0 ? std::optional<int64_t>(max_seqs) : std::nullopt);
    in.calib_sequences = tokens.num_sequences();
    if (described && *described != tokens.file_sequences())
      setup.notes.push_back(caldera::detail::concat("--calib-seqs ", *described, " ignored: ", calib, " holds ",
                                                    tokens.file_sequences(), " sequences"));
  } else if (described) {
    in.calib_sequences = max_seqs > 0 ? std::min(*described, max_seqs) : *described;
    setup.notes.push_back(calib.empty() ? "calibration described by --calib-seqs (no --calib file given)"
                                        : "calibration described by --calib-seqs (" + calib + " is not here)");
  } else if (calib.empty()) {
    problem("give --calib FILE (a token file) or --calib-seqs N (the number of sequences of --seq-len tokens)");
  } else {
    problem("--calib ", calib, " does not exist; give --calib-seqs N to plan without it");
  }

  // Method.
  try {
    setup.method = algo::make_method(method_config_from(v));
    in.method = setup.method.get();
  } catch (const ConfigError& e) {
    problem(e.what());
  }

  // Target: backend and GPU, cluster shape, memory.
  pipeline::PlanTarget& t = in.target;
  const std::string backend = v["backend"].as<std::string>();
  std::optional<pipeline::GpuModel> gpu;
  if (v.count("gpu")) {
    try {
      gpu = pipeline::parse_gpu_model(v["gpu"].as<std::string>());
    } catch (const ConfigError& e) {
      problem(e.what());
    }
    if (backend == "cpu") problem("--gpu ", v["gpu"].as<std::string>(), " contradicts --backend cpu");
  }
  const bool cuda_visible = linalg::backend_available(linalg::BackendKind::kCuda);
  t.backend = (v.count("gpu") || backend == "cuda" || (backend == "auto" && cuda_visible)) ? linalg::BackendKind::kCuda
                                                                                          : linalg::BackendKind::kCpu;
  // Collective part: every rank takes part in these, whatever the options.
  const std::vector<std::string> hosts = context.comm->allgather_strings(context.comm->host_name());
  const int local_max = context.comm->allreduce_value<int64_t>(context.comm->local_size(), comm::ReduceOp::kMax);
  t.nodes = v.count("nodes") ? v["nodes"].as<int>() : static_cast<int>(std::set<std::string>(hosts.begin(), hosts.end()).size());
  t.ranks_per_node = v.count("ranks-per-node") ? v["ranks-per-node"].as<int>() : static_cast<int>(local_max);
  if (t.nodes < 1) problem("--nodes must be >= 1, got ", t.nodes);
  if (t.ranks_per_node < 1) problem("--ranks-per-node must be >= 1, got ", t.ranks_per_node);
  t.host_memory_bytes = v.count("host-memory-gb") ? gib_option(v, "host-memory-gb") : pipeline::machine_memory_bytes();
  if (t.backend == linalg::BackendKind::kCuda) {
    int64_t visible_bytes = 0;
    if (!gpu && cuda_visible) {  // the GPU here is the target's
      linalg::BackendOptions bo;
      bo.local_rank = context.comm->local_rank();
      const auto device = linalg::make_backend(linalg::BackendKind::kCuda, bo);
      gpu = gpu_model_of(device->description());
      visible_bytes = static_cast<int64_t>(device->memory_stats().device_total_bytes);
      if (!gpu) setup.notes.push_back("GPU '" + device->description() + "' has no throughput profile: h100 figures used");
    }
    const pipeline::GpuModel model = gpu.value_or(pipeline::GpuModel::kH100);
    t.gpu_name = std::string(pipeline::to_string(model));
    t.throughput = pipeline::gpu_profile(model);
    t.gpu_memory_bytes = v.count("gpu-memory-gb") ? gib_option(v, "gpu-memory-gb")
                         : visible_bytes > 0     ? visible_bytes
                                                 : pipeline::gpu_memory_bytes(model);
  } else {
    if (v.count("gpu-memory-gb")) setup.notes.push_back("--gpu-memory-gb ignored: the plan is for the CPU backend");
    linalg::BackendOptions bo;
    bo.cpu_threads = v["threads"].as<int>();
    const auto cpu = linalg::make_backend(linalg::BackendKind::kCpu, bo);
    t.throughput = pipeline::measure_cpu_profile(*cpu);
  }
  if (!problems.empty()) raise<ConfigError>("plan: invalid options:", problems);
  in.validate();
  return setup;
}

namespace {

class PlanCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "plan"; }
  std::string_view summary() const override {
    return "per-rank memory and time of every phase for a run's options; refuses a run that cannot fit";
  }
  void add_options(po::options_description& o) const override {
    add_session_options(o);
    add_method_options(o);
    // The options `run` adds (cmd_run.cpp), so that plan takes exactly run's arguments.
    o.add_options()
      ("eval-tokens", po::value<std::string>(), "run: token file for the perplexity before and after (not used by plan)")
      ("eval-max-seqs", po::value<int64_t>()->default_value(0), "run: evaluate on the first N sequences (not used by plan)")
      ("max-shard-gb", po::value<double>()->default_value(2.0), "largest safetensors shard of output/, GiB");
    add_plan_target_options(o);
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    const PlanSetup setup = plan_inputs_from(values, context);
    pipeline::Plan plan = pipeline::make_plan(setup.inputs);
    for (const std::string& n : setup.notes) plan.assumptions.insert(plan.assumptions.begin(), "note: " + n);
    const auto refusal = pipeline::plan_refusal(plan);
    if (context.rank == 0) {
      if (context.json) {
        context.emit_json(pipeline::plan_to_json(plan));
      } else {
        std::fputs(pipeline::plan_to_text(plan).c_str(), stdout);
        std::fflush(stdout);
      }
      if (refusal) std::fprintf(stderr, "caldera-dist plan: %s\n", refusal->c_str());
    }
    return refusal ? kExitUsage : kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_plan_command() { return std::make_unique<PlanCommand>(); }

}  // namespace caldera::cli
