// to_json / to_text of pipeline/inspect.h.
#include <cstdio>
#include <sstream>

#include "pipeline/inspect.h"
#include "pipeline/plan.h"

namespace caldera::pipeline {

io::JsonValue to_json(const OutputInfo& o) {
  io::JsonValue j = io::JsonValue::object();
  j.set("kind", "output");
  j.set("dir", o.dir.string());
  j.set("quantization_config", o.quantization_config);
  j.set("files", o.files);
  j.set("total_bytes", o.total_bytes);
  j.set("avg_bits_stored", o.avg_bits_stored);
  io::JsonValue m = io::JsonValue::array();
  for (const OutputInfo::Matrix& x : o.matrices) {
    io::JsonValue e = io::JsonValue::object();
    e.set("name", x.name);
    e.set("rows", x.rows);
    e.set("cols", x.cols);
    e.set("bytes", x.bytes);
    e.set("bits_per_weight", x.bits_per_weight);
    m.push_back(e);
  }
  j.set("matrices", m);
  return j;
}

io::JsonValue to_json(const WorkdirInfo& w) {
  io::JsonValue j = io::JsonValue::object();
  j.set("kind", "workdir");
  j.set("dir", w.dir.string());
  j.set("method", w.method);
  io::JsonValue p1 = io::JsonValue::object();
  p1.set("layers", w.layers);
  p1.set("done", w.count_layers(FileState::kDone));
  p1.set("invalid", w.count_layers(FileState::kInvalid));
  p1.set("missing", w.count_layers(FileState::kMissing));
  io::JsonValue layers = io::JsonValue::array();
  for (const LayerInfo& l : w.layer_files) {
    io::JsonValue e = io::JsonValue::object();
    e.set("layer", l.layer);
    e.set("state", std::string(to_string(l.state)));
    if (!l.problem.empty()) e.set("problem", l.problem);
    layers.push_back(e);
  }
  p1.set("files", layers);
  j.set("hessians", p1);
  io::JsonValue p2 = io::JsonValue::object();
  p2.set("units", static_cast<int64_t>(w.units.size()));
  p2.set("done", w.count(FileState::kDone));
  p2.set("in_progress", w.count(FileState::kInProgress));
  p2.set("missing", w.count(FileState::kMissing));
  p2.set("invalid", w.count(FileState::kInvalid));
  p2.set("avg_bits", w.avg_bits);
  p2.set("mean_rel_error", w.mean_rel_error);
  p2.set("efficiency", w.efficiency);
  io::JsonValue units = io::JsonValue::array();
  for (const UnitInfo& u : w.units) {
    io::JsonValue e = io::JsonValue::object();
    e.set("unit", u.name);
    e.set("rows", u.rows);
    e.set("cols", u.cols);
    e.set("state", std::string(to_string(u.state)));
    if (!u.method.empty()) e.set("method", u.method);
    if (u.state == FileState::kDone) {
      e.set("rel_error", u.rel_error);
      e.set("bits", u.bits);
      e.set("bits_per_weight", u.bits / (static_cast<double>(u.rows) * static_cast<double>(u.cols)));
      e.set("history_length", u.history_length);
    }
    if (u.checkpoint_iteration) e.set("checkpoint_iteration", *u.checkpoint_iteration);
    if (u.rank >= 0) {
      e.set("rank", u.rank);
      e.set("seconds", u.seconds);
    }
    if (!u.problem.empty()) e.set("problem", u.problem);
    units.push_back(e);
  }
  p2.set("per_unit", units);
  j.set("compress", p2);
  io::JsonValue ranks = io::JsonValue::array();
  for (const RankInfo& r : w.ranks) {
    io::JsonValue e = io::JsonValue::object();
    e.set("rank", r.rank);
    e.set("host", r.host);
    e.set("units", r.units);
    e.set("busy_s", r.busy_s);
    e.set("log_lines_skipped", r.log_lines_skipped);
    e.set("phase_memory", r.phase_memory);
    ranks.push_back(e);
  }
  j.set("ranks", ranks);
  io::JsonValue notes = io::JsonValue::array();
  for (const std::string& n : w.notes) notes.push_back(n);
  j.set("notes", notes);
  j.set("output", w.output ? to_json(*w.output) : io::JsonValue());
  return j;
}

std::string to_text(const OutputInfo& o) {
  std::ostringstream os;
  char buf[256];
  os << "output " << o.dir.string() << ": " << o.files << " shard(s), " << format_bytes(o.total_bytes) << "\n";
  if (o.quantization_config.is_null()) os << "  no quantization_config (a plain model)\n";
  else os << "  quantization_config " << o.quantization_config.dump() << "\n";
  std::snprintf(buf, sizeof buf, "  bits per weight as stored (all tensors of each matrix): %.4f\n", o.avg_bits_stored);
  os << buf;
  for (const OutputInfo::Matrix& m : o.matrices) {
    std::snprintf(buf, sizeof buf, "    %-40s %6lldx%-6lld %8.4f bits\n", m.name.c_str(), static_cast<long long>(m.rows),
                  static_cast<long long>(m.cols), m.bits_per_weight);
    os << buf;
  }
  return os.str();
}

std::string to_text(const WorkdirInfo& w) {
  std::ostringstream os;
  char buf[320];
  os << "workdir " << w.dir.string() << (w.method.empty() ? "" : ", method " + w.method) << "\n";
  os << "phase 1: " << w.count_layers(FileState::kDone) << "/" << w.layers << " layer files done";
  if (w.count_layers(FileState::kInvalid) > 0) os << ", " << w.count_layers(FileState::kInvalid) << " invalid";
  os << "\n";
  for (const LayerInfo& l : w.layer_files)
    if (l.state == FileState::kInvalid) os << "  layer " << l.layer << ": " << l.problem << "\n";
  os << "phase 2: " << w.count(FileState::kDone) << "/" << w.units.size() << " units done, "
     << w.count(FileState::kInProgress) << " in progress, " << w.count(FileState::kMissing) << " missing";
  if (w.count(FileState::kInvalid) > 0) os << ", " << w.count(FileState::kInvalid) << " invalid";
  std::snprintf(buf, sizeof buf, "; avg %.4f bits per weight, mean rel_error %.4f, efficiency %.0f%%\n", w.avg_bits,
                w.mean_rel_error, 100.0 * w.efficiency);
  os << buf;
  std::snprintf(buf, sizeof buf, "  %-26s %-12s %-11s %10s %8s %5s %5s %8s\n", "unit", "shape", "state", "rel_error",
                "bits/w", "hist", "rank", "seconds");
  os << buf;
  for (const UnitInfo& u : w.units) {
    const std::string shape = std::to_string(u.rows) + "x" + std::to_string(u.cols);
    std::string state(to_string(u.state));
    if (u.checkpoint_iteration) state += " @" + std::to_string(*u.checkpoint_iteration);
    if (u.state == FileState::kDone)
      std::snprintf(buf, sizeof buf, "  %-26s %-12s %-11s %10.5f %8.4f %5lld %5s %8.1f\n", u.name.c_str(), shape.c_str(),
                    state.c_str(), u.rel_error, u.bits / (static_cast<double>(u.rows) * static_cast<double>(u.cols)),
                    static_cast<long long>(u.history_length), u.rank >= 0 ? std::to_string(u.rank).c_str() : "-", u.seconds);
    else
      std::snprintf(buf, sizeof buf, "  %-26s %-12s %-11s %10s %8s %5s %5s %8s\n", u.name.c_str(), shape.c_str(),
                    state.c_str(), "-", "-", "-", "-", "-");
    os << buf;
    if (!u.problem.empty()) os << "    " << u.problem << "\n";
  }
  os << "ranks:\n";
  for (const RankInfo& r : w.ranks) {
    std::snprintf(buf, sizeof buf, "  rank %-4d %-16s %4lld units, busy %10.1f s", r.rank, r.host.c_str(),
                  static_cast<long long>(r.units), r.busy_s);
    os << buf;
    for (const io::JsonValue& m : r.phase_memory.as_array()) {
      os << "; " << m.at("phase").as_string() << " peak backend " << format_bytes(m.at("backend_peak_bytes").as_int())
         << ", host +" << format_bytes(m.at("host_growth_bytes").as_int());
      if (const io::JsonValue* lib = m.find("library_growth_bytes"); lib != nullptr && lib->as_int() > 0)
        os << " (" << format_bytes(lib->as_int()) << " of library pages)";
    }
    if (r.log_lines_skipped > 0) os << " (" << r.log_lines_skipped << " unreadable log lines)";
    os << "\n";
  }
  for (const std::string& n : w.notes) os << "note: " << n << "\n";
  if (w.output) os << to_text(*w.output);
  return os.str();
}

}  // namespace caldera::pipeline
