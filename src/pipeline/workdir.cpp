#include "pipeline/workdir.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {

Workdir::Workdir(fs::path root) : root_(std::move(root)) {
  CALDERA_CHECK_AS(ConfigError, !root_.empty(), "--workdir: an empty path was given");
}

fs::path Workdir::hessian_file(int layer) const {
  char name[32];
  std::snprintf(name, sizeof(name), "layer_%03d.h5", layer);
  return hessian_dir() / name;
}

fs::path Workdir::task_file(const std::string& unit_name) const { return task_dir() / (unit_name + ".h5"); }

fs::path Workdir::partial_task_file(const std::string& unit_name) const {
  return task_dir() / (unit_name + ".partial.h5");
}

fs::path Workdir::update_task_file(const std::string& unit_name) const {
  return update_dir() / "tasks" / (unit_name + ".h5");
}

fs::path Workdir::log_file(int rank) const {
  char name[32];
  std::snprintf(name, sizeof(name), "rank-%04d.jsonl", rank);
  return log_dir() / name;
}

void Workdir::create_layout() const {
  for (const fs::path& d : {root_, hessian_dir(), state_dir(), task_dir(), log_dir()}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) raise<IoError>(d.string(), ": cannot create directory: ", ec.message());
  }
}

int Workdir::remove_leftovers() const {
  int removed = 0;
  for (const fs::path& d : {root_, hessian_dir(), state_dir(), task_dir(), output_dir(), update_dir() / "hessians",
                            update_dir() / "tasks", update_dir() / "state"}) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) removed += io::remove_stale_temp_files(d);
  }
  if (removed > 0) log_info("removed ", removed, " leftover temp file(s) of interrupted writes in ", root_.string());
  return removed;
}

void Workdir::clear_results() const {
  std::error_code ec;
  for (const fs::path& d : {hessian_dir(), state_dir(), task_dir(), output_dir(), update_dir()}) fs::remove_all(d, ec);
  fs::remove(run_record(), ec);
}

bool Workdir::has_results() const {
  std::error_code ec;
  if (fs::exists(run_record(), ec)) return true;
  for (const fs::path& d : {hessian_dir(), task_dir()})
    if (fs::exists(d, ec) && !fs::is_empty(d, ec)) return true;
  return false;
}

namespace {

LockOwner read_owner(const fs::path& path) {
  LockOwner o;
  std::ifstream in(path);
  std::string key;
  while (in >> key) {
    if (key == "host") in >> o.host;
    else if (key == "pid") in >> o.pid;
    else if (key == "job") in >> o.job_id;
  }
  return o;
}

bool process_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

}  // namespace

WorkdirLock::WorkdirLock(const Workdir& workdir, const LockOwner& me, bool force) {
  const fs::path path = workdir.lock_file();
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd >= 0) {
      std::ostringstream os;
      os << "host " << me.host << "\npid " << me.pid << "\njob " << (me.job_id.empty() ? "-" : me.job_id) << "\n";
      const std::string text = os.str();
      const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) raise<IoError>(path.string(), ": cannot write the lock file: ", std::strerror(errno));
      path_ = path;
      return;
    }
    if (errno != EEXIST) raise<IoError>(path.string(), ": cannot create the lock file: ", std::strerror(errno));
    const LockOwner owner = read_owner(path);
    const bool same_job = !me.job_id.empty() && owner.job_id == me.job_id;
    const bool dead_here = owner.host == me.host && !process_alive(owner.pid);
    if (force || same_job || dead_here) {
      log_warn("taking over the workdir lock of host ", owner.host, " pid ", owner.pid, " job ", owner.job_id,
               force ? " (--force-unlock)" : same_job ? " (same SLURM job, requeued)" : " (process no longer runs)");
      std::error_code ec;
      fs::remove(path, ec);
      continue;
    }
    raise<IoError>(workdir.root().string(), ": the workdir is in use by host ", owner.host, " pid ", owner.pid,
                   owner.job_id.empty() || owner.job_id == "-" ? "" : " (job " + owner.job_id + ")",
                   "; wait for it to finish, or pass --force-unlock if that process is gone (lock file ",
                   path.string(), ")");
  }
  raise<IoError>(path.string(), ": could not acquire the workdir lock");
}

WorkdirLock::WorkdirLock(WorkdirLock&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

WorkdirLock& WorkdirLock::operator=(WorkdirLock&& other) noexcept {
  if (this != &other) {
    WorkdirLock tmp(std::move(*this));
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

WorkdirLock::~WorkdirLock() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove(path_, ec);
}

}  // namespace caldera::pipeline
