#include "pipeline/inspect.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "io/h5.h"
#include "io/hessian_file.h"
#include "io/hf_config.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "pipeline/export.h"
#include "pipeline/task_file.h"
#include "pipeline/units.h"
#include "pipeline/workdir.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {
namespace {

const io::JsonValue* path_in(const io::JsonValue& j, std::initializer_list<std::string_view> keys) {
  const io::JsonValue* cur = &j;
  for (std::string_view k : keys) {
    if (cur == nullptr || !cur->is_object()) return nullptr;
    cur = cur->find(k);
  }
  return cur;
}

std::string string_at(const io::JsonValue& j, std::initializer_list<std::string_view> keys) {
  const io::JsonValue* v = path_in(j, keys);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

/// The Hessian file meta this run expects (layer filled per file); nullopt if run.json lacks it.
std::optional<io::HessianFileMeta> expected_hessian_meta(const io::JsonValue& record) {
  const io::JsonValue* files = path_in(record, {"phase1", "model_files"});
  const io::JsonValue* cal = path_in(record, {"phase1", "calibration"});
  if (files == nullptr || !files->is_array() || cal == nullptr || !cal->is_object()) return std::nullopt;
  io::ModelFingerprint fp;
  for (const io::JsonValue& f : files->as_array())
    fp.files.push_back({f.at("name").as_string(), f.at("size").as_int(), f.at("sha256").as_string()});
  return io::HessianFileMeta{0, fp.digest(), cal->at("sha256").as_string(), cal->at("seq_len").as_int()};
}

/// The task identity prefix of this run's phase 2 (unit, rows, cols filled per unit).
std::optional<TaskIdentity> expected_identity(const io::JsonValue& record) {
  const io::JsonValue* p2 = record.find("phase2");
  if (p2 == nullptr || !p2->is_object()) return std::nullopt;
  TaskIdentity id;
  id.method = p2->at("method").as_string();
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& [k, v] : p2->at("parameters").as_object()) params.emplace_back(k, v.is_string() ? v.as_string() : v.dump());
  id.parameters = parameters_text(params);
  id.seed = std::stoull(p2->at("seed").as_string());
  return id;
}

LayerInfo inspect_layer(const Workdir& wd, int64_t layer, const std::optional<io::HessianFileMeta>& meta, Verify verify) {
  LayerInfo info;
  info.layer = layer;
  const fs::path path = wd.hessian_file(static_cast<int>(layer));
  std::error_code ec;
  if (!fs::exists(path, ec)) return info;
  try {
    if (meta) {
      io::HessianFileMeta expected = *meta;
      expected.layer = layer;
      if (verify == Verify::kFull) io::verify_hessian_file(path, "", expected);
      else io::check_hessian_meta(path, io::read_hessian_meta(path), expected);
    } else if (verify == Verify::kFull) {
      io::h5::verify_h5_file(path, "");
    } else {
      (void)io::read_hessian_meta(path);
    }
    info.state = FileState::kDone;
  } catch (const Error& e) {
    info.state = FileState::kInvalid;
    info.problem = e.what();
  }
  return info;
}

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

void inspect_unit(const Workdir& wd, UnitInfo& u, const std::optional<TaskIdentity>& id, Verify verify) {
  const fs::path task = wd.task_file(u.name), partial = wd.partial_task_file(u.name);
  std::error_code ec;
  const bool has_task = fs::exists(task, ec) && fs::exists(task_hash_path(task), ec);
  if (has_task) {
    try {
      TaskIdentity expected;
      if (id) {
        expected = *id;
        expected.unit = u.name;
        expected.rows = u.rows;
        expected.cols = u.cols;
      }
      if (verify == Verify::kFull && id) {
        auto unit = load_task_file(task, expected);
        if (!unit) raise<IoError>(task.string(), ": does not verify or is of another configuration (see the log)");
      } else if (verify == Verify::kFull) {
        io::h5::verify_h5_file(task, read_first_line(task_hash_path(task)));
      }
      const io::h5::H5File f = io::h5::H5File::open(task);
      u.method = f.attribute_string("method");
      if (id) {
        const std::string found = f.attribute_string("parameters");
        if (f.attribute_string("method") != id->method || found != id->parameters ||
            f.attribute_string("seed") != std::to_string(id->seed) || f.attribute_int64("rows") != u.rows ||
            f.attribute_int64("cols") != u.cols)
          raise<IoError>(task.string(), ": written for another configuration (method ", f.attribute_string("method"),
                         ", parameters ", found, ")");
      }
      const io::JsonValue m = io::JsonValue::parse(f.attribute_string("metrics"), task.string());
      u.rel_error = m.at("rel_error").as_double();
      u.bits = m.at("bits").as_double();
      u.history_length = static_cast<int64_t>(m.at("error_history").size());
      u.state = FileState::kDone;
      return;
    } catch (const Error& e) {
      u.state = FileState::kInvalid;
      u.problem = e.what();
      return;
    }
  }
  if (fs::exists(partial, ec)) {
    u.state = FileState::kInProgress;
    try {
      const io::h5::H5File f = io::h5::H5File::open(partial);
      u.method = f.attribute_string("method");
      const io::h5::H5Group state = f.open_group("state");
      if (state.contains("ckpt.iteration"))
        u.checkpoint_iteration = state.open_group("ckpt.iteration").read_dataset<int64_t>("data", {1}).at(0);
    } catch (const Error& e) {
      u.problem = e.what();
    }
  }
}

/// Per-rank figures from logs/rank-NNNN.jsonl; fills units' rank and seconds (last event wins).
std::vector<RankInfo> read_logs(const Workdir& wd, std::map<std::string, UnitInfo*>& by_name) {
  std::vector<RankInfo> ranks;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(wd.log_dir(), ec))
    if (e.path().extension() == ".jsonl" && e.path().filename().string().rfind("rank-", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    RankInfo r;
    r.rank = std::stoi(file.stem().string().substr(5));
    std::map<std::string, double> unit_seconds;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      io::JsonValue j;
      try {
        j = io::JsonValue::parse(line, file.string());
      } catch (const Error&) {
        ++r.log_lines_skipped;
        continue;
      }
      const std::string event = string_at(j, {"event"});
      if (event == "process_start" && r.host.empty()) r.host = string_at(j, {"host"});
      if (event == "unit_done") {
        const std::string unit = string_at(j, {"unit"});
        const double seconds = j.at("seconds").as_double();
        unit_seconds[unit] = seconds;
        if (auto it = by_name.find(unit); it != by_name.end()) {
          it->second->rank = r.rank;
          it->second->seconds = seconds;
        }
      }
      if (event == "phase_memory") r.phase_memory.push_back(j);
    }
    r.units = static_cast<int64_t>(unit_seconds.size());
    for (const auto& [unit, s] : unit_seconds) r.busy_s += s;
    ranks.push_back(std::move(r));
  }
  return ranks;
}

}  // namespace

