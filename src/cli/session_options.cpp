#include "cli/session_options.h"

#include <cstdlib>

#include "core/error.h"
#include "pipeline/progress.h"

namespace caldera::cli {

void add_session_options(po::options_description& o) {
  o.add_options()
    ("model", po::value<std::string>(), "Hugging Face model directory (config.json + safetensors)")
    ("calib", po::value<std::string>(), "calibration token file (little-endian uint32 ids, whole sequences of --seq-len)")
    ("workdir", po::value<std::string>(), "work directory: Hessians, unit files, checkpoints, logs and output/")
    ("seq-len", po::value<int64_t>()->default_value(512), "tokens per calibration sequence")
    ("max-calib-seqs", po::value<int64_t>()->default_value(0), "use only the first N calibration sequences (0: all)")
    ("micro-batch", po::value<int64_t>()->default_value(8), "sequences per forward call in phase 1 (bounds memory)")
    ("vocab-chunk", po::value<int64_t>()->default_value(8192), "lm_head rows per logits chunk when evaluating")
    ("seed", po::value<uint64_t>()->default_value(0), "seed of every random choice (Hadamard signs, sketches)")
    ("resume", po::value<std::string>()->default_value("auto"),
     "auto: continue a compatible earlier run, refuse an incompatible one | required: fail if there is nothing to "
     "resume | never: delete earlier results and start over")
    ("force-unlock", po::bool_switch()->default_value(false),
     "take over the workdir lock of another process (only when that process is gone)")
    ("snapshot-interval", po::value<double>()->default_value(300.0),
     "seconds between phase-1 activation snapshots (one is also written on SIGUSR1/SIGTERM)");
}

void add_method_options(po::options_description& o) {
  for (const auto& [name, help] : algo::method_option_names())
    o.add_options()(name.c_str(), po::value<std::string>(), help.c_str());
}

pipeline::SessionOptions session_options_from(const po::variables_map& v, const CliContext& context) {
  pipeline::SessionOptions s;
  if (v.count("workdir")) s.workdir = v["workdir"].as<std::string>();
  if (v.count("model")) s.model_dir = v["model"].as<std::string>();
  if (v.count("calib")) s.calib_path = v["calib"].as<std::string>();
  s.forward.seq_len = v["seq-len"].as<int64_t>();
  s.forward.micro_batch_seqs = v["micro-batch"].as<int64_t>();
  s.forward.vocab_chunk = v["vocab-chunk"].as<int64_t>();
  s.max_calib_seqs = v["max-calib-seqs"].as<int64_t>();
  s.seed = v["seed"].as<uint64_t>();
  s.resume = pipeline::parse_resume_mode(v["resume"].as<std::string>());
  s.force_unlock = v["force-unlock"].as<bool>();
  s.snapshot_interval_s = v["snapshot-interval"].as<double>();
  if (const char* job = std::getenv("SLURM_JOB_ID")) s.job_id = job;
  s.progress = pipeline::default_progress_style(context.rank == 0);
  s.validate();
  return s;
}

algo::MethodConfig method_config_from(const po::variables_map& v) {
  algo::MethodConfig config;
  algo::apply_method_option(config, "method", v.count("method") ? v["method"].as<std::string>() : "caldera");
  for (const auto& [name, help] : algo::method_option_names())
    if (name != "method" && v.count(name)) algo::apply_method_option(config, name, v[name].as<std::string>());
  config.validate();
  return config;
}

}  // namespace caldera::cli
