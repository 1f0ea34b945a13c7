// The JSON summaries of compress / export / run (their --json output) and their one-line text form.
#pragma once

#include <optional>

#include "io/json_value.h"
#include "pipeline/compress_phase.h"
#include "pipeline/export.h"

namespace caldera::cli {

io::JsonValue compress_summary(const pipeline::CompressPhaseReport& report);
io::JsonValue export_summary(const pipeline::ExportReport& report);

}  // namespace caldera::cli
