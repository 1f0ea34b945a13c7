// caldera-dist export: phase 3 — <workdir>/output/ (compressed format), or with --format dense|peft
// --out DIR a plain Hugging Face model (bf16) or base weights + a PEFT LoRA adapter holding L·R.
// Needs every unit finished. Runs on rank 0 (the others wait). With --json the last stdout line is
// {"output", "avg_bits", "mean_rel_error", "outlier_rate", "units", "files", "format"}.
#include <cstdio>

#include "cli/backend_choice.h"
#include "cli/run_summary.h"
#include "cli/session_options.h"
#include "cli/subcommand.h"
#include "pipeline/method_setup.h"

namespace caldera::cli {
namespace {

class ExportCommand final : public Subcommand {
 public:
  std::string_view name() const override { return "export"; }
  std::string_view summary() const override {
    return "phase 3: write output/ (compressed), or a dense HF model / PEFT adapter (--format, --out)";
  }
  void add_options(po::options_description& o) const override {
    add_session_options(o);
    add_method_options(o);
    o.add_options()
      ("format", po::value<std::string>()->default_value("compressed"),
       "compressed (<workdir>/output) | dense (bf16 HF model in --out) | peft (HF model without L·R + adapter/ in --out)")
      ("out", po::value<std::string>(), "output directory for --format dense|peft")
      ("max-shard-gb", po::value<double>()->default_value(2.0), "largest safetensors shard, GiB");
  }

  int run(const po::variables_map& values, CliContext& context) const override {
    const pipeline::SessionOptions options = session_options_from(values, context);
    const algo::MethodConfig method_config = method_config_from(values);
    pipeline::PreparedMethod prepared = pipeline::prepare_method_before_phase1(method_config);
    pipeline::ExportOptions eo;
    eo.format = pipeline::parse_export_format(values["format"].as<std::string>());
    if (values.count("out")) eo.out_dir = values["out"].as<std::string>();
    const double shard_gb = values["max-shard-gb"].as<double>();
    CALDERA_CHECK_AS(ConfigError, shard_gb > 0, "--max-shard-gb must be positive, got ", shard_gb);
    eo.max_shard_bytes = static_cast<int64_t>(shard_gb * 1073741824.0);
    auto backend = make_backend_from_options(values, context);
    pipeline::Session session(*context.comm, *backend, options, prepared.method.get());
    // Rank allocation of a low-rank method (needs phase 1).
    if (!pipeline::finish_method_after_phase1(session, method_config, prepared)) return kExitRequeue;
    const pipeline::ExportReport r = session.run_export(eo);
    io::JsonValue summary = export_summary(r);
    summary.set("format", values["format"].as<std::string>());
    if (!context.json && context.rank == 0)
      std::printf("export: %s (%lld units, %.4f bits per weight, mean relative error %.4f)\n", r.dir.c_str(),
                  static_cast<long long>(r.units), r.avg_bits, r.mean_rel_error);
    context.emit_json(summary);
    return kExitOk;
  }
};

}  // namespace

std::unique_ptr<Subcommand> make_export_command() { return std::make_unique<ExportCommand>(); }

}  // namespace caldera::cli
