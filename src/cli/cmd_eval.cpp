// caldera-dist eval: perplexity of a model on a token file (pipeline/perplexity.h), data-parallel
// over the job's ranks. With --json the last stdout line is
//   {"ppl":…, "nll":…, "tokens":…, "seqs":…, "seq_len":…, "model":…, "token_file":…,
//    "backend":…, "world_size":…, "seconds":…}
#include <cstdint>
#include <optional>
#include <string>

#include "cli/backend_choice.h"
#include "cli/subcommand.h"
#include "comm/partition.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/token_file.h"
#include "pipeline/compressed_weight_source.h"
#include "pipeline/perplexity.h"

namespace caldera::cli {
namespace {

class EvalCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "eval"; }
  std::string_view summary() const override { return "perplexity of a model on a token file"; }

  void add_options(po::options_description& o) const override {
    o.add_options()
      ("model", po::value<std::string>(), "model directory: Hugging Face (config.json + safetensors), or a caldera-dist output/ (compressed) or dense export")
      ("tokens", po::value<std::string>(), "token file: little-endian uint32 ids, whole sequences of --seq-len")
      ("seq-len", po::value<int64_t>()->default_value(512), "tokens per sequence (each sequence is evaluated alone)")
      ("max-seqs", po::value<int64_t>()->default_value(0), "evaluate only the first N sequences (0: all)")
      ("micro-batch", po::value<int64_t>()->default_value(8), "sequences per forward call (bounds memory)")
      ("vocab-chunk", po::value<int64_t>()->default_value(8192), "lm_head rows per logits chunk");
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    CALDERA_CHECK_AS(ConfigError, values.count("model"), "--model is required");
    CALDERA_CHECK_AS(ConfigError, values.count("tokens"), "--tokens is required");
    const std::string model_dir = values["model"].as<std::string>();
    const std::string token_path = values["tokens"].as<std::string>();
    pipeline::PerplexityOptions options;
    options.forward.seq_len = values["seq-len"].as<int64_t>();
    options.forward.micro_batch_seqs = values["micro-batch"].as<int64_t>();
    options.forward.vocab_chunk = values["vocab-chunk"].as<int64_t>();
    options.forward.validate();
    const int64_t max_seqs = values["max-seqs"].as<int64_t>();
    CALDERA_CHECK_AS(ConfigError, max_seqs >= 0, "--max-seqs must be >= 0, got ", max_seqs);

    Stopwatch watch;
    comm::Communicator& world = *context.comm;
    auto backend = make_backend_from_options(values, context);
    const auto source_ptr = pipeline::open_weight_source(model_dir, *backend);
    const model::WeightSource& source = *source_ptr;
    const auto tokens = io::TokenFile::open(token_path, options.forward.seq_len, source.config().vocab_size,
                                            max_seqs > 0 ? std::optional<int64_t>(max_seqs) : std::nullopt);
    const comm::IndexRange mine = comm::partition_range(tokens.num_sequences(), world.size(), world.rank());
    const auto slice = tokens.slice(mine.begin, mine.end);
    const pipeline::PerplexityResult r = pipeline::evaluate_perplexity(
        *backend, world, source, std::span<const uint32_t>(slice.data, static_cast<size_t>(slice.size())), options);

    io::JsonValue summary = io::JsonValue::object();
    summary.set("ppl", r.ppl);
    summary.set("nll", r.nll);
    summary.set("tokens", r.tokens);
    summary.set("seqs", r.seqs);
    summary.set("seq_len", options.forward.seq_len);
    summary.set("model", model_dir);
    summary.set("token_file", token_path);
    summary.set("backend", linalg::to_string(backend->kind()));
    summary.set("world_size", world.size());
    summary.set("seconds", watch.elapsed_s());
    if (!context.json && world.rank() == 0)
      std::printf("ppl %.6f  (mean NLL %.6f over %lld tokens of %lld sequences)\n", r.ppl, r.nll,
                  static_cast<long long>(r.tokens), static_cast<long long>(r.seqs));
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_eval_command() { return std::make_unique<EvalCommand>(); }

}  // namespace caldera::cli
