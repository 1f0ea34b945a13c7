#include "pipeline/session.h"

#include <unistd.h>

#include <chrono>

#include "caldera/config.h"
#include "comm/partition.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "pipeline/activation_snapshot.h"
#include "pipeline/hf_weight_source.h"
#include "pipeline/plan_probe.h"
#include "pipeline/stop_signal.h"
#include "pipeline/task_file.h"
#include "pipeline/update_pass.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {

void SessionOptions::validate() const {
  std::string problems;
  if (workdir.empty()) problems += "\n  --workdir is required";
  if (model_dir.empty()) problems += "\n  --model is required";
  if (calib_path.empty()) problems += "\n  --calib is required";
  if (max_calib_seqs < 0) problems += detail::concat("\n  --max-calib-seqs must be >= 0, got ", max_calib_seqs);
  if (!(snapshot_interval_s >= 0)) problems += detail::concat("\n  --snapshot-interval must be >= 0, got ", snapshot_interval_s);
  try {
    forward.validate();
  } catch (const ConfigError& e) {
    problems += std::string("\n  ") + e.what();
  }
  if (!problems.empty()) raise<ConfigError>("invalid options:", problems);
}

Session::Session(comm::Communicator& world, linalg::Backend& backend, SessionOptions options, const algo::Method* method)
    : world_(world), backend_(backend), options_((options.validate(), std::move(options))), method_(method),
      workdir_(options_.workdir) {
  install_stop_handlers();
  model_ = std::make_unique<io::HfModel>(io::HfModel::open(options_.model_dir));
  model_->config().check_sequence_length(options_.forward.seq_len);
  calib_ = std::make_unique<io::TokenFile>(io::TokenFile::open(
      options_.calib_path, options_.forward.seq_len, model_->config().vocab_size,
      options_.max_calib_seqs > 0 ? std::optional<int64_t>(options_.max_calib_seqs) : std::nullopt));
  take_workdir();
  log_ = std::make_unique<JsonlLog>(workdir_.log_file(world_.rank()), world_.rank(), world_.host_name());
}

Session::~Session() = default;

CalibrationInfo Session::calibration_info() const {
  return CalibrationInfo{calib_->sha256(), calib_->num_sequences(), options_.forward.seq_len};
}

io::JsonValue Session::current_record() const {
  io::JsonValue r = io::JsonValue::object();
  r.set("format_version", kRunRecordFormatVersion);
  io::JsonValue tool = io::JsonValue::object();
  tool.set("name", "caldera-dist");
  tool.set("version", CALDERA_VERSION);
  r.set("tool", tool);
  io::JsonValue p1 = io::JsonValue::object();
  io::JsonValue files = io::JsonValue::array();
  for (const auto& f : model_->fingerprint().files) {
    io::JsonValue e = io::JsonValue::object();
    e.set("name", f.name);
    e.set("size", f.size_bytes);
    e.set("sha256", f.sha256);
    files.push_back(e);
  }
  p1.set("model_files", files);
  io::JsonValue cal = io::JsonValue::object();
  cal.set("sha256", calib_->sha256());
  cal.set("file_size", calib_->file_size_bytes());
  cal.set("sequences", calib_->num_sequences());
  cal.set("seq_len", options_.forward.seq_len);
  p1.set("calibration", cal);
  p1.set("micro_batch", options_.forward.micro_batch_seqs);
  r.set("phase1", p1);
  if (method_ != nullptr) {
    io::JsonValue p2 = io::JsonValue::object();
    p2.set("method", method_->name());
    io::JsonValue params = io::JsonValue::object();
    for (const auto& [k, v] : method_->parameters()) params.set(k, v);
    p2.set("parameters", params);
    p2.set("seed", std::to_string(options_.seed));
    r.set("phase2", p2);
  }
  r.set("world_size", world_.size());
  io::JsonValue info = io::JsonValue::object();
  info.set("model_dir", fs::absolute(options_.model_dir).string());
  info.set("calibration", fs::absolute(options_.calib_path).string());
  r.set("info", info);
  return r;
}

