// caldera-dist run: phase 1 -> phase 2 -> phase 3, skipping whatever is already done (DESIGN §1).
// Killed, timed out or stopped by SIGUSR1/SIGTERM (exit code 75), it continues where it stopped
// when started again with the same arguments, and gives the same output, byte for byte.
// With --eval-tokens the perplexity of the original and of the compressed model is measured after
// the export. With --json the last stdout line is {"method", "avg_bits", "mean_rel_error", "outlier_rate",
// "ppl_before", "ppl_after" (with --eval-tokens), "output", "units", "efficiency", "busy_s",
// "makespan_s", "seconds": {"hessians", "compress", "export", "eval", "total"}, "world_size"}.
#include <cstdio>
#include <optional>

#include "cli/backend_choice.h"
#include "cli/run_summary.h"
#include "cli/session_options.h"
#include "cli/subcommand.h"
#include "pipeline/method_setup.h"
#include "comm/partition.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/token_file.h"
#include "pipeline/compressed_weight_source.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/perplexity.h"

namespace caldera::cli {
namespace {

double perplexity(linalg::Backend& backend, comm::Communicator& world, const model::WeightSource& source,
                  const io::TokenFile& tokens, const model::ForwardOptions& forward) {
  const comm::IndexRange mine = comm::partition_range(tokens.num_sequences(), world.size(), world.rank());
  const auto slice = tokens.slice(mine.begin, mine.end);
  pipeline::PerplexityOptions po;
  po.forward = forward;
  return pipeline::evaluate_perplexity(backend, world, source,
                                       std::span<const uint32_t>(slice.data, static_cast<size_t>(slice.size())), po)
      .ppl;
}

class RunCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "run"; }
  std::string_view summary() const override {
    return "hessians -> compress -> export, resuming whatever is already done";
  }
  void add_options(po::options_description& o) const override {
    add_session_options(o);
    add_method_options(o);
    o.add_options()
      ("eval-tokens", po::value<std::string>(), "token file for the perplexity before and after (optional)")
      ("eval-max-seqs", po::value<int64_t>()->default_value(0), "evaluate on the first N sequences (0: all)")
      ("max-shard-gb", po::value<double>()->default_value(2.0), "largest safetensors shard of output/, GiB");
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    Stopwatch total;
    const pipeline::SessionOptions options = session_options_from(values, context);
    const algo::MethodConfig method_config = method_config_from(values);
    // Built now (so bad parameters fail before phase 1) unless it depends on phase 1.
    pipeline::PreparedMethod prepared = pipeline::prepare_method_before_phase1(method_config);
    const double shard_gb = values["max-shard-gb"].as<double>();
    CALDERA_CHECK_AS(ConfigError, shard_gb > 0, "--max-shard-gb must be positive, got ", shard_gb);
    const int64_t eval_max = values["eval-max-seqs"].as<int64_t>();
    CALDERA_CHECK_AS(ConfigError, eval_max >= 0, "--eval-max-seqs must be >= 0, got ", eval_max);
    auto backend = make_backend_from_options(values, context);
    comm::Communicator& world = *context.comm;
    pipeline::Session session(world, *backend, options, prepared.method.get());
    std::optional<io::TokenFile> eval_tokens;
    if (values.count("eval-tokens"))
      eval_tokens.emplace(io::TokenFile::open(values["eval-tokens"].as<std::string>(), options.forward.seq_len,
                                              session.model().config().vocab_size,
                                              eval_max > 0 ? std::optional<int64_t>(eval_max) : std::nullopt));

    io::JsonValue seconds = io::JsonValue::object();
    Stopwatch phase;
    if (!session.run_hessians()) return kExitRequeue;
    seconds.set("hessians", phase.elapsed_s());
    phase.reset();
    if (!prepared.method) {  // rank allocation of a low-rank method
      if (!pipeline::finish_method_after_phase1(session, method_config, prepared)) return kExitRequeue;
      seconds.set("rank_allocation", phase.elapsed_s());
      phase.reset();
    }
    const algo::Method* method = prepared.method.get();
    pipeline::CompressPhaseReport compress;
    if (!session.run_compress(&compress)) return kExitRequeue;
    seconds.set("compress", phase.elapsed_s());
    phase.reset();
    pipeline::ExportOptions eo;
    eo.max_shard_bytes = static_cast<int64_t>(shard_gb * 1073741824.0);
    pipeline::ExportReport exported = session.run_export(eo);
    seconds.set("export", phase.elapsed_s());
    // Rank 0 wrote the output; every rank needs its figures.
    std::vector<double> figures = {exported.avg_bits, exported.mean_rel_error, exported.outlier_rate};
    world.broadcast(std::span<std::byte>(reinterpret_cast<std::byte*>(figures.data()), sizeof(double) * figures.size()), 0);

    io::JsonValue summary = io::JsonValue::object();
    summary.set("method", method->name());
    summary.set("avg_bits", figures[0]);
    summary.set("mean_rel_error", figures[1]);
    summary.set("outlier_rate", figures[2]);
    if (prepared.low_rank) {
      summary.set("param_ratio", prepared.low_rank->param_ratio);
      if (method_config.low_rank.kv_search()) summary.set("kv_cache_ratio", prepared.low_rank->kv_cache_ratio);
    }
    if (eval_tokens) {
      phase.reset();
      const pipeline::HfWeightSource original(options.model_dir);
      const double before = perplexity(*backend, world, original, *eval_tokens, options.forward);
      const auto compressed = pipeline::open_weight_source(session.workdir().output_dir(), *backend);
      const double after = perplexity(*backend, world, *compressed, *eval_tokens, options.forward);
      summary.set("ppl_before", before);
      summary.set("ppl_after", after);
      seconds.set("eval", phase.elapsed_s());
      if (!context.json && context.rank == 0)
        std::printf("perplexity on %lld sequences: %.4f before, %.4f after compression\n",
                    static_cast<long long>(eval_tokens->num_sequences()), before, after);
    }
    summary.set("output", session.workdir().output_dir().string());
    const io::JsonValue c = compress_summary(compress);
    for (const char* key : {"units", "efficiency", "busy_s", "makespan_s"}) summary.set(key, c.at(key));
    seconds.set("total", total.elapsed_s());
    summary.set("seconds", seconds);
    summary.set("world_size", context.world_size);
    if (!context.json && context.rank == 0)
      std::printf("run: %s, %.4f bits per weight, mean relative error %.4f, output in %s\n", method->name().c_str(),
                  figures[0], figures[1], session.workdir().output_dir().c_str());
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace caldera::cli
