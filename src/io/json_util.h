// Internal to src/io: strict JSON parsing for untrusted files (safetensors headers, index files,
// config.json). Include only from src/io/*.cpp: nlohmann-json stays inside this module (DESIGN §5).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace caldera::io::detail {

/// Deepest nesting accepted; every file this project reads needs at most 4 levels.
inline constexpr int kMaxJsonDepth = 16;

/// Parses `text` as JSON, rejecting duplicate keys in any object (nlohmann would silently keep the
/// last one) and nesting deeper than kMaxJsonDepth. `what` names the source in messages
/// ("safetensors header of '/m/x.safetensors'"). Throws IoError "<what>: ...".
nlohmann::json parse_json_strict(std::string_view text, const std::string& what);

/// Reads a whole small file (at most `max_bytes`). Throws IoError naming the file.
std::string read_small_file(const std::filesystem::path& path, std::size_t max_bytes);

/// Reads a whole small text file (at most `max_bytes`) and parses it with parse_json_strict.
/// Throws IoError naming the file if it is missing, unreadable, too large or malformed.
nlohmann::json read_json_file(const std::filesystem::path& path, std::size_t max_bytes = std::size_t{64} << 20);

/// Short rendering of a JSON value for error messages (truncated to ~60 characters).
std::string json_excerpt(const nlohmann::json& value);

}  // namespace caldera::io::detail
