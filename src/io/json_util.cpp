#include "io/json_util.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"

namespace caldera::io::detail {

nlohmann::json parse_json_strict(std::string_view text, const std::string& what) {
  using nlohmann::json;
  // One key set per open object, innermost last; arrays have no keys so they push nothing.
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (depth > kMaxJsonDepth)
      raise<IoError>(what, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        if (!open_objects.empty() && parsed.is_string()) {
          const auto& key = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(key).second)
            raise<IoError>(what, ": duplicate key \"", key, "\" in a JSON object");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    raise<IoError>(what, ": malformed JSON: ", e.what());
  }
}

std::string read_small_file(const std::filesystem::path& path, std::size_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) raise<IoError>("cannot read '", path.string(), "': ", ec.message());
  if (size > max_bytes)
    raise<IoError>("'", path.string(), "' is ", size, " bytes; expected at most ", max_bytes, " bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) raise<IoError>("cannot open '", path.string(), "': ", std::strerror(errno));
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size)
    raise<IoError>("short read on '", path.string(), "': expected ", size, " bytes, got ", in.gcount());
  return text;
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::size_t max_bytes) {
  return parse_json_strict(read_small_file(path, max_bytes), "'" + path.string() + "'");
}

std::string json_excerpt(const nlohmann::json& value) {
  std::string s = value.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace caldera::io::detail