// Rank 0 decides and prepares; an error there (incompatible run, lock held) propagates and main()
// ends the whole job with the message, so the other ranks never proceed on a workdir they do not own.
void Session::take_workdir() {
  const io::JsonValue current = current_record();
  if (world_.rank() == 0) {
    workdir_.create_layout();
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    lock_ = WorkdirLock(workdir_, LockOwner{host, static_cast<long>(::getpid()), options_.job_id},
                        options_.force_unlock);
    io::JsonValue previous;
    std::error_code ec;
    if (fs::exists(workdir_.run_record(), ec)) previous = io::JsonValue::read_file(workdir_.run_record());
    const bool orphans = previous.is_null() && workdir_.has_results();
    const ResumeAction action =
        decide_resume(options_.resume, previous, current, orphans, workdir_.root().string());
    if (action == ResumeAction::kClearAndStartFresh) {
      log_info("--resume never: clearing the results of the earlier run in ", workdir_.root().string());
      workdir_.clear_results();
      workdir_.create_layout();
      previous = io::JsonValue();
    } else if (action == ResumeAction::kResume) {
      log_info("resuming the run in ", workdir_.root().string());
    }
    workdir_.remove_leftovers();
    StopCoordinator(workdir_.state_dir() / "STOP").clear();
    write_record(merge_run_records(previous, current));
  }
  world_.barrier();
}

void Session::write_record(const io::JsonValue& record) const {
  io::publish_atomically(workdir_.run_record(), [&](const fs::path& tmp) {
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) raise<IoError>(tmp.string(), ": cannot write");
    const std::string text = record.dump(2) + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) raise<IoError>(tmp.string(), ": write failed");
  });
}

void Session::attach_method(const algo::Method& method) {
  method_ = &method;
  if (world_.rank() == 0) {
    const io::JsonValue previous = io::JsonValue::read_file(workdir_.run_record());
    const io::JsonValue current = current_record();
    decide_resume(ResumeMode::kAuto, previous, current, false, workdir_.root().string());
    write_record(merge_run_records(previous, current));
  }
  world_.barrier();
}

bool Session::run_hessians(HessianPhaseReport* out) {
  const HfWeightSource source(io::HfModel::open(options_.model_dir));
  LayerPass pass;
  pass.name = "hessians";
  pass.root = workdir_.root();
  pass.state_dir = workdir_.state_dir();
  return run_layer_pass(source, pass, out);
}

bool Session::run_update() {
  CALDERA_CHECK(method_ != nullptr && method_->has_update_pass(), "run_update: the session's method has no update pass");
  const HfWeightSource source(io::HfModel::open(options_.model_dir));
  const UpdatedModelSource updated(source, workdir_, *method_, options_.seed, backend_);
  const io::HessianFileMeta meta{0, model_->fingerprint().digest(), calib_->sha256(), options_.forward.seq_len};
  int64_t refitted = 0;
  LayerPass pass;
  pass.name = "update";
  pass.root = workdir_.update_dir();
  pass.state_dir = workdir_.update_dir() / "state";
  pass.propagate = &updated;
  pass.before_propagate = [&](int64_t layer) {
    refitted += refit_layer_units(world_, backend_, *model_, workdir_, *method_, options_.seed, layer, meta);
  };
  const bool finished = run_layer_pass(source, pass, nullptr);
  io::JsonValue e = io::JsonValue::object();
  e.set("units_refitted", world_.allreduce_value<int64_t>(refitted, comm::ReduceOp::kSum));
  log_->event("update_units", e);
  return finished;
}

