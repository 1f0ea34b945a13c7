// Internal to the planner (pipeline/plan.h): the per-phase models. Each function replays one
// phase's allocations for every rank of the target (algo::MemoryTally) and estimates its time.
#pragma once

#include <cstdint>

#include "pipeline/plan.h"

namespace caldera::pipeline::detail {

/// Calibration sequences of rank `rank` in phase 1: whole micro-batches of consecutive sequences,
/// balanced over ranks (Session::run_hessians).
int64_t rank_sequences(int64_t n_sequences, int64_t micro_batch, int world_size, int rank);

/// Phase 1 (pipeline/hessian_phase.cpp, model/forward.cpp, pipeline/hessian_reduce.cpp).
PhasePlan plan_hessians(const PlanInputs& inputs);
/// Phase 2 (pipeline/compress_phase.cpp around Method::estimate).
PhasePlan plan_compress(const PlanInputs& inputs);
/// Phase 3, compressed format, on rank 0 (pipeline/export.cpp).
PhasePlan plan_export(const PlanInputs& inputs);

}  // namespace caldera::pipeline::detail
