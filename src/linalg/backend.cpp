#include "linalg/backend.h"

namespace caldera::linalg {

std::string_view to_string(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::kCpu: return "cpu";
    case BackendKind::kCuda: return "cuda";
  }
  return "?";
}

BackendKind parse_backend_kind(std::string_view text) {
  if (text == "cpu") return BackendKind::kCpu;
  if (text == "cuda") return BackendKind::kCuda;
  raise<ConfigError>("--backend: expected cpu or cuda, got '", text, "'");
}

}  // namespace caldera::linalg
