#include "pipeline/compress_phase.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "comm/partition.h"
#include "core/log.h"
#include "core/timer.h"
#include "pipeline/stop_signal.h"
#include "pipeline/task_file.h"
#include "pipeline/units.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {
namespace {

/// On rank 0: a thread that counts finished units (task sidecars) every two seconds and drives the
/// progress bar by their share of the estimated cost, so the bar shows the whole job's progress.
class ProgressMonitor {
 public:
  ProgressMonitor(const Workdir& workdir, const std::vector<Unit>& units, const std::vector<double>& costs,
                  ProgressStyle style)
      : workdir_(workdir), units_(units), costs_(costs) {
    double total = 0;
    for (double c : costs_) total += c;
    total_ = total;
    if (style == ProgressStyle::kOff) return;
    bar_ = std::make_unique<ProgressBar>("compress", 100.0, "% of estimated work", style);
    thread_ = std::thread([this] { loop(); });
  }
  ~ProgressMonitor() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (bar_) {
      poll();
      bar_->finish();
    }
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!done_) {
      lock.unlock();
      poll();
      lock.lock();
      cv_.wait_for(lock, std::chrono::seconds(2), [this] { return done_; });
    }
  }
  void poll() {
    double finished = 0;
    int64_t n = 0;
    for (size_t i = 0; i < units_.size(); ++i) {
      std::error_code ec;
      if (fs::exists(task_hash_path(workdir_.task_file(units_[i].id.name())), ec)) {
        finished += costs_[i];
        ++n;
      }
    }
    bar_->update(total_ > 0 ? 100.0 * finished / total_ : 100.0,
                 std::to_string(n) + "/" + std::to_string(units_.size()) + " units");
  }

  const Workdir& workdir_;
  const std::vector<Unit>& units_;
  const std::vector<double>& costs_;
  double total_ = 0;
  std::unique_ptr<ProgressBar> bar_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

}  // namespace

InputStatsCache::InputStatsCache(fs::path root, const io::HessianFileMeta& meta, std::string needed_by,
                                 std::string produced_by)
    : root_(std::move(root)), meta_(meta), needed_by_(std::move(needed_by)), produced_by_(std::move(produced_by)) {}

const algo::InputStats& InputStatsCache::get(int layer, model::HessianInput input) {
  if (layer == layer_ && input == input_) return stats_;
  const fs::path path = io::hessian_file_path(root_, layer);
  std::error_code ec;
  if (!fs::exists(path, ec))
    raise<IoError>(path.string(), ": missing: ", needed_by_, " needs the Hessians of layer ", layer, " from ",
                   produced_by_);
  io::HessianFileMeta expected = meta_;
  expected.layer = layer;
  io::check_hessian_meta(path, io::read_hessian_meta(path), expected);
  stats_ = to_input_stats(io::read_hessian_input(path, input), meta_.seq_len);
  layer_ = layer;
  input_ = input;
  return stats_;
}

algo::InputStats to_input_stats(io::HessianSum&& sum, int64_t seq_len) {
  algo::InputStats s;
  s.sum_xxt = std::move(sum.sum);
  s.sum_x = std::move(sum.mu_sum);
  s.sum_abs_x = std::move(sum.sum_abs);
  s.max_abs_x = std::move(sum.max_abs);
  s.count = sum.count;
  s.n_sequences = seq_len > 0 ? sum.count / seq_len : 0;
  return s;
}