std::string_view to_string(FileState state) noexcept {
  switch (state) {
    case FileState::kDone: return "done";
    case FileState::kInProgress: return "in_progress";
    case FileState::kMissing: return "missing";
    case FileState::kInvalid: return "invalid";
  }
  return "?";
}

int64_t WorkdirInfo::count(FileState state) const {
  return std::count_if(units.begin(), units.end(), [&](const UnitInfo& u) { return u.state == state; });
}
int64_t WorkdirInfo::count_layers(FileState state) const {
  return std::count_if(layer_files.begin(), layer_files.end(), [&](const LayerInfo& l) { return l.state == state; });
}

WorkdirInfo inspect_workdir(const fs::path& dir, Verify verify) {
  WorkdirInfo info;
  info.dir = dir;
  const Workdir wd(dir);
  info.run_record = io::JsonValue::read_file(wd.run_record());
  info.method = string_at(info.run_record, {"phase2", "method"});

  // The model's shapes, from the config.json the run recorded (if still there).
  std::optional<model::LlamaConfig> config;
  const std::string model_dir = string_at(info.run_record, {"info", "model_dir"});
  std::error_code ec;
  if (!model_dir.empty() && fs::exists(fs::path(model_dir) / "config.json", ec)) {
    try {
      config = io::read_hf_config(fs::path(model_dir) / "config.json");
    } catch (const Error& e) {
      info.notes.push_back("the run's model config is unreadable: " + std::string(e.what()));
    }
  } else {
    info.notes.push_back("the run's model directory (" + model_dir + ") is not here: units are listed from the files found");
  }

  // Phase 1.
  const auto meta = expected_hessian_meta(info.run_record);
  int64_t layers = config ? config->num_hidden_layers : 0;
  if (!config)
    for (const auto& e : fs::directory_iterator(wd.hessian_dir(), ec)) {
      const std::string f = e.path().filename().string();
      if (f.rfind("layer_", 0) == 0 && e.path().extension() == ".h5")
        layers = std::max<int64_t>(layers, std::stoll(f.substr(6)) + 1);
    }
  info.layers = layers;
  for (int64_t l = 0; l < layers; ++l) info.layer_files.push_back(inspect_layer(wd, l, meta, verify));

  // Phase 2.
  const auto identity = expected_identity(info.run_record);
  if (config) {
    for (const Unit& u : enumerate_units(*config)) {
      UnitInfo ui;
      ui.name = u.id.name();
      ui.rows = u.shape.out;
      ui.cols = u.shape.in;
      info.units.push_back(std::move(ui));
    }
  } else {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(wd.task_dir(), ec)) {
      std::string f = e.path().filename().string();
      for (const std::string suffix : {".partial.h5", ".h5"})
        if (f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
          names.insert(f.substr(0, f.size() - suffix.size()));
          break;
        }
    }
    for (const std::string& n : names) {
      UnitInfo ui;
      ui.name = n;
      try {
        const io::h5::H5File f = io::h5::H5File::open(wd.task_file(n));
        ui.rows = f.attribute_int64("rows");
        ui.cols = f.attribute_int64("cols");
      } catch (const Error&) {
      }
      info.units.push_back(std::move(ui));
    }
  }
  for (UnitInfo& u : info.units) inspect_unit(wd, u, identity, verify);
  double bits = 0, weights = 0, err = 0;
  int64_t done = 0;
  for (const UnitInfo& u : info.units)
    if (u.state == FileState::kDone) {
      bits += u.bits;
      weights += static_cast<double>(u.rows) * static_cast<double>(u.cols);
      err += u.rel_error;
      ++done;
    }
  info.avg_bits = weights > 0 ? bits / weights : 0;
  info.mean_rel_error = done > 0 ? err / static_cast<double>(done) : 0;

  // Logs.
  std::map<std::string, UnitInfo*> by_name;
  for (UnitInfo& u : info.units) by_name[u.name] = &u;
  info.ranks = read_logs(wd, by_name);
  double total = 0, max_busy = 0;
  int busy_ranks = 0;
  for (const RankInfo& r : info.ranks)
    if (r.units > 0) {
      total += r.busy_s;
      max_busy = std::max(max_busy, r.busy_s);
      ++busy_ranks;
    }
  const int64_t world = path_in(info.run_record, {"world_size"}) != nullptr ? info.run_record.at("world_size").as_int() : 0;
  const int ranks = std::max<int>(busy_ranks, static_cast<int>(world));
  info.efficiency = max_busy > 0 && ranks > 0 ? total / (ranks * max_busy) : 0;

  if (fs::exists(wd.output_dir() / "config.json", ec)) {
    try {
      info.output = inspect_output(wd.output_dir());
    } catch (const Error& e) {
      info.notes.push_back("output/ is unreadable: " + std::string(e.what()));
    }
  }
  return info;
}

