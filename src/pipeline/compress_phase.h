// Phase 2 (DESIGN §2, §4): every linear matrix of every layer is compressed by the chosen method.
//
// Units are scheduled over ranks largest first by the method's cost estimate (a deterministic LPT
// schedule, comm::schedule_largest_first); each rank skips units whose task file verifies,
// otherwise loads W (mmap) and its input's Hessian (HDF5), runs the method with a checkpoint store
// for mid-unit state and publishes tasks/<unit>.h5. Results are independent of the world size: the
// RNG stream of a unit is keyed by (seed, layer, matrix) only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "algo/method.h"
#include "comm/communicator.h"
#include "io/hessian_file.h"
#include "io/hf_model.h"
#include "linalg/backend.h"
#include "pipeline/progress.h"
#include "pipeline/workdir.h"

namespace caldera::pipeline {

struct CompressPhaseOptions {
  uint64_t seed = 0;
  /// What every Hessian file must have been computed from (its layer field is ignored).
  io::HessianFileMeta hessian_meta;
  ProgressStyle progress = ProgressStyle::kOff;
};

struct CompressPhaseReport {
  int64_t units_total = 0;
  int64_t units_computed = 0;  ///< over all ranks
  int64_t units_reused = 0;    ///< already finished (verified task files)
  bool stopped = false;        ///< a stop was requested: the run must exit 75
  std::vector<double> busy_s;  ///< per rank, seconds spent compressing
  double makespan_s = 0;       ///< max of busy_s
  double efficiency = 1;       ///< sum(busy_s) / (ranks * makespan_s)
  double predicted_efficiency = 1;  ///< of the schedule's cost estimates
};

/// Runs phase 2 on every rank (collective). Throws on errors; a stop request returns with
/// `stopped` set on every rank after the ranks have reached a safe point.
CompressPhaseReport run_compress_phase(comm::Communicator& comm, linalg::Backend& backend, const io::HfModel& model,
                                       const Workdir& workdir, const algo::Method& method,
                                       const CompressPhaseOptions& options, JsonlLog* log);

/// Reads one linear input's statistics from <root>/hessians/layer_NNN.h5 (phase 1: root = the
/// workdir; the update pass: <workdir>/update), checking the file against `meta` (its layer field
/// is ignored), and keeps the last one read, so q/k/v (and gate/up) of a layer read it once.
/// A missing file is an IoError naming it, `needed_by` and `produced_by`; a mismatching one a
/// ConfigError / IoError from io::check_hessian_meta.
class InputStatsCache {
 public:
  InputStatsCache(std::filesystem::path root, const io::HessianFileMeta& meta, std::string needed_by,
                  std::string produced_by);
  const algo::InputStats& get(int layer, model::HessianInput input);

 private:
  std::filesystem::path root_;
  io::HessianFileMeta meta_;
  std::string needed_by_, produced_by_;
  int layer_ = -1;
  model::HessianInput input_ = model::HessianInput::kQkv;
  algo::InputStats stats_;
};

/// The statistics a method receives for one linear input (moves the sums out of `sum`).
algo::InputStats to_input_stats(io::HessianSum&& sum, int64_t seq_len);

}  // namespace caldera::pipeline