CompressPhaseReport run_compress_phase(comm::Communicator& comm, linalg::Backend& backend, const io::HfModel& model,
                                       const Workdir& workdir, const algo::Method& method,
                                       const CompressPhaseOptions& options, JsonlLog* log) {
  const std::vector<Unit> units = enumerate_units(model.config());
  std::vector<double> costs;
  costs.reserve(units.size());
  for (const Unit& u : units) costs.push_back(method.cost_estimate(u.shape.out, u.shape.in));
  const comm::Schedule schedule = comm::schedule_largest_first(costs, comm.size());
  const auto& mine = schedule.units[static_cast<size_t>(comm.rank())];

  CompressPhaseReport report;
  report.units_total = static_cast<int64_t>(units.size());
  report.predicted_efficiency = comm::schedule_efficiency(schedule.loads);
  log_info("compress: ", units.size(), " units with method ", method.name(), " over ", comm.size(),
           " rank(s); this rank has ", mine.size(), " (predicted balance ",
           static_cast<int>(100 * report.predicted_efficiency), "%)");

  std::unique_ptr<ProgressMonitor> monitor;
  if (comm.rank() == 0) monitor = std::make_unique<ProgressMonitor>(workdir, units, costs, options.progress);

  StopCoordinator stop(workdir.state_dir() / "STOP");
  InputStatsCache stats(workdir.root(), options.hessian_meta, "phase 2",
                        "phase 1 (`caldera-dist hessians` or `run` with the same settings)");
  int64_t computed = 0, reused = 0;
  double busy = 0;
  bool stopped = false;
  for (int64_t index : mine) {
    if (stop.requested()) {
      stopped = true;
      break;
    }
    const Unit& u = units[static_cast<size_t>(index)];
    const TaskIdentity identity = unit_task_identity(u, method, options.seed);
    const fs::path task_path = workdir.task_file(u.id.name());
    if (load_task_file(task_path, identity)) {
      ++reused;
      continue;
    }
    Stopwatch watch;
    if (log != nullptr) {
      io::JsonValue e = io::JsonValue::object();
      e.set("unit", u.id.name());
      log->event("unit_start", e);
    }
    const HostMatrix<float> w = model.read_linear(u.id.layer, u.kind);
    const algo::InputStats& input = stats.get(u.id.layer, model::hessian_input(u.kind));
    H5CheckpointStore checkpoint(workdir.partial_task_file(u.id.name()), identity);
    algo::MethodContext context{backend, Rng(options.seed).stream({static_cast<uint64_t>(u.id.layer),
                                                                   static_cast<uint64_t>(u.id.matrix_index)}),
                                u.id, &checkpoint, [&stop] { return stop.requested(); }, {}};
    algo::CompressedUnit result;
    try {
      result = method.compress(context, w.view(), input);
    } catch (const algo::StopRequested&) {
      log_info("compress: stopped inside ", u.id.name(), " after saving its state");
      busy += watch.elapsed_s();
      stopped = true;
      break;
    }
    write_task_file(task_path, identity, result);
    checkpoint.remove();
    const double seconds = watch.elapsed_s();
    busy += seconds;
    ++computed;
    log_info("compress: ", u.id.name(), " (", u.shape.out, "x", u.shape.in, ") rel_error ", result.metrics.rel_error,
             " bits/weight ", result.metrics.bits / static_cast<double>(u.shape.out * u.shape.in), " in ", seconds, " s");
    if (log != nullptr) {
      io::JsonValue e = io::JsonValue::object();
      e.set("unit", u.id.name());
      e.set("rows", u.shape.out);
      e.set("cols", u.shape.in);
      e.set("rel_error", result.metrics.rel_error);
      e.set("bits", result.metrics.bits);
      e.set("seconds", seconds);
      log->event("unit_done", e);
    }
  }

  report.stopped = comm.any(stopped);
  report.units_computed = comm.allreduce_value<int64_t>(computed, comm::ReduceOp::kSum);
  report.units_reused = comm.allreduce_value<int64_t>(reused, comm::ReduceOp::kSum);
  report.busy_s = comm.allgather_value(busy);
  report.makespan_s = *std::max_element(report.busy_s.begin(), report.busy_s.end());
  report.efficiency = comm::schedule_efficiency(report.busy_s);
  monitor.reset();
  if (log != nullptr) {
    io::JsonValue e = io::JsonValue::object();
    e.set("units_computed", report.units_computed);
    e.set("units_reused", report.units_reused);
    e.set("busy_s", busy);
    e.set("makespan_s", report.makespan_s);
    e.set("efficiency", report.efficiency);
    e.set("stopped", report.stopped);
    log->event("compress_done", e);
  }
  return report;
}

}  // namespace caldera::pipeline
