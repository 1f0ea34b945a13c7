// caldera-dist hessians: phase 1, the calibration Hessians of every decoder layer
// (pipeline/hessian_phase.h), data-parallel over the job's ranks; files in <workdir>/hessians/.
// With --json the last stdout line is {"layers_collected":…, "layers_reused":…, "sequences":…,
// "tokens":…, "seq_len":…, "workdir":…, "backend":…, "world_size":…, "seconds":…}.
#include <cstdint>
#include <optional>
#include <string>

#include "cli/backend_choice.h"
#include "cli/subcommand.h"
#include "comm/partition.h"
#include "core/error.h"
#include "io/token_file.h"
#include "pipeline/hessian_phase.h"
#include "pipeline/hf_weight_source.h"

namespace caldera::cli {
namespace {

class HessiansCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "hessians"; }
  std::string_view summary() const override { return "phase 1: calibration Hessians of every decoder layer"; }

  void add_options(po::options_description& o) const override {
    o.add_options()
      ("model", po::value<std::string>(), "Hugging Face model directory (config.json + safetensors)")
      ("calib", po::value<std::string>(), "calibration token file (uint32 ids, whole sequences of --seq-len)")
      ("workdir", po::value<std::string>(), "work directory; Hessians go to <workdir>/hessians/layer_NNN.h5")
      ("seq-len", po::value<int64_t>()->default_value(512), "tokens per calibration sequence")
      ("max-seqs", po::value<int64_t>()->default_value(0), "use only the first N calibration sequences (0: all)")
      ("micro-batch", po::value<int64_t>()->default_value(8), "sequences per forward call (bounds memory)");
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    for (const char* required : {"model", "calib", "workdir"})
      CALDERA_CHECK_AS(ConfigError, values.count(required), "--", required, " is required");
    const std::string model_dir = values["model"].as<std::string>();
    const std::string calib_path = values["calib"].as<std::string>();
    pipeline::HessianPhaseOptions options;
    options.workdir = values["workdir"].as<std::string>();
    options.forward.seq_len = values["seq-len"].as<int64_t>();
    options.forward.micro_batch_seqs = values["micro-batch"].as<int64_t>();
    options.validate();
    const int64_t max_seqs = values["max-seqs"].as<int64_t>();
    CALDERA_CHECK_AS(ConfigError, max_seqs >= 0, "--max-seqs must be >= 0, got ", max_seqs);

    comm::Communicator& world = *context.comm;
    auto backend = make_backend_from_options(values, context);
    const pipeline::HfWeightSource source(model_dir);
    const auto calib = io::TokenFile::open(calib_path, options.forward.seq_len, source.config().vocab_size,
                                           max_seqs > 0 ? std::optional<int64_t>(max_seqs) : std::nullopt);
    options.model_fingerprint = source.model().fingerprint().digest();
    options.calibration_sha256 = calib.sha256();
    const comm::IndexRange mine = comm::partition_range(calib.num_sequences(), world.size(), world.rank());
    const auto slice = calib.slice(mine.begin, mine.end);
    const pipeline::HessianPhaseReport r = pipeline::run_hessian_phase(
        *backend, world, source, std::span<const uint32_t>(slice.data, static_cast<size_t>(slice.size())), options);

    io::JsonValue summary = io::JsonValue::object();
    summary.set("layers_collected", r.layers_collected);
    summary.set("layers_reused", r.layers_reused);
    summary.set("sequences", r.sequences);
    summary.set("tokens", r.tokens);
    summary.set("seq_len", options.forward.seq_len);
    summary.set("workdir", options.workdir.string());
    summary.set("backend", linalg::to_string(backend->kind()));
    summary.set("world_size", world.size());
    summary.set("seconds", r.seconds);
    if (!context.json && world.rank() == 0)
      std::printf("hessians: %lld layers collected, %lld reused, %lld tokens, %.1f s\n",
                  static_cast<long long>(r.layers_collected), static_cast<long long>(r.layers_reused),
                  static_cast<long long>(r.tokens), r.seconds);
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_hessians_command() { return std::make_unique<HessiansCommand>(); }

}  // namespace caldera::cli
