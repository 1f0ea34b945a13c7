// A run over one work directory (DESIGN §1-§3): opens the model and the calibration tokens, takes
// the workdir (lock, leftovers, run.json and the resume decision), and runs the phases, each
// skipping what is already done and stopping at a safe point on SIGUSR1/SIGTERM.
//
//   phase 1  run_hessians()  hessians/layer_NNN.h5 (activation snapshots in state/)
//   phase 2  run_compress()  tasks/<unit>.h5 (mid-unit checkpoints tasks/<unit>.partial.h5), then
//                            for a method with an update pass run_update(): update/ (update_pass.h)
//   phase 3  run_export()    output/
//
// Every member function is collective (all ranks, same order). A phase returns false when the job
// must stop for a requeue: the caller exits with code 75 and the next run resumes.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "algo/method.h"
#include "comm/communicator.h"
#include "io/hf_model.h"
#include "io/json_value.h"
#include "io/token_file.h"
#include "linalg/backend.h"
#include "model/forward.h"
#include "pipeline/compress_phase.h"
#include "pipeline/export.h"
#include "pipeline/hessian_phase.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/progress.h"
#include "pipeline/run_record.h"
#include "pipeline/workdir.h"

namespace caldera::pipeline {

struct SessionOptions {
  std::filesystem::path workdir;
  std::filesystem::path model_dir;
  std::filesystem::path calib_path;
  model::ForwardOptions forward;       ///< seq_len, micro_batch_seqs, vocab_chunk
  int64_t max_calib_seqs = 0;          ///< 0: every sequence of the calibration file
  ResumeMode resume = ResumeMode::kAuto;
  bool force_unlock = false;
  double snapshot_interval_s = 300;    ///< phase-1 activation snapshot at most this often
  uint64_t seed = 0;
  std::string job_id;                  ///< SLURM_JOB_ID, for the workdir lock
  ProgressStyle progress = ProgressStyle::kOff;
  /// Throws ConfigError listing every invalid value (naming the options).
  void validate() const;
};

class Session {
 public:
  /// Collective. `method` may be null for a phase-1-only session (`caldera-dist hessians`). Throws
  /// ConfigError when the workdir holds an incompatible run (naming each difference), IoError for
  /// unreadable inputs.
  Session(comm::Communicator& world, linalg::Backend& backend, SessionOptions options, const algo::Method* method);
  ~Session();

  /// Sets the method of phases 2 and 3 after construction (when it depends on phase 1, e.g. the
  /// rank allocation of the low-rank methods), recording it in run.json; collective. Throws
  /// ConfigError when run.json records another method configuration.
  void attach_method(const algo::Method& method);

  bool run_hessians(HessianPhaseReport* report = nullptr);
  /// Phase 2, then the update pass when the method has one (Method::has_update_pass).
  bool run_compress(CompressPhaseReport* report = nullptr);
  /// The update pass alone (pipeline/update_pass.h); phase 2 must be finished.
  bool run_update();
  /// Rank 0 writes, the others wait; the report is complete on rank 0 only.
  ExportReport run_export(ExportOptions options);

  const io::HfModel& model() const { return *model_; }
  const io::TokenFile& calibration() const { return *calib_; }
  const SessionOptions& options() const { return options_; }
  comm::Communicator& world() { return world_; }
  linalg::Backend& backend() { return backend_; }
  const Workdir& workdir() const { return workdir_; }
  JsonlLog& log() { return *log_; }
  CalibrationInfo calibration_info() const;

 private:
  /// A layer-by-layer pass over the calibration activations: phase 1, or the update pass.
  struct LayerPass {
    std::string name;                  ///< log prefix, progress bar, log event "<name>_done"
    std::filesystem::path root;        ///< its files go to <root>/hessians/layer_NNN.h5
    std::filesystem::path state_dir;   ///< its activation snapshots
    const model::WeightSource* propagate = nullptr;           ///< HessianPhaseOptions::propagate
    std::function<void(int64_t layer)> before_propagate;      ///< HessianPhaseOptions::before_propagate
  };
  bool run_layer_pass(const HfWeightSource& source, const LayerPass& pass, HessianPhaseReport* out);
  io::JsonValue current_record() const;
  void take_workdir();
  void write_record(const io::JsonValue& record) const;

  comm::Communicator& world_;
  linalg::Backend& backend_;
  SessionOptions options_;
  const algo::Method* method_;
  Workdir workdir_;
  std::unique_ptr<io::HfModel> model_;
  std::unique_ptr<io::TokenFile> calib_;
  WorkdirLock lock_;
  std::unique_ptr<JsonlLog> log_;
};

}  // namespace caldera::pipeline
