#include "pipeline/run_record.h"

#include <algorithm>

#include "core/error.h"

namespace caldera::pipeline {

ResumeMode parse_resume_mode(std::string_view text) {
  if (text == "auto") return ResumeMode::kAuto;
  if (text == "required") return ResumeMode::kRequired;
  if (text == "never") return ResumeMode::kNever;
  raise<ConfigError>("--resume: expected auto, required or never, got '", text, "'");
}

std::string_view to_string(ResumeMode mode) noexcept {
  switch (mode) {
    case ResumeMode::kAuto: return "auto";
    case ResumeMode::kRequired: return "required";
    case ResumeMode::kNever: return "never";
  }
  return "?";
}

namespace {

std::string short_text(const io::JsonValue& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

bool is_phase_section(const std::string& key) {
  return std::find(std::begin(kPhaseSections), std::end(kPhaseSections), key) != std::end(kPhaseSections);
}

/// True for a non-empty array of objects that each have a string "name", all different.
bool named_entries(const io::JsonValue& v) {
  if (!v.is_array() || v.size() == 0) return false;
  std::vector<std::string> names;
  for (const io::JsonValue& e : v.as_array()) {
    const io::JsonValue* n = e.is_object() ? e.find("name") : nullptr;
    if (n == nullptr || !n->is_string()) return false;
    names.push_back(n->as_string());
  }
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) == names.end();
}

const io::JsonValue* find_named(const io::JsonValue& list, const std::string& name) {
  for (const io::JsonValue& e : list.as_array())
    if (e.at("name").as_string() == name) return &e;
  return nullptr;
}

void diff(const io::JsonValue& a, const io::JsonValue& b, const std::string& path, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, va] : a.as_object()) {
      if (path.empty() && std::find(std::begin(kRecordedOnly), std::end(kRecordedOnly), key) != std::end(kRecordedOnly))
        continue;
      const std::string p = path.empty() ? key : path + "." + key;
      if (const io::JsonValue* vb = b.find(key))
        diff(va, *vb, p, out);
      else if (!(path.empty() && is_phase_section(key)))
        out.push_back(p + ": " + short_text(va) + " (in run.json) vs absent (now)");
    }
    for (const auto& [key, vb] : b.as_object()) {
      if (path.empty() && std::find(std::begin(kRecordedOnly), std::end(kRecordedOnly), key) != std::end(kRecordedOnly))
        continue;
      if (!a.contains(key) && !(path.empty() && is_phase_section(key)))
        out.push_back((path.empty() ? key : path + "." + key) + ": absent (in run.json) vs " + short_text(vb) + " (now)");
    }
    return;
  }
  // Lists of named entries (model_files) are matched by name, so a difference names the file
  // ("phase1.model_files[config.json].sha256") rather than its position.
  if (a.is_array() && b.is_array() && named_entries(a) && named_entries(b)) {
    for (const io::JsonValue& ea : a.as_array()) {
      const std::string name = ea.at("name").as_string();
      const io::JsonValue* eb = find_named(b, name);
      if (eb != nullptr) diff(ea, *eb, path + "[" + name + "]", out);
      else out.push_back(path + "[" + name + "]: present (in run.json) vs absent (now)");
    }
    for (const io::JsonValue& eb : b.as_array())
      if (find_named(a, eb.at("name").as_string()) == nullptr)
        out.push_back(path + "[" + eb.at("name").as_string() + "]: absent (in run.json) vs present (now)");
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i)
      diff(a.as_array()[i], b.as_array()[i], path + "[" + std::to_string(i) + "]", out);
    return;
  }
  if (a.is_number() && b.is_number() && a.as_double() == b.as_double()) return;
  if (!(a == b)) out.push_back(path + ": " + short_text(a) + " (in run.json) vs " + short_text(b) + " (now)");
}

}  // namespace

std::vector<std::string> run_record_differences(const io::JsonValue& previous, const io::JsonValue& current) {
  std::vector<std::string> out;
  diff(previous, current, "", out);
  return out;
}

io::JsonValue merge_run_records(const io::JsonValue& previous, const io::JsonValue& current) {
  io::JsonValue out = previous.is_object() ? previous : io::JsonValue::object();
  for (const auto& [k, v] : current.as_object()) out.set(k, v);
  return out;
}

ResumeAction decide_resume(ResumeMode mode, const io::JsonValue& previous, const io::JsonValue& current,
                           bool results_without_record, std::string_view workdir) {
  if (mode == ResumeMode::kNever)
    return previous.is_null() && !results_without_record ? ResumeAction::kStartFresh : ResumeAction::kClearAndStartFresh;
  if (previous.is_null()) {
    if (mode == ResumeMode::kRequired)
      raise<ConfigError>("--resume required: ", workdir, " holds no earlier run (no run.json) to resume");
    if (results_without_record)
      raise<ConfigError>(workdir, " holds results but no run.json, so they cannot be checked against this run; "
                         "use another --workdir or --resume never to start over");
    return ResumeAction::kStartFresh;
  }
  const auto differences = run_record_differences(previous, current);
  if (!differences.empty()) {
    std::string text;
    for (const auto& d : differences) text += "\n  " + d;
    raise<ConfigError>("refusing to resume ", workdir, ": this run differs from the one recorded in run.json:", text,
                       "\nuse the original settings, another --workdir, or --resume never to start over");
  }
  return ResumeAction::kResume;
}

}  // namespace caldera::pipeline
