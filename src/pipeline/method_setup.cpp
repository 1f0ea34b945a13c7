#include "pipeline/method_setup.h"

#include "io/hessian_file.h"
#include "pipeline/compress_phase.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/stop_signal.h"

namespace caldera::pipeline {

namespace {

/// The rank allocation of config (phase 1 finished) and the method built on it. Throws
/// algo::StopRequested when a stop is requested during the sensitivity pass.
PreparedMethod allocate_ranks_and_make(Session& session, const algo::MethodConfig& config) {
  PreparedMethod out;
  const Workdir& workdir = session.workdir();
  const int64_t seq_len = session.options().forward.seq_len;
  const InputStatsProvider stats = [&workdir, seq_len](int64_t layer, model::HessianInput input) {
    return to_input_stats(io::read_hessian_input(workdir.hessian_file(static_cast<int>(layer)), input), seq_len);
  };
  const HfWeightSource source(io::HfModel::open(session.options().model_dir));
  SensitivityOptions options;
  options.forward = session.options().forward;
  options.dir = workdir.root() / "sensitivity";
  options.data_fingerprint = session.model().fingerprint().digest() + ":" + session.calibration().sha256();
  StopCoordinator stop(workdir.state_dir() / "STOP");
  options.stop_requested = [&stop] { return stop.requested(); };
  const auto all = session.calibration().sequences();
  LowRankPlan plan = allocate_low_rank_ranks(session.backend(), session.world(), source,
                                             std::span<const uint32_t>(all.data, static_cast<size_t>(all.size())),
                                             stats, config.low_rank, options);
  out.method = algo::make_method(config, plan.allocation);
  out.low_rank = std::move(plan);
  return out;
}

}  // namespace

PreparedMethod prepare_method_before_phase1(const algo::MethodConfig& config) {
  PreparedMethod prepared;
  if (!config.needs_rank_allocation()) prepared.method = algo::make_method(config);
  return prepared;
}

bool finish_method_after_phase1(Session& session, const algo::MethodConfig& config, PreparedMethod& prepared) {
  if (prepared.method) return true;
  try {
    prepared = allocate_ranks_and_make(session, config);
  } catch (const algo::StopRequested&) {
    return false;
  }
  session.attach_method(*prepared.method);
  return true;
}

}  // namespace caldera::pipeline
