// The work directory layout and its housekeeping (DESIGN §3):
//
//   <workdir>/run.json                              run record (fingerprint), see run_record.h
//   <workdir>/run.lock                              single-writer lock (rank 0 holds it)
//   <workdir>/hessians/layer_NNN.h5                 phase 1 results
//   <workdir>/state/                                phase-1 activation snapshots
//   <workdir>/tasks/<unit>.h5                       finished phase-2 unit
//   <workdir>/tasks/<unit>.partial.h5               in-flight unit state
//   <workdir>/update/hessians/layer_NNN.h5          update pass (SVD-LLM --update local): input
//   <workdir>/update/tasks/<unit>.h5                statistics on the compressed prefix, refitted
//   <workdir>/update/state/                         units, activation snapshots
//   <workdir>/logs/rank-NNNN.jsonl                  per-rank structured log
//   <workdir>/output/                               the compressed model
//
// Every file reaches its final name by rename() of a fully written temp file named
// `<final>.tmp.<pid>`; remove_leftovers() deletes such temps after a crash.
#pragma once

#include <filesystem>
#include <string>

namespace caldera::pipeline {

class Workdir {
 public:
  explicit Workdir(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path run_record() const { return root_ / "run.json"; }
  std::filesystem::path lock_file() const { return root_ / "run.lock"; }
  std::filesystem::path hessian_dir() const { return root_ / "hessians"; }
  std::filesystem::path hessian_file(int layer) const;
  std::filesystem::path state_dir() const { return root_ / "state"; }
  std::filesystem::path task_dir() const { return root_ / "tasks"; }
  /// tasks/<unit_name>.h5
  std::filesystem::path task_file(const std::string& unit_name) const;
  /// tasks/<unit_name>.partial.h5
  std::filesystem::path partial_task_file(const std::string& unit_name) const;
  /// Root of the update pass (pipeline/update_pass.h): its hessians/, tasks/ and state/.
  std::filesystem::path update_dir() const { return root_ / "update"; }
  std::filesystem::path update_task_file(const std::string& unit_name) const;
  std::filesystem::path log_dir() const { return root_ / "logs"; }
  std::filesystem::path log_file(int rank) const;
  std::filesystem::path output_dir() const { return root_ / "output"; }

  /// Creates the directories (idempotent). Throws IoError naming the path on failure.
  void create_layout() const;
  /// Deletes temp files of interrupted writes (io::remove_stale_temp_files) in the workdir and its
  /// result directories; returns how many. Call on one rank before any rank writes.
  int remove_leftovers() const;
  /// Deletes every result (hessians, state, tasks, output, run.json) but keeps logs; used by
  /// --resume never.
  void clear_results() const;
  /// True when any result of an earlier run exists (run.json, a hessian or task file).
  bool has_results() const;

 private:
  std::filesystem::path root_;
};

/// Identity of the process that holds the lock.
struct LockOwner {
  std::string host;
  long pid = 0;
  std::string job_id;  ///< SLURM_JOB_ID or empty
};

/// Exclusive lock on a workdir, so two copies of the same job (a requeue racing a resubmission)
/// never write at once. Taken by rank 0 only. The lock file holds host, pid and job id. An
/// existing lock is taken over when it belongs to the same SLURM job (a requeued job), or to a
/// process on this host that no longer runs; otherwise acquire() throws IoError naming the owner
/// and how to override (`--force-unlock`).
class WorkdirLock {
 public:
  WorkdirLock() = default;
  WorkdirLock(const Workdir& workdir, const LockOwner& me, bool force);
  WorkdirLock(WorkdirLock&& other) noexcept;
  WorkdirLock& operator=(WorkdirLock&& other) noexcept;
  WorkdirLock(const WorkdirLock&) = delete;
  WorkdirLock& operator=(const WorkdirLock&) = delete;
  ~WorkdirLock();  ///< releases (removes the file); never throws

  bool held() const { return !path_.empty(); }

 private:
  std::filesystem::path path_;
};

}  // namespace caldera::pipeline
