// The run record (<workdir>/run.json) and the resume decision (DESIGN §3).
//
// run.json = { "format_version", "tool": {name, version}, "phase1": {model fingerprint,
// calibration sha256/size, seq_len, sequences}, "phase2": {method, parameters, seed}, "world_size",
// "info": {paths, hosts} }. A command records the phases it runs (`hessians` only phase1). On
// resume every member but world_size and info must be equal where both records have it; a phase
// section that only one record has is not a difference (it is added). Otherwise the run refuses,
// naming each difference.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "io/json_value.h"

namespace caldera::pipeline {

enum class ResumeMode { kAuto, kRequired, kNever };
/// "auto" | "required" | "never"; throws ConfigError otherwise.
ResumeMode parse_resume_mode(std::string_view text);
std::string_view to_string(ResumeMode mode) noexcept;

inline constexpr int kRunRecordFormatVersion = 1;

/// Members of run.json that may differ between the first run and a resume.
inline constexpr std::string_view kRecordedOnly[] = {"world_size", "info"};
/// Top-level sections a command may add to a record that lacks them.
inline constexpr std::string_view kPhaseSections[] = {"phase1", "phase2"};

/// `previous` with the members of `current` set over it (the record a resumed run writes back).
io::JsonValue merge_run_records(const io::JsonValue& previous, const io::JsonValue& current);

/// Each difference between two run records as one readable line, e.g.
/// "settings.rank: 64 (in run.json) vs 32 (now)". Members in kRecordedOnly are ignored.
std::vector<std::string> run_record_differences(const io::JsonValue& previous, const io::JsonValue& current);

/// What to do with an existing workdir.
enum class ResumeAction { kStartFresh, kResume, kClearAndStartFresh };

/// Decides, given the mode, the previous record (null when there is none) and whether the workdir
/// has results without a record. Throws ConfigError: kRequired with nothing to resume; any mode
/// but kNever when the records differ (listing every difference and how to start over).
ResumeAction decide_resume(ResumeMode mode, const io::JsonValue& previous, const io::JsonValue& current,
                           bool results_without_record, std::string_view workdir);

}  // namespace caldera::pipeline
