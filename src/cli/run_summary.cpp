#include "cli/run_summary.h"

namespace caldera::cli {

io::JsonValue compress_summary(const pipeline::CompressPhaseReport& r) {
  io::JsonValue j = io::JsonValue::object();
  j.set("units", r.units_total);
  j.set("units_computed", r.units_computed);
  j.set("units_reused", r.units_reused);
  io::JsonValue busy = io::JsonValue::array();
  for (double b : r.busy_s) busy.push_back(b);
  j.set("busy_s", busy);
  j.set("makespan_s", r.makespan_s);
  j.set("efficiency", r.efficiency);
  j.set("predicted_efficiency", r.predicted_efficiency);
  return j;
}

io::JsonValue export_summary(const pipeline::ExportReport& r) {
  io::JsonValue j = io::JsonValue::object();
  j.set("output", r.dir.string());
  j.set("avg_bits", r.avg_bits);
  j.set("mean_rel_error", r.mean_rel_error);
  j.set("outlier_rate", r.outlier_rate);
  j.set("units", r.units);
  j.set("files", static_cast<int64_t>(r.files.size()));
  return j;
}

}  // namespace caldera::cli
