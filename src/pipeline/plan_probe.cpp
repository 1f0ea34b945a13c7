#include "pipeline/plan_probe.h"

#include <malloc.h>

#include <cstdio>
#include <cstring>

namespace caldera::pipeline {

ProcessMemory read_process_memory() noexcept {
  ProcessMemory m;
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return m;
  char line[256];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long kb = 0;
    if (std::strncmp(line, "VmRSS:", 6) == 0 && std::sscanf(line + 6, "%lld", &kb) == 1) m.rss_bytes = kb * 1024;
    if (std::strncmp(line, "VmHWM:", 6) == 0 && std::sscanf(line + 6, "%lld", &kb) == 1) m.hwm_bytes = kb * 1024;
  }
  std::fclose(f);
  return m;
}

int64_t read_library_rss() noexcept {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return 0;
  char line[4096];
  bool library = false;
  long long total_kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    // A mapping's header: "start-end perms offset dev inode [path]"; its fields follow, "Rss: N kB".
    unsigned long long lo = 0, hi = 0, offset = 0, inode = 0;
    char perms[8] = {}, dev[32] = {};
    int path_at = 0;
    if (std::sscanf(line, "%llx-%llx %7s %llx %31s %llu %n", &lo, &hi, perms, &offset, dev, &inode, &path_at) >= 6) {
      library = inode != 0 && perms[3] == 'p' && line[path_at] == '/';  // private, file-backed
      continue;
    }
    long long kb = 0;
    if (library && std::strncmp(line, "Rss:", 4) == 0 && std::sscanf(line + 4, "%lld", &kb) == 1) total_kb += kb;
  }
  std::fclose(f);
  return static_cast<int64_t>(total_kb) * 1024;
}

bool reset_peak_rss() noexcept {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

io::JsonValue to_json(const PhaseMemory& m) {
  io::JsonValue j = io::JsonValue::object();
  j.set("phase", m.phase);
  j.set("backend_start_bytes", m.backend_start_bytes);
  j.set("backend_peak_bytes", m.backend_peak_bytes);
  j.set("rss_start_bytes", m.rss_start_bytes);
  j.set("rss_peak_bytes", m.rss_peak_bytes);
  j.set("host_growth_bytes", m.host_growth_bytes());
  j.set("library_growth_bytes", m.library_growth_bytes());
  j.set("host_work_bytes", m.host_work_bytes());
  j.set("peak_reset", m.peak_reset);
  return j;
}

PhaseMemoryProbe::PhaseMemoryProbe(linalg::Backend& backend, std::string phase) : backend_(backend) {
  start_.phase = std::move(phase);
  backend_.reset_peak_memory();
  start_.backend_start_bytes = static_cast<int64_t>(backend_.memory_stats().current_bytes);
  ::malloc_trim(0);  // free heap pages back to the kernel: the phase's growth is then its own
  start_.library_start_bytes = read_library_rss();
  start_.peak_reset = reset_peak_rss();
  start_.rss_start_bytes = read_process_memory().rss_bytes;
}

PhaseMemory PhaseMemoryProbe::finish() const {
  PhaseMemory m = start_;
  m.backend_peak_bytes = static_cast<int64_t>(backend_.memory_stats().peak_bytes);
  m.rss_peak_bytes = read_process_memory().hwm_bytes;
  m.library_end_bytes = read_library_rss();
  return m;
}

}  // namespace caldera::pipeline