bool Session::run_layer_pass(const HfWeightSource& source, const LayerPass& pass, HessianPhaseReport* out) {
  Stopwatch watch;
  const PhaseMemoryProbe memory(backend_, pass.name);
  // Ranks get whole micro-batches (groups of micro_batch_seqs consecutive sequences), so every
  // sequence is forwarded in the same micro-batch — the same GEMM shapes — whatever the world size:
  // with exact Hessian sums this makes phase 1 bit-identical for any number of ranks, on GPUs too.
  const int64_t n_seqs = calib_->num_sequences();
  const int64_t group = options_.forward.micro_batch_seqs;
  const comm::IndexRange groups = comm::partition_range((n_seqs + group - 1) / group, world_.size(), world_.rank());
  const auto slice = calib_->slice(std::min(groups.begin * group, n_seqs), std::min(groups.end * group, n_seqs));
  HessianPhaseOptions hopt;
  hopt.forward = options_.forward;
  hopt.workdir = pass.root;
  hopt.model_fingerprint = model_->fingerprint().digest();
  hopt.calibration_sha256 = calib_->sha256();
  hopt.name = pass.name;
  hopt.propagate = pass.propagate;
  hopt.before_propagate = pass.before_propagate;
  HessianPhase phase(backend_, world_, source, std::span<const uint32_t>(slice.data, static_cast<size_t>(slice.size())),
                     hopt);
  const std::vector<LayerAction> actions = phase.plan();
  const int64_t n_layers = static_cast<int64_t>(actions.size());
  int64_t first_collect = n_layers;
  for (int64_t l = 0; l < n_layers; ++l)
    if (actions[static_cast<size_t>(l)] == LayerAction::kCollect) {
      first_collect = l;
      break;
    }

  // Resume from activation snapshots when every rank has one it can use.
  const SnapshotIdentity id{world_.size(), world_.rank(), hopt.model_fingerprint, hopt.calibration_sha256,
                            options_.forward.seq_len};
  const fs::path snap_file = snapshot_path(pass.state_dir, world_.rank());
  int64_t start = 0;
  if (first_collect > 0 && first_collect < n_layers) {
    auto snap = read_activation_snapshot(snap_file, id);
    const int64_t mine_layer = snap && snap->next_layer <= first_collect ? snap->next_layer : 0;
    const int64_t lo = world_.allreduce_value<int64_t>(mine_layer, comm::ReduceOp::kMin);
    const int64_t hi = world_.allreduce_value<int64_t>(mine_layer, comm::ReduceOp::kMax);
    if (lo == hi && lo > 0) {
      phase.restore(lo, snap->activations);
      start = lo;
      log_info(pass.name, ": continuing from the activation snapshot entering layer ", lo);
    }
  }
  // The layers a snapshot skips still get their callback (their files verified): the update pass
  // refits any of their units that are missing.
  if (pass.before_propagate)
    for (int64_t l = 0; l < start; ++l) pass.before_propagate(l);

  StopCoordinator stop(workdir_.state_dir() / "STOP");
  ProgressBar bar(pass.name, static_cast<double>(n_layers), "layers", options_.progress);
  auto last_snapshot = std::chrono::steady_clock::now();
  bool stopped = false;
  for (int64_t l = start; l < n_layers; ++l) {
    phase.run_layer(l, actions[static_cast<size_t>(l)]);
    bar.update(static_cast<double>(l + 1), "layer " + std::to_string(l));
    const bool stop_now = world_.any(stop.requested());
    bool later_work = false;
    for (int64_t k = l + 1; k < n_layers; ++k) later_work |= actions[static_cast<size_t>(k)] == LayerAction::kCollect;
    const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_snapshot).count();
    if (later_work && (stop_now || since >= options_.snapshot_interval_s) &&
        actions[static_cast<size_t>(l)] != LayerAction::kSkip) {
      fs::create_directories(pass.state_dir);
      write_activation_snapshot(snap_file, id, l + 1, phase.activations());
      last_snapshot = std::chrono::steady_clock::now();
      log_info(pass.name, ": activation snapshot entering layer ", l + 1, " written (", snap_file.string(), ")");
    }
    if (stop_now && l + 1 < n_layers) {
      stopped = true;
      break;
    }
  }
  bar.finish();
  if (!stopped) {
    std::error_code ec;
    fs::remove(snap_file, ec);
  }
  HessianPhaseReport report = phase.report();
  report.sequences = calib_->num_sequences();
  report.tokens = calib_->num_sequences() * options_.forward.seq_len;
  report.seconds = watch.elapsed_s();
  io::JsonValue e = io::JsonValue::object();
  e.set("layers_collected", report.layers_collected);
  e.set("layers_reused", report.layers_reused);
  e.set("seconds", report.seconds);
  e.set("stopped", stopped);
  log_->event(pass.name + "_done", e);
  log_->event("phase_memory", to_json(memory.finish()));
  if (out != nullptr) *out = report;
  return !stopped;
}

bool Session::run_compress(CompressPhaseReport* out) {
  CALDERA_CHECK(method_ != nullptr, "run_compress: the session has no method");
  CompressPhaseOptions copt;
  copt.seed = options_.seed;
  copt.hessian_meta = io::HessianFileMeta{0, model_->fingerprint().digest(), calib_->sha256(), options_.forward.seq_len};
  copt.progress = options_.progress;
  const PhaseMemoryProbe memory(backend_, "compress");
  const CompressPhaseReport report = run_compress_phase(world_, backend_, *model_, workdir_, *method_, copt, log_.get());
  log_->event("phase_memory", to_json(memory.finish()));
  if (out != nullptr) *out = report;
  if (report.stopped) return false;
  return method_->has_update_pass() ? run_update() : true;
}

ExportReport Session::run_export(ExportOptions options) {
  CALDERA_CHECK(method_ != nullptr, "run_export: the session has no method");
  options.seed = options_.seed;
  options.calibration = calibration_info();
  ExportReport report;
  const PhaseMemoryProbe memory(backend_, "export");
  if (world_.rank() == 0) report = export_model(backend_, *model_, workdir_, *method_, options);
  log_->event("phase_memory", to_json(memory.finish()));
  world_.barrier();
  return report;
}

}  // namespace caldera::pipeline
