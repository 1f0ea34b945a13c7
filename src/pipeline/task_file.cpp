#include "pipeline/task_file.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "io/h5.h"
#include "io/json_value.h"
#include "pipeline/tensor_store.h"

namespace fs = std::filesystem;

namespace caldera::pipeline {
namespace {

constexpr const char* kTaskFormat = "caldera-task";
constexpr const char* kCheckpointFormat = "caldera-checkpoint";

void write_identity(const io::h5::H5Group& root, const char* format, const TaskIdentity& id) {
  root.set_attribute("format", format);
  root.set_attribute("format_version", kTaskFormatVersion);
  root.set_attribute("unit", id.unit);
  root.set_attribute("method", id.method);
  root.set_attribute("parameters", id.parameters);
  root.set_attribute("rows", id.rows);
  root.set_attribute("cols", id.cols);
  root.set_attribute("seed", std::to_string(id.seed));
}

/// Empty string when `root` holds `expected`, else a description of the first difference.
std::string identity_mismatch(const io::h5::H5Group& root, const char* format, const TaskIdentity& expected) {
  if (root.attribute_string("format") != format) return "format is '" + root.attribute_string("format") + "'";
  if (root.attribute_int64("format_version") != kTaskFormatVersion) return "format_version differs";
  TaskIdentity found;
  found.unit = root.attribute_string("unit");
  found.method = root.attribute_string("method");
  found.parameters = root.attribute_string("parameters");
  found.rows = root.attribute_int64("rows");
  found.cols = root.attribute_int64("cols");
  found.seed = std::stoull(root.attribute_string("seed"));
  if (found.unit != expected.unit) return "unit '" + found.unit + "'";
  if (found.method != expected.method) return "method '" + found.method + "' (now '" + expected.method + "')";
  if (found.parameters != expected.parameters)
    return "parameters '" + found.parameters + "' (now '" + expected.parameters + "')";
  if (found.rows != expected.rows || found.cols != expected.cols) return "shape differs";
  if (found.seed != expected.seed) return "seed differs";
  return {};
}

io::JsonValue metrics_json(const algo::UnitMetrics& m) {
  io::JsonValue j = io::JsonValue::object();
  j.set("rel_error", m.rel_error);
  j.set("bits", m.bits);
  j.set("params", m.params);
  io::JsonValue h = io::JsonValue::array();
  for (double e : m.error_history) h.push_back(e);
  j.set("error_history", h);
  io::JsonValue extra = io::JsonValue::object();
  for (const auto& [k, v] : m.extra) extra.set(k, v);
  j.set("extra", extra);
  return j;
}

algo::UnitMetrics metrics_from_json(const io::JsonValue& j) {
  algo::UnitMetrics m;
  m.rel_error = j.at("rel_error").as_double();
  m.bits = j.at("bits").as_double();
  m.params = j.at("params").as_int();
  for (const auto& e : j.at("error_history").as_array()) m.error_history.push_back(e.as_double());
  for (const auto& [k, v] : j.at("extra").as_object()) m.extra.emplace_back(k, v.as_double());
  return m;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TaskIdentity unit_task_identity(const Unit& unit, const algo::Method& method, uint64_t seed) {
  return TaskIdentity{unit.id.name(), method.name(), parameters_text(method.parameters()), unit.shape.out,
                      unit.shape.in, seed};
}

std::string parameters_text(const std::vector<std::pair<std::string, std::string>>& parameters) {
  std::string out;
  for (const auto& [k, v] : parameters) {
    if (!out.empty()) out += ';';
    out += k + "=" + v;
  }
  return out;
}

fs::path task_hash_path(const fs::path& path) { return fs::path(path.string() + ".sha256"); }

io::PublishedFile write_task_file(const fs::path& path, const TaskIdentity& identity, const algo::CompressedUnit& unit) {
  const io::PublishedFile published = io::publish_atomically(path, [&](const fs::path& tmp) {
    io::h5::H5File file = io::h5::H5File::create(tmp);
    write_identity(file, kTaskFormat, identity);
    file.set_attribute("metrics", metrics_json(unit.metrics).dump());
    write_tensor_map(file, "tensors", unit.tensors);
    file.close();
  });
  io::publish_atomically(task_hash_path(path), [&](const fs::path& tmp) {
    std::ofstream out(tmp);
    out << published.sha256 << "\n";
    if (!out.flush()) raise<IoError>(tmp.string(), ": write failed");
  });
  return published;
}

std::optional<algo::CompressedUnit> load_task_file(const fs::path& path, const TaskIdentity& expected) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  const fs::path hash_file = task_hash_path(path);
  if (!fs::exists(hash_file, ec)) {
    log_info(path.string(), ": no completion record (", hash_file.filename().string(), "); recomputing the unit");
    return std::nullopt;
  }
  try {
    std::string sha = read_text(hash_file);
    while (!sha.empty() && (sha.back() == '\n' || sha.back() == ' ')) sha.pop_back();
    io::h5::verify_h5_file(path, sha);
    io::h5::H5File file = io::h5::H5File::open(path);
    if (const std::string why = identity_mismatch(file, kTaskFormat, expected); !why.empty()) {
      log_info(path.string(), ": written for another configuration (", why, "); recomputing the unit");
      return std::nullopt;
    }
    algo::CompressedUnit unit;
    unit.metrics = metrics_from_json(io::JsonValue::parse(file.attribute_string("metrics"), path.string()));
    unit.tensors = read_tensor_map(file, "tensors");
    return unit;
  } catch (const Error& e) {
    log_warn(path.string(), ": does not verify, recomputing the unit: ", e.what());
    return std::nullopt;
  }
}

H5CheckpointStore::H5CheckpointStore(fs::path path, TaskIdentity identity)
    : path_(std::move(path)), identity_(std::move(identity)) {}

std::optional<TensorMap> H5CheckpointStore::load() {
  std::error_code ec;
  if (!fs::exists(path_, ec)) return std::nullopt;
  try {
    io::h5::verify_h5_file(path_, "");
    io::h5::H5File file = io::h5::H5File::open(path_);
    if (const std::string why = identity_mismatch(file, kCheckpointFormat, identity_); !why.empty()) {
      log_info(path_.string(), ": checkpoint of another configuration (", why, "); starting the unit over");
      return std::nullopt;
    }
    log_info(path_.string(), ": resuming the unit from its checkpoint");
    return read_tensor_map(file, "state");
  } catch (const Error& e) {
    log_warn(path_.string(), ": checkpoint does not verify, starting the unit over: ", e.what());
    return std::nullopt;
  }
}

void H5CheckpointStore::save(const TensorMap& state) {
  io::publish_atomically(path_, [&](const fs::path& tmp) {
    io::h5::H5File file = io::h5::H5File::create(tmp);
    write_identity(file, kCheckpointFormat, identity_);
    write_tensor_map(file, "state", state);
    file.close();
  });
  ++saves_;
}

void H5CheckpointStore::remove() noexcept {
  std::error_code ec;
  fs::remove(path_, ec);
}

}  // namespace caldera::pipeline
