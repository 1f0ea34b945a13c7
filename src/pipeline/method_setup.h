// The method of phases 2 and 3, built from its configuration. For the low-rank methods (ASVD,
// SVD-LLM, SVD) with a sensitivity rank search or a KV-cache target, this is where the pipeline
// runs the rank-allocation step of pipeline/sensitivity.h: after phase 1 (it reads the Hessian
// files), before phase 2; its sensitivity tables are resumable files under <workdir>/sensitivity.
#pragma once

#include <memory>
#include <optional>

#include "algo/method_factory.h"
#include "pipeline/sensitivity.h"
#include "pipeline/session.h"

namespace caldera::pipeline {

struct PreparedMethod {
  std::unique_ptr<algo::Method> method;
  /// The low-rank plan when an allocation step ran (achieved param ratio, KV-cache ratio).
  std::optional<LowRankPlan> low_rank;
};

/// The start of every subcommand that runs phases: the method built at once (so bad parameters
/// fail before any work) unless it depends on phase 1, in which case `method` stays null until
/// finish_method_after_phase1.
PreparedMethod prepare_method_before_phase1(const algo::MethodConfig& config);

/// Collective; phase 1 must be finished. When `prepared` has no method yet, runs the rank
/// allocation (sensitivity tables under <workdir>/sensitivity), builds the method and attaches it
/// to the session. Returns false when a stop was requested during the sensitivity pass (its
/// finished layers are on disk; the caller exits with the requeue code); true otherwise (also
/// when nothing ran).
bool finish_method_after_phase1(Session& session, const algo::MethodConfig& config, PreparedMethod& prepared);

}  // namespace caldera::pipeline