OutputInfo inspect_output(const fs::path& dir) {
  OutputInfo out;
  out.dir = dir;
  out.quantization_config = read_quantization_config(dir);
  const model::LlamaConfig config = io::read_hf_config(dir / "config.json");
  const io::SafetensorsSet set = io::SafetensorsSet::open(dir);
  out.files = static_cast<int64_t>(set.files().size());
  std::error_code ec;
  for (const fs::path& f : set.files()) out.total_bytes += static_cast<int64_t>(fs::file_size(f, ec));
  const std::vector<std::string>& names = set.tensor_names();
  double bits = 0, weights = 0;
  for (const Unit& u : enumerate_units(config)) {
    OutputInfo::Matrix m;
    m.name = unit_tensor_prefix(u);
    m.rows = u.shape.out;
    m.cols = u.shape.in;
    const std::string prefix = m.name + ".";
    for (auto it = std::lower_bound(names.begin(), names.end(), prefix); it != names.end() && it->rfind(prefix, 0) == 0; ++it)
      m.bytes += set.info(*it).size_bytes;
    m.bits_per_weight = 8.0 * static_cast<double>(m.bytes) / (static_cast<double>(m.rows) * static_cast<double>(m.cols));
    bits += 8.0 * static_cast<double>(m.bytes);
    weights += static_cast<double>(m.rows) * static_cast<double>(m.cols);
    out.matrices.push_back(std::move(m));
  }
  out.avg_bits_stored = weights > 0 ? bits / weights : 0;
  return out;
}

Inspection inspect(const fs::path& dir, Verify verify) {
  Inspection r;
  std::error_code ec;
  if (fs::exists(dir / "run.json", ec)) r.workdir = inspect_workdir(dir, verify);
  else if (fs::exists(dir / "config.json", ec)) r.output = inspect_output(dir);
  else raise<ConfigError>("inspect: ", dir.string(), " is neither a work directory (no run.json) nor a model directory (no config.json)");
  return r;
}

}  // namespace caldera::pipeline
